"""Triplet loss (Schroff, Kalenichenko, Philbin, "FaceNet", CVPR 2015).

For every selected tuple (a, p, n):

    l(a, p, n) = [D(a, p) - D(a, n) + margin]_+

averaged over all selected tuples (`reduction="mean"`, the default: FaceNet's and the official
LSD code's criterion) or over the tuples with l > 0 (`reduction="nonzero"`, batch-all style, as
pytorch-metric-learning's AvgNonZeroReducer). The reduction sets the base term's scale against a
regulariser: under "mean" it shrinks as triplets are satisfied, so LSD's alpha = 200 acts as in
the paper; under "nonzero" it stays large and the same alpha is far weaker. Squared vs plain
distances is the geometry's choice (`sqeuclidean` vs `euclidean`). With `negatives="all"` every
negative of the anchor forms a tuple with each selected positive (an [M, B] masked matrix, never
a B x B x B tensor).

>>> import torch
>>> from dmllab.geometry import Euclidean
>>> z = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 0.5], [3.0, 0.0]])
>>> loss = TripletLoss(Euclidean(), positives="nearest", negatives="hardest", margin=1.0)
>>> round(float(loss(z, torch.tensor([0, 0, 1, 1]))), 4)
1.9912
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor

from dmllab.geometry.base import Geometry
from dmllab.losses.base import MetricLoss, check_reduction, register_loss, tuple_stats


@register_loss("triplet")
class TripletLoss(MetricLoss):
    """[D(a, p) - D(a, n) + margin]_+ over the selected tuples."""

    def __init__(
        self,
        geometry: Geometry,
        *,
        positives: str = "all",
        negatives: str = "all",
        margin: float = 0.2,
        k_positives: int = 1,
        reduction: str = "mean",
    ) -> None:
        super().__init__(
            geometry,
            positives=positives,
            negatives=negatives,
            margin=margin,
            k_positives=k_positives,
        )
        check_reduction(reduction)
        self.reduction = reduction

    def _loss(
        self,
        D: Tensor,
        pick: Callable[[Tensor, Tensor], Tensor],
        same: Tensor,
        embeddings: Tensor,
        labels: Tensor,
    ) -> tuple[Tensor, dict[str, float]]:
        triplets = self.select(D, same, embeddings.shape[1])
        pos_d, neg_d, valid = triplets.distances(D, pick)
        losses = (pos_d.unsqueeze(1) - neg_d + self.margin).clamp_min(0.0)
        if triplets.all_negatives:
            losses = losses.masked_fill(~valid, 0.0)
        active = (losses > 0).sum()
        count = valid.sum() if self.reduction == "mean" else active
        stats = tuple_stats(triplets, pos_d, neg_d, valid, active, len(D))
        return losses.sum() / count.clamp_min(1), stats
