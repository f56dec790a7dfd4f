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

from torch import Tensor

from dmllab.geometry.base import Geometry
from dmllab.losses.base import MetricLoss, _check_reduction, _mean, reduce


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
        pos_d = D[triplets.anchors, triplets.positives]
        if triplets.all_negatives:
            neg_d = D[triplets.negatives]
        else:
            neg_d = D[triplets.anchors, triplets.negatives]
        pos_losses = (pos_d - self.pos_margin).clamp_min(0.0)
        neg_losses = (self.margin - neg_d).clamp_min(0.0)
        loss = reduce(pos_losses, self.reduction) + reduce(neg_losses, self.reduction)
        stats = {
            "active": float((pos_losses > 0).sum() + (neg_losses > 0).sum()),
            "anchors": float(len(D) - triplets.dropped),
            "dropped": float(triplets.dropped),
            "pos_dist": _mean(pos_d.detach()),
            "neg_dist": _mean(neg_d.detach()),
        }
        return loss, stats
