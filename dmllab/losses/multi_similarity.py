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

import torch
from torch import Tensor

from dmllab.geometry.base import Geometry
from dmllab.losses.base import MetricLoss, _mean


class MultiSimilarityLoss(MetricLoss):
    """Multi-similarity loss on s = 1 - D with the paper's mining; see the module docstring."""

    def __init__(self, geometry: Geometry, *, positives: str = "all", negatives: str = "all",
                 margin: float = 0.2, k_positives: int = 1, alpha: float = 2.0, beta: float = 40.0,
                 base: float = 0.5, mining_margin: float = 0.1) -> None:
        super().__init__(geometry, positives=positives, negatives=negatives, margin=margin,
                         k_positives=k_positives)
        if not alpha > 0 or not beta > 0:
            raise ValueError(f"multi-similarity alpha and beta must be > 0; got alpha={alpha!r}, beta={beta!r}")
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.base = float(base)
        self.mining_margin = float(mining_margin)

    def _loss(self, D: Tensor, same: Tensor, embeddings: Tensor,
              labels: Tensor) -> tuple[Tensor, dict[str, float]]:
        triplets = self.select(D, same, embeddings.shape[1])
        B = len(D)
        positives = torch.zeros_like(same)
        positives[triplets.anchors, triplets.positives] = True
        used = positives.any(dim=1)
        if triplets.all_negatives:
            negatives = triplets.negatives
        else:
            negatives = torch.zeros_like(same)
            negatives[triplets.anchors, triplets.negatives] = True
        S = 1.0 - D
        pos_kept, neg_kept = positives, negatives
        if triplets.all_negatives:
            s = S.detach()
            min_pos = s.masked_fill(~positives, math.inf).amin(dim=1, keepdim=True)
            max_neg = s.masked_fill(~negatives, -math.inf).amax(dim=1, keepdim=True)
            neg_kept = negatives & (s + self.mining_margin > min_pos)
            pos_kept = positives & (s - self.mining_margin < max_neg)
        pos_term = _log1p_sum_exp(-self.alpha * (S - self.base), pos_kept) / self.alpha
        neg_term = _log1p_sum_exp(self.beta * (S - self.base), neg_kept) / self.beta
        loss = (pos_term + neg_term)[used].sum() / max(int(used.sum()), 1)
        stats = {
            "active": float(pos_kept.sum() + neg_kept.sum()),
            "anchors": float(used.sum()),
            "dropped": float(B - used.sum()),
            "pos_dist": _mean(D.detach()[positives]),
            "neg_dist": _mean(D.detach()[negatives]),
        }
        return loss, stats


def _log1p_sum_exp(x: Tensor, mask: Tensor) -> Tensor:
    """log(1 + sum_j exp(x_ij)) over the masked entries of each row, stably: [B]."""
    x = x.masked_fill(~mask, -math.inf)
    return torch.logsumexp(torch.cat([x, x.new_zeros(len(x), 1)], dim=1), dim=1)
