"""Prototype cross-entropy: a softmax over class means, under any geometry.

With c_k the mean embedding of class k (the prototype goes in the SECOND argument of D: for every
Bregman divergence the arithmetic mean minimises sum_i D(x_i || c), Banerjee, Merugu, Dhillon,
Ghosh, "Clustering with Bregman Divergences", JMLR 2005), each sample's logits are
-D(x_i || c_k) / T and

    L = mean_i CE(softmax_k(-D(x_i || c_k) / T), y_i)

T = `temperature` (default 0.05). A scale-free loss in the spirit of NCA / proxy losses
(Goldberger et al. 2004; Snell et al., "Prototypical Networks", NeurIPS 2017), which a learned
geometry cannot satisfy by inflating D. It is a plain `MetricLoss`: it compares each sample with
every class mean, so it takes no selection strategy, and it reads D(x, c), not the matrix
D(x, ref) (`distances` passed in are not read).

The class means are those of the reference set: the batch itself by default, or `ref`,
`ref_labels` when given (a memory of earlier batches widens them). Every batch label needs at
least one reference sample (ValueError otherwise); the softmax runs over the reference's classes.
A prototype includes every reference row of its class, the anchor's own row too when the batch is
part of the reference set (as within the batch), so `own` is not read.

>>> import torch
>>> from dmllab.geometry import SquaredEuclidean
>>> z = torch.tensor([[0.0, 0.0], [0.0, 0.2], [1.0, 0.0], [1.0, 0.2]])
>>> loss = PrototypeCrossEntropy(SquaredEuclidean(), temperature=1.0)
>>> round(loss(z, torch.tensor([0, 0, 1, 1])).item(), 4)
0.3133
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F

from dmllab.geometry.base import Geometry
from dmllab.losses.base import Inputs, MetricLoss, at_least, mean_or_nan, register_loss


@register_loss("prototype_ce", checks={"temperature": at_least(0.0, open=True)})
class PrototypeCrossEntropy(MetricLoss):
    """CE over logits -D(x, class mean) / temperature; see the module docstring."""

    def __init__(self, geometry: Geometry | str, *, temperature: float = 0.05) -> None:
        super().__init__(geometry)
        if not isinstance(temperature, (int, float)) or not temperature > 0:
            raise ValueError(f"prototype_ce temperature must be > 0; got {temperature!r}")
        self.temperature = float(temperature)

    def _loss(self, inputs: Inputs) -> tuple[Tensor, dict[str, float]]:
        ref, labels = inputs.ref, inputs.labels
        classes, ref_target = torch.unique(inputs.ref_labels, return_inverse=True)
        counts = torch.bincount(ref_target).to(ref.dtype)
        sums = ref.new_zeros(len(counts), ref.shape[1]).index_add(0, ref_target, ref)
        prototypes = sums / counts.unsqueeze(1)
        target = _positions(classes, labels)
        to_prototypes = self.geometry.pairwise(inputs.z, prototypes)
        loss = F.cross_entropy(-to_prototypes / self.temperature, target)
        own = F.one_hot(target, len(counts)).bool()
        stats = {
            "active": float(len(labels)),
            "anchors": float(len(labels)),
            "dropped": 0.0,
            "pos_dist": mean_or_nan(to_prototypes.detach()[own]),
            "neg_dist": mean_or_nan(to_prototypes.detach()[~own]),
        }
        return loss, stats

    def extra_repr(self) -> str:
        return f"temperature={self.temperature:g}"


def _positions(classes: Tensor, labels: Tensor) -> Tensor:
    """The position of each label among the sorted `classes`; ValueError for a label that is not
    among them (a batch class without a sample in the reference set)."""
    position = torch.searchsorted(classes, labels).clamp_max(len(classes) - 1)
    missing = classes[position] != labels
    if bool(missing.any()):
        raise ValueError(
            f"prototype_ce: batch label(s) {torch.unique(labels[missing]).tolist()[:20]} have no "
            "sample in the reference set, so no class mean; pass a reference set that holds "
            "every batch class (e.g. the batch followed by the memory)"
        )
    return position
