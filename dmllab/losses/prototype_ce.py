"""Prototype cross-entropy: a softmax over the batch's class means, under any geometry.

With c_k the mean embedding of class k in the batch (the prototype goes in the SECOND argument of
D: for every Bregman divergence the arithmetic mean minimises sum_i D(x_i || c), Banerjee,
Merugu, Dhillon, Ghosh, "Clustering with Bregman Divergences", JMLR 2005), each sample's logits
are -D(x_i || c_k) / T and

    L = mean_i CE(softmax_k(-D(x_i || c_k) / T), y_i)

T = `temperature` (default 0.05). A scale-free loss in the spirit of NCA / proxy losses
(Goldberger et al. 2004; Snell et al., "Prototypical Networks", NeurIPS 2017), which a learned
geometry cannot satisfy by inflating D. It reads D(x, c), not the batch matrix, so
`uses_batch_matrix` is False and any `distances` passed in are not used; the positives /
negatives strategies do not apply (every prototype is in the softmax). Prototypes include the
sample itself.

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
from dmllab.losses.base import MetricLoss, mean_or_nan, register_loss


@register_loss("prototype_ce")
class PrototypeCrossEntropy(MetricLoss):
    """CE over logits -D(x, class mean) / temperature; see the module docstring."""

    uses_batch_matrix = False
    uses_positives = False

    def __init__(
        self,
        geometry: Geometry | str,
        *,
        positives: str = "all",
        negatives: str = "all",
        margin: float = 0.2,
        k_positives: int = 1,
        temperature: float = 0.05,
    ) -> None:
        super().__init__(
            geometry,
            positives=positives,
            negatives=negatives,
            margin=margin,
            k_positives=k_positives,
        )
        if not isinstance(temperature, (int, float)) or not temperature > 0:
            raise ValueError(f"prototype_ce temperature must be > 0; got {temperature!r}")
        self.temperature = float(temperature)

    def _embedding_loss(
        self, embeddings: Tensor, labels: Tensor
    ) -> tuple[Tensor, dict[str, float]]:
        _, target = torch.unique(labels, return_inverse=True)
        counts = torch.bincount(target).to(embeddings.dtype)
        sums = embeddings.new_zeros(len(counts), embeddings.shape[1]).index_add(
            0, target, embeddings
        )
        prototypes = sums / counts.unsqueeze(1)
        to_prototypes = self.geometry.pairwise(embeddings, prototypes)
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
