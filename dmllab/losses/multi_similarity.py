"""Multi-similarity loss (Wang, Han, Huang, Dong, Scott, "Multi-Similarity Loss with General Pair
Weighting for Deep Metric Learning", CVPR 2019), with its pair mining.

The loss is defined on similarities; for a dissimilarity D we use s = 1 - D, which is exactly the
cosine similarity for the `cosine` geometry and lies in [-1, 1] for Euclidean distances between
unit vectors (so the threshold `base` keeps its meaning). For each anchor a with kept positives
P'(a) and kept negatives N'(a):

    l(a) = 1/alpha * log(1 + sum_{p in P'(a)} exp(-alpha (s_ap - base)))
         + 1/beta  * log(1 + sum_{n in N'(a)} exp( beta (s_an - base)))

averaged over the anchors that have a positive and a negative. Defaults: alpha = 2, beta = 40,
base (lambda) = 0.5, mining margin epsilon = 0.1.

The positives strategy restricts each anchor's positive set (all of P(a), {p*(a)} for
`nearest`, its k nearest, ...). With `negatives="all"` the paper's mining runs on those sets:
keep n with s_an + epsilon > min_p s_ap and p with s_ap - epsilon < max_n s_an. With any other
negatives strategy the selected negatives (one per selected positive) are used as they are, and
no mining is applied.

>>> import torch
>>> from dmllab.geometry import Cosine
>>> z = torch.tensor([[1.0, 0.0], [0.8, 0.6], [0.6, 0.8], [0.0, 1.0]])
>>> loss = MultiSimilarityLoss(Cosine())
>>> round(loss(z, torch.tensor([0, 0, 1, 1])).item(), 4)
0.3394
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from dmllab.geometry.base import Geometry
from dmllab.losses.base import Matrix, TupleLoss, at_least, mean_or_nan, register_loss
from dmllab.losses.strategies import Triplets


@register_loss(
    "multi_similarity",
    checks={
        "alpha": at_least(0.0, open=True),
        "beta": at_least(0.0, open=True),
        "mining_margin": at_least(0.0),
    },
)
class MultiSimilarityLoss(TupleLoss):
    """Multi-similarity loss on s = 1 - D with the paper's mining; see the module docstring."""

    def __init__(
        self,
        geometry: Geometry | str,
        *,
        alpha: float = 2.0,
        beta: float = 40.0,
        base: float = 0.5,
        mining_margin: float = 0.1,
        **selection: Any,
    ) -> None:
        super().__init__(geometry, **selection)
        if not alpha > 0 or not beta > 0:
            raise ValueError(
                f"multi-similarity alpha and beta must be > 0; got alpha={alpha!r}, beta={beta!r}"
            )
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.base = float(base)
        self.mining_margin = float(mining_margin)

    def _tuple_loss(self, matrix: Matrix, triplets: Triplets) -> tuple[Tensor, dict[str, float]]:
        if triplets.all_negatives:
            return self._mined(matrix.D, matrix.same, triplets)
        return self._listed(matrix.pick, matrix.D.shape, triplets)

    def _mined(
        self, D: Tensor, same: Tensor, triplets: Triplets
    ) -> tuple[Tensor, dict[str, float]]:
        """All negatives of each anchor, with the paper's mining: masked [B, R] terms."""
        positives = torch.zeros_like(same)
        positives[triplets.anchors, triplets.positives] = True
        negatives = triplets.negatives
        used = positives.any(dim=1)
        s = 1.0 - D.detach()
        min_pos = s.masked_fill(~positives, math.inf).amin(dim=1, keepdim=True)
        max_neg = s.masked_fill(~negatives, -math.inf).amax(dim=1, keepdim=True)
        neg_kept = negatives & (s + self.mining_margin > min_pos)
        pos_kept = positives & (s - self.mining_margin < max_neg)
        # the kept pairs as lists: exp over them only, not over every masked-out entry
        (pos_rows, pos_cols), (neg_rows, neg_cols) = (
            pos_kept.nonzero(as_tuple=True),
            neg_kept.nonzero(as_tuple=True),
        )
        pos_s, neg_s = 1.0 - D[pos_rows, pos_cols], 1.0 - D[neg_rows, neg_cols]
        pos_term = (
            _log1p_sum_exp_by_row(-self.alpha * (pos_s - self.base), pos_rows, len(D)) / self.alpha
        )
        neg_term = (
            _log1p_sum_exp_by_row(self.beta * (neg_s - self.base), neg_rows, len(D)) / self.beta
        )
        loss = (pos_term + neg_term)[used].sum() / max(int(used.sum()), 1)
        stats = {
            "active": float(pos_kept.sum() + neg_kept.sum()),
            "anchors": float(used.sum()),
            "dropped": float(len(D) - used.sum()),
            "pos_dist": mean_or_nan(D.detach()[positives]),
            "neg_dist": mean_or_nan(D.detach()[negatives]),
        }
        return loss, stats

    def _listed(
        self,
        pick: Callable[[Tensor, Tensor], Tensor],
        shape: tuple[int, ...],
        triplets: Triplets,
    ) -> tuple[Tensor, dict[str, float]]:
        """The selected pairs as lists (no mining): per-anchor sums over the picked entries of
        the [B, R] matrix of `shape`."""
        batch, references = shape
        anchors, positives = triplets.anchors, triplets.positives
        # an anchor's negatives form a set: two of its pairs may have picked the same negative
        key = torch.unique(anchors * references + triplets.negatives)
        neg_rows, neg_cols = key // references, key % references
        pos_d, neg_d = pick(anchors, positives), pick(neg_rows, neg_cols)
        pos_term = (
            _log1p_sum_exp_by_row(-self.alpha * (1.0 - pos_d - self.base), anchors, batch)
            / self.alpha
        )
        neg_term = (
            _log1p_sum_exp_by_row(self.beta * (1.0 - neg_d - self.base), neg_rows, batch)
            / self.beta
        )
        used = torch.unique(anchors)
        loss = (pos_term + neg_term)[used].sum() / max(len(used), 1)
        stats = {
            "active": float(len(pos_d) + len(neg_d)),
            "anchors": float(len(used)),
            "dropped": float(batch - len(used)),
            "pos_dist": mean_or_nan(pos_d.detach()),
            "neg_dist": mean_or_nan(neg_d.detach()),
        }
        return loss, stats


def _log1p_sum_exp_by_row(x: Tensor, rows: Tensor, batch: int) -> Tensor:
    """log(1 + sum_{i: rows_i = r} exp(x_i)) for every row r < batch, stably: [batch].

    The shift max(0, max x) is taken without a gradient; the value does not depend on it."""
    shift = x.new_zeros(batch).scatter_reduce(0, rows, x.detach(), "amax", include_self=True)
    total = torch.exp(-shift).index_add(0, rows, torch.exp(x - shift[rows]))
    return shift + total.log()
