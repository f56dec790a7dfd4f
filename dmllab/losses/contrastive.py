"""Contrastive loss (Hadsell, Chopra, LeCun, "Dimensionality Reduction by Learning an Invariant
Mapping", CVPR 2006), on the selected pairs:

    L = mean_{(a,p)} [D(a, p) - m_pos]_+  +  mean_{(a,n)} [m_neg - D(a, n)]_+

with m_pos = `pos_margin` (default 0) and m_neg = `margin`. Each mean runs over all selected
pairs (`reduction="mean"`) or over the pairs with non-zero loss (`reduction="nonzero"`, the
default, as pytorch-metric-learning's ContrastiveLoss). Negative pairs: with `negatives="all"`
every (a, n), n in N(a), for each anchor a that has a selected positive; otherwise the negative
chosen for each selected (a, p) pair.

>>> import torch
>>> from dmllab.geometry import Euclidean
>>> z = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 0.5], [3.0, 0.0]])
>>> loss = ContrastiveLoss(Euclidean(), margin=1.0, reduction="mean")
>>> round(float(loss(z, torch.tensor([0, 0, 1, 1]))), 4)
2.6457
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from dmllab.geometry.base import Geometry
from dmllab.losses.base import MetricLoss, _check_reduction


class ContrastiveLoss(MetricLoss):
    """mean [D(a, p) - pos_margin]_+ + mean [margin - D(a, n)]_+ over the selected pairs."""

    def __init__(self, geometry: Geometry, *, positives: str = "all", negatives: str = "all",
                 margin: float = 1.0, k_positives: int = 1, pos_margin: float = 0.0,
                 reduction: str = "nonzero") -> None:
        super().__init__(geometry, positives=positives, negatives=negatives, margin=margin,
                         k_positives=k_positives)
        _check_reduction(reduction)
        self.pos_margin = float(pos_margin)
        self.reduction = reduction

    def _loss(self, D: Tensor, same: Tensor, embeddings: Tensor,
              labels: Tensor) -> tuple[Tensor, dict[str, float]]:
        triplets = self.select(D, same, embeddings.shape[1])
        # Dense [B, B] pair weights (how often each pair was selected) instead of gathers.
        pos_weight = _pair_counts(D, triplets.anchors, triplets.positives)
        if triplets.all_negatives:
            neg_weight = triplets.negatives.to(D.dtype)
        else:
            neg_weight = _pair_counts(D, triplets.anchors, triplets.negatives)
        pos_losses = (D - self.pos_margin).clamp_min(0.0) * pos_weight
        neg_losses = (self.margin - D).clamp_min(0.0) * neg_weight
        pos_active = (pos_losses > 0).to(D.dtype) * pos_weight
        neg_active = (neg_losses > 0).to(D.dtype) * neg_weight
        if self.reduction == "mean":
            pos_count, neg_count = pos_weight.sum(), neg_weight.sum()
        else:
            pos_count, neg_count = pos_active.sum(), neg_active.sum()
        loss = pos_losses.sum() / pos_count.clamp_min(1) + neg_losses.sum() / neg_count.clamp_min(1)
        Dd = D.detach()
        stats = {
            "active": float(pos_active.sum() + neg_active.sum()),
            "anchors": float(len(D) - triplets.dropped),
            "dropped": float(triplets.dropped),
            "pos_dist": float((Dd * pos_weight).sum() / pos_weight.sum()) if len(triplets) else math.nan,
            "neg_dist": float((Dd * neg_weight).sum() / neg_weight.sum()) if len(triplets) else math.nan,
        }
        return loss, stats


def _pair_counts(D: Tensor, rows: Tensor, cols: Tensor) -> Tensor:
    """[B, B] float: how many times each (row, col) pair occurs in the selection."""
    counts = torch.zeros_like(D)
    return counts.index_put_((rows, cols), torch.ones_like(rows, dtype=D.dtype), accumulate=True)
