"""Margin loss (Wu, Manmatha, Smola, Kraehenbuehl, "Sampling Matters in Deep Embedding
Learning", ICCV 2017), with a learnable boundary beta:

    l(a, p) = [alpha + D(a, p) - beta]_+        l(a, n) = [alpha - D(a, n) + beta]_+

alpha = `margin` (default 0.2); beta is a parameter initialised at `beta` (1.2), one shared value
or one per class (`per_class_beta=True`, needs the training classes: `classes`, their label ids,
or `num_classes` C for ids 0..C-1; `fit` passes them). Per-class values are indexed by the
position of the anchor's label among those classes, so labels need not be 0..C-1. The trainer
optimises beta with the loss's learning rate (`Config.loss_lr`).

Each selected (a, p) pair is matched with its selected negative n, so the loss is a sum over
tuples (a, p, n) of l(a, p) + l(a, n), divided by the number of non-zero terms (0 when none is
active). With `negatives="all"` every (a, p, n), n in N(a), counts; this is computed in
O(B R) by weighting l(a, p) with |N(a)| and l(a, n) with the number of selected positives of a
(the same value as pytorch-metric-learning's MarginLoss over all triplets).

>>> import torch
>>> from dmllab.geometry import Euclidean
>>> z = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 0.5], [3.0, 0.0]])
>>> loss = MarginLoss(Euclidean(), positives="nearest", negatives="hardest")
>>> round(loss(z, torch.tensor([0, 0, 1, 1])).item(), 4)
1.2329
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from dmllab.geometry.base import Geometry
from dmllab.losses.base import (
    Matrix,
    TupleLoss,
    at_least,
    class_ids,
    mean_or_nan,
    register_loss,
)
from dmllab.losses.strategies import Triplets


@register_loss("margin", checks={"beta": at_least(0.0)})
class MarginLoss(TupleLoss):
    """[margin + D(a, p) - beta]_+ + [margin - D(a, n) + beta]_+, normalised by active terms."""

    #: beta: one value, or one per class (a Parameter, or a buffer when not learned)
    beta: Tensor
    #: the label id of each per-class beta (a buffer; only with per_class_beta=True)
    beta_classes: Tensor

    def __init__(
        self,
        geometry: Geometry | str,
        *,
        beta: float = 1.2,
        learn_beta: bool = True,
        per_class_beta: bool = False,
        num_classes: int | None = None,
        classes: Sequence[int] | Tensor | None = None,
        **selection: Any,
    ) -> None:
        super().__init__(geometry, **selection)
        if per_class_beta:
            # the label id of each beta: a buffer, so a saved run restores it with beta
            self.register_buffer(
                "beta_classes", class_ids(num_classes, classes, "per_class_beta=True")
            )
        size = len(self.beta_classes) if per_class_beta else 1
        initial = torch.full((size,), float(beta))
        if learn_beta:
            self.beta = nn.Parameter(initial)
        else:
            self.register_buffer("beta", initial)
        self.per_class_beta = per_class_beta

    @classmethod
    def learns_parameters(cls, options: Mapping[str, Any]) -> bool:
        """beta is a Parameter unless `learn_beta=False`."""
        return bool(options.get("learn_beta", True))

    def _tuple_loss(self, matrix: Matrix, triplets: Triplets) -> tuple[Tensor, dict[str, float]]:
        D, pick = matrix.D, matrix.pick
        beta = self._beta(matrix.labels)
        pos_weight: Tensor | float
        neg_weight: Tensor | float
        pos_d = pick(triplets.anchors, triplets.positives)
        pos_losses = (self.margin + pos_d - beta[triplets.anchors]).clamp_min(0.0)
        if triplets.all_negatives:
            # Every (a, p) term occurs |N(a)| times and every (a, n) term once per selected
            # positive of a: weight the B x R terms instead of building all tuples.
            n_pos = torch.bincount(triplets.anchors, minlength=len(D)).to(D.dtype)
            negatives = triplets.negatives
            pos_weight = negatives.sum(dim=1).to(D.dtype)[triplets.anchors]
            neg_weight = n_pos.unsqueeze(1) * negatives
            neg_d = D[negatives]
            neg_losses = (self.margin - D + beta.unsqueeze(1)).clamp_min(0.0) * negatives
        else:
            neg_d = pick(triplets.anchors, triplets.negatives)
            neg_losses = (self.margin - neg_d + beta[triplets.anchors]).clamp_min(0.0)
            pos_weight = neg_weight = 1.0
        total = (pos_weight * pos_losses).sum() + (neg_weight * neg_losses).sum()
        active_weight = (pos_weight * (pos_losses > 0)).sum() + (
            neg_weight * (neg_losses > 0)
        ).sum()
        loss = total / torch.as_tensor(active_weight, dtype=D.dtype).clamp_min(1.0)
        stats = {
            "active": float((pos_losses > 0).sum() + (neg_losses > 0).sum()),
            "anchors": float(len(D) - triplets.dropped),
            "dropped": float(triplets.dropped),
            "pos_dist": mean_or_nan(pos_d.detach()),
            "neg_dist": mean_or_nan(neg_d.detach()),
        }
        return loss, stats

    def _beta(self, labels: Tensor) -> Tensor:
        """beta for every batch item: [B]."""
        if not self.per_class_beta:
            return self.beta.expand(len(labels))
        ids = self.beta_classes
        position = torch.searchsorted(ids, labels).clamp_max(len(ids) - 1)
        unknown = ids[position] != labels
        if bool(unknown.any()):
            raise ValueError(
                f"per-class beta was built for {len(ids)} classes {ids.tolist()[:20]} "
                f"but the batch has label(s) {torch.unique(labels[unknown]).tolist()[:20]}; "
                "build the loss with classes= (or num_classes=) covering every training label"
            )
        return self.beta[position]
