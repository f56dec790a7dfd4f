"""`MetricLoss` and `TupleLoss`: the shared machinery of every base loss (input checks, the
reference set, the dissimilarity matrix, tuple selection, statistics), so each concrete loss is
only its formula.

The contract of every loss: the batch against a reference set,

    loss_fn(z [B, d], labels [B], ref=None [R, d], ref_labels=None [R], distances=None [B, R],
            *, own=None [B]) -> scalar

- `ref`, `ref_labels`: what the batch is compared with (a cross-batch memory, the batch gathered
  across processes, a gallery). None: the batch itself (R = B).
- `own`: the anchors' own rows in the reference set, excluded by index, never by distance (so a
  duplicate embedding at distance 0 still counts): a LongTensor [B], own[a] = the row of ref that
  is anchor a. With `ref=None` it is the diagonal (own[a] = a) and need not be given. With a
  reference set, None means the batch is not part of it; a caller that puts the batch in it says
  where, e.g. `own=torch.arange(B)` for `ref = torch.cat([z, memory])` (the batch first).
- `distances`: D = geometry.pairwise(z, ref) [B, R] (query first) when the caller has computed it
  (the trainer computes it once per step and shares it with LSD); otherwise the loss computes
  what it reads.

A memory of two earlier embeddings gives each anchor a nearer positive than the batch has:

>>> import torch
>>> from dmllab.losses import TripletLoss
>>> z = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 0.5], [3.0, 0.0]])
>>> labels = torch.tensor([0, 0, 1, 1])
>>> memory, memory_labels = torch.tensor([[0.1, 0.0], [2.9, 0.1]]), torch.tensor([0, 1])
>>> loss = TripletLoss("euclidean", positives="nearest", negatives="hardest", margin=1.0)
>>> round(float(loss(z, labels)), 4)
1.9912
>>> ref, ref_labels = torch.cat([z, memory]), torch.cat([labels, memory_labels])
>>> round(float(loss(z, labels, ref, ref_labels, own=torch.arange(4))), 4)
1.2024

Nothing here assumes D symmetric or the embeddings normalised. After every call `last_stats`
holds floats for the training curves: `active` (tuples or pairs with non-zero loss), `anchors`
(anchors used), `dropped` (anchors without a positive or a negative), `pos_dist` / `neg_dist`
(mean selected positive / negative dissimilarity).

Two kinds of loss:

- `MetricLoss`: a plain loss over the checked `Inputs` (prototype cross-entropy: it compares each
  sample with class means, not with selected samples; the proxy losses, `dmllab.losses.proxies`:
  with learned class vectors, reading no reference set). It takes only its geometry, its own
  options and the context it names.
- `TupleLoss(MetricLoss)`: a loss that reads selected (anchor, positive, negative) tuples of D
  (contrastive, triplet, margin, multi-similarity). It takes the selection keywords
  `positives, negatives, margin, k_positives`; the strategies are the registered objects
  `POSITIVES[positives](k=k_positives)` and `NEGATIVES[negatives](margin=margin)`
  (`dmllab.losses.strategies`), so a strategy registered there is usable by every tuple loss.
  Whether a loss reads the strategies is whether it is one: `issubclass(LOSSES[name], TupleLoss)`.

A tuple loss reads the selected entries through `pick(rows, cols)` (= D[rows, cols]). When a
strategy picks single negatives and D is not passed in, the selection runs on D computed without a
gradient and `pick` is `geometry.picker(z, ref)`: the same values, but the backward pass touches
the M selected pairs (O(M d)) instead of the whole B x R matrix. A negatives strategy that returns
a mask of all negatives (`negatives="all"`), and a D passed in, keep the differentiable matrix.

`LOSSES` is the registry of loss names; a loss's options (`Config.loss_options`) are its
constructor's keyword arguments besides the context `build.build_loss` supplies: the geometry,
the selection keywords (Config fields of the same names), the training classes (`classes`, their
label ids, or `num_classes`) and the embedding dimension (`embedding_dim`). A loss names what it
needs of them as a parameter.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
from torch import Tensor, nn

from dmllab.arrays import as_floats
from dmllab.geometry import resolve as resolve_geometry
from dmllab.geometry.base import Geometry, all_finite
from dmllab.losses.strategies import (
    Triplets,
    different_label_mask,
    negative_strategy,
    positive_strategy,
    same_label_mask,
)
from dmllab.registry import Check, Registry
from dmllab.values import choice, number

__all__ = [
    "LOSSES",
    "SELECTION",
    "Inputs",
    "Matrix",
    "MetricLoss",
    "TupleLoss",
    "check_reduction",
    "mean_or_nan",
    "register_loss",
    "tuple_stats",
]


@dataclass(frozen=True)
class Inputs:
    """One call's checked inputs: the batch and its reference set.

    z [B, d] and ref [R, d] floating (half precision computed in float32; `ref is z` when the call
    gave no reference set), labels [B] and ref_labels [R] integer class ids, own [B] (each
    anchor's row in ref) or None, distances [B, R] or None (see the module docstring)."""

    z: Tensor
    labels: Tensor
    ref: Tensor
    ref_labels: Tensor
    own: Tensor | None
    distances: Tensor | None


@dataclass(frozen=True)
class Matrix:
    """The batch against its reference set, as a tuple loss reads it.

    D [B, R]: for the selection and for the terms that read whole rows (`negatives="all"`);
    pick(rows, cols) = D[rows, cols], differentiable (see the module docstring);
    same, different [B, R]: y_r == y_a (the anchor's own row excluded) and y_r != y_a;
    labels [B]; dim: the embedding dimension."""

    D: Tensor
    pick: Callable[[Tensor, Tensor], Tensor]
    same: Tensor
    different: Tensor
    labels: Tensor
    dim: int


class MetricLoss(nn.Module):
    """Base class: `forward(z [B, d], labels [B], ref=None, ref_labels=None, distances=None, *,
    own=None) -> scalar` (the contract in the module docstring); labels are integer class ids
    >= 0 (a negative label marks an unlabelled row and is refused).

    geometry: a Geometry object or the name of a fixed one (`"euclidean"`, `"sqeuclidean"`,
    `"cosine"`); a learned one is passed as an object, e.g. `geometry.build("bregman", dim)`.
    Subclasses implement `_loss(inputs) -> (loss, stats)`. Raises ValueError for inputs that
    break the contract (shapes, dtypes, NaN / inf, a batch without two classes).
    """

    #: whether the loss reads the reference set. One that does not (a proxy loss compares each
    #: sample with its own learned class vectors) computes on the batch alone, ignoring `ref`,
    #: `ref_labels`, `own` and `distances`, and `Config` refuses a cross-batch memory for it.
    reads_reference: bool = True

    def __init__(self, geometry: Geometry | str) -> None:
        super().__init__()
        self.geometry = resolve_geometry(geometry)
        self.last_stats: dict[str, float] = {}

    def forward(
        self,
        embeddings: Tensor,
        labels: Tensor,
        ref: Tensor | None = None,
        ref_labels: Tensor | None = None,
        distances: Tensor | None = None,
        *,
        own: Tensor | None = None,
    ) -> Tensor:
        inputs = _checked(embeddings, labels, ref, ref_labels, distances, own, type(self).__name__)
        if not self.reads_reference and inputs.ref is not inputs.z:
            z, labels = inputs.z, inputs.labels  # the batch alone (see `reads_reference`)
            inputs = Inputs(z, labels, z, labels, torch.arange(len(labels), device=z.device), None)
        loss, stats = self._loss(inputs)
        self.last_stats = {key: float(value) for key, value in stats.items()}
        return loss

    def _loss(self, inputs: Inputs) -> tuple[Tensor, dict[str, float]]:
        """(loss, stats) from the checked inputs."""
        raise NotImplementedError

    def proxy_parameters(self) -> list[nn.Parameter]:
        """The loss's learned class vectors (proxies), which the trainer optimises in a group of
        their own (`Config.proxy_lr`); none by default."""
        return []

    @classmethod
    def learns_proxies(cls, options: Mapping[str, Any]) -> bool:
        """Whether the loss built with `options` has proxies (`proxy_parameters`, trained at
        `Config.proxy_lr`), read without building it; `Config` refuses a proxy_lr it would
        ignore. False by default."""
        return False

    @classmethod
    def learns_parameters(cls, options: Mapping[str, Any]) -> bool:
        """Whether the loss built with `options` has trainable parameters of its own besides its
        proxies and its geometry's (trained at `Config.loss_lr`), read without building it;
        `Config` refuses a loss_lr that nothing would read. False by default."""
        return False


class TupleLoss(MetricLoss):
    """A loss over the tuples that the selection strategies choose on D = pairwise(z, ref).

    positives, negatives: registered strategy names (`POSITIVES`, `NEGATIVES`); k_positives:
    positives per anchor for the strategies that rank them; margin (>= 0): the loss's margin, and
    the semi-hard window of the negatives strategy. Subclasses implement
    `_tuple_loss(matrix, triplets) -> (loss, stats)`; a subclass's constructor takes its own
    options and passes the rest on (`**selection`), so its options and the selection keywords
    are read from the two signatures together. Raises ValueError for an unknown strategy name, a
    bad k_positives or a negative margin.
    """

    def __init__(
        self,
        geometry: Geometry | str,
        *,
        positives: str = "all",
        negatives: str = "all",
        margin: float = 0.2,
        k_positives: int = 1,
    ) -> None:
        super().__init__(geometry)
        self.positive_strategy = positive_strategy(positives, k_positives)
        if not isinstance(margin, (int, float)) or not margin >= 0:
            raise ValueError(f"margin must be a number >= 0; got {margin!r}")
        self.negative_strategy = negative_strategy(negatives, float(margin))
        self.positives = positives
        self.negatives = negatives
        self.margin = float(margin)
        self.k_positives = k_positives

    def _loss(self, inputs: Inputs) -> tuple[Tensor, dict[str, float]]:
        matrix = self.matrix(inputs)
        return self._tuple_loss(matrix, self.select(matrix))

    def _tuple_loss(self, matrix: Matrix, triplets: Triplets) -> tuple[Tensor, dict[str, float]]:
        """(loss, stats) from the selected tuples and the matrix they index."""
        raise NotImplementedError

    def matrix(self, inputs: Inputs) -> Matrix:
        """D, `pick` and the label masks for `inputs` (module docstring: when D carries no
        gradient and `pick` is the geometry's)."""
        z, ref, D = inputs.z, inputs.ref, inputs.distances
        pick: Callable[[Tensor, Tensor], Tensor]
        if D is not None:
            pick = partial(_gather, D)
        elif not self.negative_strategy.returns_mask and self.geometry.cheap_entries:
            with torch.no_grad():  # for the selection only; the loss differentiates `pick`
                D = self.geometry.pairwise(z, ref)
            pick = self.geometry.picker(z, ref)
        else:
            D = self.geometry.pairwise(z, ref)
            pick = partial(_gather, D)
        same = same_label_mask(inputs.labels, inputs.ref_labels, own=inputs.own)
        different = different_label_mask(inputs.labels, inputs.ref_labels)
        return Matrix(D, pick, same, different, inputs.labels, z.shape[1])

    def select(self, matrix: Matrix) -> Triplets:
        """The tuples of this loss's strategies on `matrix.D` [B, R]: positives first, then
        negatives relative to them. A strategy that reads distances between unit vectors gets
        `geometry.unit_sphere_distance(D)`."""
        pairs = self.positive_strategy(matrix.D, matrix.same)
        strategy = self.negative_strategy
        rows = self.geometry.unit_sphere_distance(matrix.D) if strategy.unit_sphere else matrix.D
        return strategy(rows, matrix.different, pairs, matrix.dim)

    def extra_repr(self) -> str:
        return (
            f"positives={self.positives!r}, negatives={self.negatives!r}, margin={self.margin:g}, "
            f"k_positives={self.k_positives}"
        )


#: the selection keywords of a tuple loss: Config fields of the same names
SELECTION = tuple(
    name
    for name in inspect.signature(TupleLoss.__init__).parameters
    if name not in ("self", "geometry")
)

LOSSES: Registry[type[MetricLoss]] = Registry(
    "loss",
    context=("geometry", *SELECTION, "classes", "num_classes", "embedding_dim"),
    from_config="dmllab.build.build_loss(config, geometry)",
)
"""Every loss name (Config.loss) -> its class. Filled by `register_loss` as `dmllab.losses` imports
each module of its package, so a new loss is one new file."""

#: Class decorator: register a `MetricLoss` subclass in `LOSSES` as `name` (with `checks=`: an
#: option's own value check, e.g. `{"alpha": at_least(0.0, open=True)}`; the others are checked
#: against their defaults' types); DuplicateName (a ValueError) when another class holds the name
#: (the same definition run again replaces it).
register_loss = LOSSES.register


def at_least(low: float, *, open: bool = False) -> Check:
    """An option check (`Registry.check_options`): a finite number >= `low` (> `low` if
    `open`), BadValue naming the option otherwise."""
    return lambda owner, value: number(owner, value, low, low_open=open)


def one_of(*allowed: str) -> Check:
    """An option check: one of the `allowed` strings."""
    return lambda owner, value: choice(owner, value, allowed)


#: the option check of a tuple loss's `reduction` (`check_reduction`)
REDUCTION_CHECK = one_of("mean", "nonzero")


def embedding_size(embedding_dim: Any, name: str) -> int:
    """`embedding_dim` as the size of a loss's own per-class vectors (proxies, PML weights);
    ValueError naming `name` unless it is an int >= 1."""
    if isinstance(embedding_dim, bool) or not isinstance(embedding_dim, int) or embedding_dim < 1:
        raise ValueError(
            f"{name} needs embedding_dim, the embedding dimension (an int >= 1; fit passes it); "
            f"got {embedding_dim!r}"
        )
    return embedding_dim


def class_ids(num_classes: int | None, classes: Sequence[int] | Tensor | None, name: str) -> Tensor:
    """The sorted class ids: `classes`, else 0..num_classes-1; ValueError when fewer than 2."""
    if classes is not None:
        ids = torch.unique(torch.as_tensor(classes))
        if ids.is_floating_point() or ids.dtype == torch.bool:
            raise ValueError(f"{name}: classes must be integer label ids; got {ids.dtype}")
    elif isinstance(num_classes, int) and not isinstance(num_classes, bool):
        ids = torch.arange(num_classes)
    else:
        ids = torch.empty(0)
    if len(ids) < 2:
        raise ValueError(
            f"{name} needs num_classes=<C> (label ids 0..C-1) or classes=<the training label "
            f"ids>, at least 2 classes (fit passes them); got num_classes={num_classes!r}, "
            f"classes={classes!r}"
        )
    return ids.long()


def class_positions(ids: Tensor, labels: Tensor, name: str) -> Tensor:
    """The position of each label among the sorted class `ids` [B]; ValueError naming `name` for
    a label that is not among them."""
    position = torch.searchsorted(ids, labels).clamp_max(len(ids) - 1)
    unknown = ids[position] != labels
    if bool(unknown.any()):
        raise ValueError(
            f"{name} was built for the classes {ids.tolist()[:20]} but the batch has label(s) "
            f"{torch.unique(labels[unknown]).tolist()[:20]}; build the loss with classes= (or "
            "num_classes=) covering every training label"
        )
    return position


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


def _checked(
    embeddings: Tensor,
    labels: Tensor,
    ref: Tensor | None,
    ref_labels: Tensor | None,
    distances: Tensor | None,
    own: Tensor | None,
    name: str,
) -> Inputs:
    """The call's inputs checked against the contract (module docstring); ValueError naming
    `name`, what was wrong and the fix."""
    _check_rows(embeddings, labels, name, "embeddings", "labels")
    embeddings = as_floats(embeddings, "embeddings")  # half precision is computed in float32
    if (ref is None) != (ref_labels is None):
        raise ValueError(f"{name}: pass ref and ref_labels together (or neither)")
    if ref is None or ref_labels is None:
        if own is not None:
            raise ValueError(
                f"{name}: own gives the anchors' rows in a reference set; without ref the "
                "reference is the batch and anchor a is row a (leave own=None)"
            )
        ref, ref_labels = embeddings, labels  # the batch itself: `ref is z`
        own = torch.arange(len(labels), device=labels.device)
    else:
        _check_rows(ref, ref_labels, name, "ref", "ref_labels")
        ref = as_floats(ref, "ref")
        if ref.shape[1] != embeddings.shape[1]:
            raise ValueError(
                f"{name}: ref must have the embeddings' dimension d={embeddings.shape[1]}; "
                f"got ref {tuple(ref.shape)}"
            )
        if own is not None:
            _check_own(own, labels, ref_labels, name)
    if not bool((labels != labels[0]).any()) and not bool((ref_labels != labels[0]).any()):
        raise ValueError(
            f"{name}: the batch has fewer than 2 classes, so there are no negatives; "
            "sample at least 2 classes per batch (classes_per_batch >= 2)"
        )
    expected = (len(labels), len(ref_labels))
    if distances is not None and distances.shape != expected:
        raise ValueError(
            "distances must be the matrix geometry.pairwise(z, ref) [B, R] (ref = z without a "
            f"reference set) with B={expected[0]}, R={expected[1]}; "
            f"got shape {tuple(distances.shape)}"
        )
    return Inputs(embeddings, labels, ref, ref_labels, own, distances)


def _check_rows(rows: Tensor, labels: Tensor, name: str, what: str, labels_name: str) -> None:
    if rows.dim() != 2:
        raise ValueError(f"{name} expects {what} [B, d]; got shape {tuple(rows.shape)}")
    if labels.dim() != 1 or len(labels) != len(rows):
        raise ValueError(
            f"{name}: {labels_name} must be a 1-D tensor with one label per embedding; got "
            f"{labels_name} {tuple(labels.shape)} for {what} {tuple(rows.shape)}"
        )
    if labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise ValueError(
            f"{name}: {labels_name} must be integer class ids; got dtype {labels.dtype}"
        )
    if bool((labels < 0).any()):
        raise ValueError(
            f"{name}: {labels_name} must be class ids >= 0; got {int(labels.min())} (a negative "
            "label marks an unlabelled row): drop those rows or give them a class"
        )
    if not all_finite(rows):
        raise ValueError(
            f"{name}: {what} contain NaN or inf (check the model's output / learning rate)"
        )


def _check_own(own: Tensor, labels: Tensor, ref_labels: Tensor, name: str) -> None:
    """`own` [B]: a row of the reference set per anchor, holding the anchor's label."""
    ok = (
        own.dim() == 1
        and len(own) == len(labels)
        and not own.dtype.is_floating_point
        and own.dtype != torch.bool
        and bool(((own >= 0) & (own < len(ref_labels))).all())
    )
    if not ok or not bool((ref_labels[own] == labels).all()):
        raise ValueError(
            f"{name}: own must give each anchor's row in the reference set (integers in "
            f"[0, {len(ref_labels)}), one per anchor, rows with the anchor's label), e.g. "
            "torch.arange(B) when ref starts with the batch; "
            f"got own of shape {tuple(own.shape)} and dtype {own.dtype}"
        )
