"""`MetricLoss`: the shared machinery of every base loss (input checks, the batch matrix, tuple
selection, statistics), so each concrete loss is only its formula.

A loss reads D = geometry.pairwise(z, z) (anchor first) and the selected tuples. The trainer may
pass D in (`distances=`) so it is computed once per step and shared with LSD. Nothing here
assumes D symmetric or the embeddings normalised.

Losses read the selected entries through `pick(rows, cols)` (= D[rows, cols]). When a strategy
picks single negatives and D is not passed in, the selection runs on D computed without a
gradient and `pick` is `geometry.picker(z, z)`: the same values, but the backward pass touches the
M selected pairs (O(M d)) instead of the whole B x B matrix. A negatives strategy that returns a
mask of all negatives (`negatives="all"`), and a D passed in, keep the differentiable matrix.

The strategies are the registered objects `POSITIVES[positives](k=k_positives)` and
`NEGATIVES[negatives](margin=margin)` (`dmllab.losses.strategies`), so a strategy registered
there is usable by every loss under its name.

After every call `last_stats` holds floats for the training curves:
`active` (tuples or pairs with non-zero loss), `anchors` (anchors used), `dropped` (anchors
without a positive or a negative), `pos_dist` / `neg_dist` (mean selected positive / negative
dissimilarity).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from typing import TypeVar

import torch
from torch import Tensor, nn

from dmllab.arrays import as_floats
from dmllab.geometry import resolve as resolve_geometry
from dmllab.geometry.base import Geometry, all_finite
from dmllab.losses.strategies import (
    Triplets,
    negative_mask,
    negative_strategy,
    positive_strategy,
    same_label_mask,
)

__all__ = ["LOSSES", "MetricLoss", "check_reduction", "mean_or_nan", "register_loss", "tuple_stats"]


class MetricLoss(nn.Module):
    """Base class: `forward(embeddings [B, d], labels [B], distances=None) -> scalar`; labels are
    integer class ids >= 0 (a negative label marks an unlabelled row and is refused).

    geometry: a Geometry object or the name of a fixed one (`"euclidean"`, `"sqeuclidean"`,
    `"cosine"`); a learned one is passed as an object, e.g. `geometry.build("bregman", dim)`.
    float16 / bfloat16 embeddings are computed in float32 (see `geometry.base`).
    Subclasses implement `_loss(D, pick, same, embeddings, labels) -> (loss, stats)`; a loss
    that reads no batch matrix (`uses_batch_matrix = False`) implements
    `_embedding_loss(embeddings, labels)` instead.
    """

    uses_batch_matrix: bool = True
    #: whether the loss reads the positives strategy (prototype_ce compares with class means)
    uses_positives: bool = True

    def __init__(
        self,
        geometry: Geometry | str,
        *,
        positives: str = "all",
        negatives: str = "all",
        margin: float = 0.2,
        k_positives: int = 1,
    ) -> None:
        super().__init__()
        geometry = resolve_geometry(geometry)
        self.positive_strategy = positive_strategy(positives, k_positives)
        if not isinstance(margin, (int, float)) or not margin >= 0:
            raise ValueError(f"margin must be a number >= 0; got {margin!r}")
        self.negative_strategy = negative_strategy(negatives, float(margin))
        self.geometry = geometry
        self.positives = positives
        self.negatives = negatives
        self.margin = float(margin)
        self.k_positives = k_positives
        self.last_stats: dict[str, float] = {}

    def forward(
        self, embeddings: Tensor, labels: Tensor, distances: Tensor | None = None
    ) -> Tensor:
        _check_batch(embeddings, labels, type(self).__name__)
        embeddings = as_floats(embeddings, "embeddings")  # half precision is computed in float32
        if distances is not None and distances.shape != (len(labels), len(labels)):
            raise ValueError(
                "distances must be the [B, B] batch matrix geometry.pairwise(z, z) "
                f"with B={len(labels)}; got shape {tuple(distances.shape)}"
            )
        if self.uses_batch_matrix:
            D, pick = self._batch_matrix(embeddings, distances)
            loss, stats = self._loss(D, pick, same_label_mask(labels), embeddings, labels)
        else:
            loss, stats = self._embedding_loss(embeddings, labels)
        self.last_stats = {key: float(value) for key, value in stats.items()}
        return loss

    def _batch_matrix(
        self, embeddings: Tensor, distances: Tensor | None
    ) -> tuple[Tensor, Callable[[Tensor, Tensor], Tensor]]:
        """(D, pick): the batch matrix for the selection and `pick(rows, cols)` = D[rows, cols]
        for the loss (module docstring: when D carries no gradient and `pick` is the geometry's)."""
        if distances is not None:
            return distances, partial(_gather, distances)
        if not self.negative_strategy.returns_mask and self.geometry.cheap_entries:
            with torch.no_grad():  # for the selection only; the loss differentiates `pick`
                D = self.geometry.pairwise(embeddings, embeddings)
            return D, self.geometry.picker(embeddings, embeddings)
        D = self.geometry.pairwise(embeddings, embeddings)
        return D, partial(_gather, D)

    def _loss(
        self,
        D: Tensor,
        pick: Callable[[Tensor, Tensor], Tensor],
        same: Tensor,
        embeddings: Tensor,
        labels: Tensor,
    ) -> tuple[Tensor, dict[str, float]]:
        """(loss, stats) from D (for the selection and the `negatives="all"` terms) and `pick`."""
        raise NotImplementedError

    def _embedding_loss(
        self, embeddings: Tensor, labels: Tensor
    ) -> tuple[Tensor, dict[str, float]]:
        """(loss, stats) from the embeddings alone, for a loss with `uses_batch_matrix = False`."""
        raise NotImplementedError

    def select(self, D: Tensor, same: Tensor, dim: int) -> Triplets:
        """The tuples of this loss's strategies on its batch matrix D [B, B] (anchor a is column a):
        positives first, then negatives relative to them. A strategy that reads distances between
        unit vectors gets `geometry.unit_sphere_distance(D)`; `dim` is the embedding dimension."""
        pairs = self.positive_strategy(D, same)
        strategy = self.negative_strategy
        rows = self.geometry.unit_sphere_distance(D) if strategy.unit_sphere else D
        return strategy(rows, negative_mask(same), pairs, dim)

    def extra_repr(self) -> str:
        return (
            f"positives={self.positives!r}, negatives={self.negatives!r}, margin={self.margin:g}, "
            f"k_positives={self.k_positives}"
        )


LOSSES: dict[str, type[MetricLoss]] = {}
"""Every loss name (Config.loss) -> its class. Filled by `register_loss` as `dmllab.losses` imports
each module of its package, so a new loss is one new file."""

_Loss = TypeVar("_Loss", bound=type[MetricLoss])


def register_loss(name: str) -> Callable[[_Loss], _Loss]:
    """Class decorator: register a `MetricLoss` subclass in `LOSSES` as `name`.

    Raises ValueError when `name` is taken by another class (re-running the same definition, as a
    notebook cell does, replaces it)."""

    def register(cls: _Loss) -> _Loss:
        taken = LOSSES.get(name)
        if taken is not None and taken.__qualname__ != cls.__qualname__:
            raise ValueError(
                f"loss name {name!r} is taken by {taken.__module__}.{taken.__qualname__}"
            )
        LOSSES[name] = cls
        return cls

    return register


def tuple_stats(
    triplets: Triplets,
    pos_d: Tensor,
    neg_d: Tensor,
    valid: Tensor,
    active: Tensor | int,
    batch: int,
) -> dict[str, float]:
    """The shared `last_stats` of the tuple losses."""
    used = batch - triplets.dropped
    return {
        "active": float(active),
        "anchors": float(used),
        "dropped": float(triplets.dropped),
        "pos_dist": mean_or_nan(pos_d.detach()),
        "neg_dist": float((neg_d.detach() * valid).sum() / valid.sum()) if len(valid) else math.nan,
    }


def _gather(D: Tensor, rows: Tensor, cols: Tensor) -> Tensor:
    return D[rows, cols]


def mean_or_nan(values: Tensor) -> float:
    """The mean of `values` as a float; NaN for an empty tensor (nothing was selected)."""
    return float(values.mean()) if values.numel() else math.nan


def check_reduction(reduction: str) -> None:
    """ValueError unless `reduction` is "mean" (over all selected tuples) or "nonzero" (over the
    tuples with a non-zero loss): the two reductions the tuple losses offer."""
    if reduction not in ("mean", "nonzero"):
        raise ValueError(f"reduction must be 'mean' or 'nonzero'; got {reduction!r}")


def _check_batch(embeddings: Tensor, labels: Tensor, name: str) -> None:
    if embeddings.dim() != 2:
        raise ValueError(f"{name} expects embeddings [B, d]; got shape {tuple(embeddings.shape)}")
    if labels.dim() != 1 or len(labels) != len(embeddings):
        raise ValueError(
            f"{name}: labels must be a 1-D tensor with one label per embedding; got labels "
            f"{tuple(labels.shape)} for embeddings {tuple(embeddings.shape)}"
        )
    if labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise ValueError(f"{name}: labels must be integer class ids; got dtype {labels.dtype}")
    if bool((labels < 0).any()):
        raise ValueError(
            f"{name}: labels must be class ids >= 0; got {int(labels.min())} (a negative label "
            "marks an unlabelled row): drop those rows or give them a class"
        )
    if not all_finite(embeddings):
        raise ValueError(
            f"{name}: embeddings contain NaN or inf (check the model's output / learning rate)"
        )
    if not bool((labels != labels[0]).any()):
        raise ValueError(
            f"{name}: the batch has fewer than 2 classes, so there are no negatives; "
            "sample at least 2 classes per batch (classes_per_batch >= 2)"
        )
