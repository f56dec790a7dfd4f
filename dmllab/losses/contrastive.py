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
from typing import Any

from torch import Tensor

from dmllab.geometry.base import Geometry
from dmllab.losses.base import (
    REDUCTION_CHECK,
    Matrix,
    TupleLoss,
    at_least,
    check_reduction,
    mean_or_nan,
    register_loss,
)
from dmllab.losses.strategies import Triplets


@register_loss("contrastive", checks={"pos_margin": at_least(0.0), "reduction": REDUCTION_CHECK})
class ContrastiveLoss(TupleLoss):
    """mean [D(a, p) - pos_margin]_+ + mean [margin - D(a, n)]_+ over the selected pairs."""

    def __init__(
        self,
        geometry: Geometry | str,
        *,
        margin: float = 1.0,
        pos_margin: float = 0.0,
        reduction: str = "nonzero",
        **selection: Any,
    ) -> None:
        super().__init__(geometry, margin=margin, **selection)
        check_reduction(reduction)
        self.pos_margin = float(pos_margin)
        self.reduction = reduction

    def _tuple_loss(self, matrix: Matrix, triplets: Triplets) -> tuple[Tensor, dict[str, float]]:
        D, pick = matrix.D, matrix.pick
        pos_d = pick(triplets.anchors, triplets.positives)
        pos_losses = (pos_d - self.pos_margin).clamp_min(0.0)
        if triplets.all_negatives:
            # every negative of each used anchor once: a masked [B, R] term
            neg_weight = triplets.negatives.to(D.dtype)
            neg_losses = (self.margin - D).clamp_min(0.0) * neg_weight
            neg_pairs, neg_d_sum = neg_weight.sum(), (D.detach() * neg_weight).sum()
        else:
            neg_d = pick(triplets.anchors, triplets.negatives)
            neg_losses = (self.margin - neg_d).clamp_min(0.0)
            neg_pairs, neg_d_sum = neg_d.new_tensor(float(len(neg_d))), neg_d.detach().sum()
        pos_active, neg_active = (pos_losses > 0).sum(), (neg_losses > 0).sum()
        if self.reduction == "mean":
            pos_count, neg_count = pos_d.new_tensor(float(len(pos_d))), neg_pairs
        else:
            pos_count, neg_count = pos_active, neg_active
        loss = pos_losses.sum() / pos_count.clamp_min(1) + neg_losses.sum() / neg_count.clamp_min(1)
        stats = {
            "active": float(pos_active + neg_active),
            "anchors": float(len(D) - triplets.dropped),
            "dropped": float(triplets.dropped),
            "pos_dist": mean_or_nan(pos_d.detach()),
            "neg_dist": float(neg_d_sum / neg_pairs) if len(triplets) else math.nan,
        }
        return loss, stats
