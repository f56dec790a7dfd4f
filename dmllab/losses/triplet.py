"""Triplet loss (Schroff, Kalenichenko, Philbin, "FaceNet", CVPR 2015).

For every selected tuple (a, p, n):

    l(a, p, n) = [D(a, p) - D(a, n) + margin]_+

averaged over all selected tuples (`reduction="mean"`, the default: FaceNet's and the official
LSD code's criterion) or over the tuples with l > 0 (`reduction="nonzero"`, batch-all style, as
pytorch-metric-learning's AvgNonZeroReducer). The reduction sets the base term's scale against a
regulariser: under "mean" it shrinks as triplets are satisfied, so LSD's alpha = 200 acts as in
the paper; under "nonzero" it stays large and the same alpha is far weaker. Squared vs plain
distances is the geometry's choice (`sqeuclidean` vs `euclidean`). With `negatives="all"` every
negative of the anchor forms a tuple with each selected positive (an [M, R] masked matrix over
the R references, never a B x B x R tensor).

>>> import torch
>>> from dmllab.geometry import Euclidean
>>> z = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 0.5], [3.0, 0.0]])
>>> loss = TripletLoss(Euclidean(), positives="nearest", negatives="hardest", margin=1.0)
>>> round(float(loss(z, torch.tensor([0, 0, 1, 1]))), 4)
1.9912
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from dmllab.geometry.base import Geometry
from dmllab.losses.base import (
    REDUCTION_CHECK,
    Matrix,
    TupleLoss,
    check_reduction,
    register_loss,
    tuple_stats,
)
from dmllab.losses.strategies import Triplets


@register_loss("triplet", checks={"reduction": REDUCTION_CHECK})
class TripletLoss(TupleLoss):
    """[D(a, p) - D(a, n) + margin]_+ over the selected tuples."""

    def __init__(
        self, geometry: Geometry | str, *, reduction: str = "mean", **selection: Any
    ) -> None:
        super().__init__(geometry, **selection)
        check_reduction(reduction)
        self.reduction = reduction

    def _tuple_loss(self, matrix: Matrix, triplets: Triplets) -> tuple[Tensor, dict[str, float]]:
        pos_d, neg_d, valid = triplets.distances(matrix.D, matrix.pick)
        losses = (pos_d.unsqueeze(1) - neg_d + self.margin).clamp_min(0.0)
        if triplets.all_negatives:
            losses = losses.masked_fill(~valid, 0.0)
        active = (losses > 0).sum()
        count = valid.sum() if self.reduction == "mean" else active
        stats = tuple_stats(triplets, pos_d, neg_d, valid, active, len(matrix.D))
        return losses.sum() / count.clamp_min(1), stats
