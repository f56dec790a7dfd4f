"""pytorch-metric-learning's losses through an adapter: `loss="pml:<LossName>"`, with the lab's
geometry as the distance and the lab's positive / negative selection as the index tuples.

`Config(loss="pml:TripletMarginLoss", margin=0.1, loss_options={"swap": True})` trains
pytorch-metric-learning's (PML's) `TripletMarginLoss(margin=0.1, swap=True)` like a built-in tuple
loss: `loss_options` go to the PML class (its constructor's options, their names and values
checked by `Config`: a value of the kind of PML's default, a number where PML's default is one,
inside the range PML documents, e.g. temperature > 0; options that take a PML object, such as
`reducer` or `embedding_regularizer`, are refused and keep PML's defaults), and

(a) its distance is the run's geometry (`GeometryDistance`): PML reads the matrix
    D = geometry.pairwise(z, ref) [B, R], query (anchor) first, as a distance (smaller = closer,
    PML's `is_inverted=False`), unnormalised (the model normalises when `Config.normalize`). An
    asymmetric geometry (Bregman) is read as D(query || reference) everywhere PML reads its matrix
    with the anchor first (every accepted loss; `TripletMarginLoss(swap=True)` also reads
    D(positive || negative)); PML's `pairwise_distance(x, y)` is D(x_i || y_i).
(b) the lab's selection (`positives`, `negatives`, `k_positives`, `margin` as the semi-hard
    window; `dmllab.losses.strategies`) is handed over as PML's `indices_tuple`: a triplet
    (anchors, positives, negatives) when one negative is chosen per pair, the pairs
    (anchors, positives, anchors', negatives) when `negatives="all"`. A PML option named `margin`
    is `Config.margin`, as for the lab's own tuple losses (the loss's margin and the semi-hard
    window); its other options (`pos_margin`, `alpha`, ...) are `loss_options`, with PML's
    defaults. A pair loss reads the tuple's positive
    and negative pairs, a triplet loss its triplets (PML converts pairs to triplets by anchor),
    and the proxy and NCA losses read it as sample weights (how often each sample was chosen).
    With `positives="all"`, `negatives="all"` and no reference set the adapter passes no tuple:
    PML's own default, every pair (or triplet, or weight 1), the same selection.

A reference set (a cross-batch memory) goes to PML as `ref_emb`, `ref_labels`, and the tuple's
indices are its rows: the lab's selection leaves each anchor's own row out by index, which PML
cannot do by itself. A loss whose contract takes no reference set, or reads the tuple only as
weights (so cannot leave the anchor's own row out), reads the batch alone
(`reads_reference = False`; `Config` refuses a memory for it).

What the adapter refuses, and why (`REFUSED`): losses that assert a distance of their own (PML's
`CosineSimilarity` for the angular-margin and cosine-only losses, `LpDistance` on normalised
embeddings, `SNRDistance`, a similarity for `SoftTripleLoss`), `HistogramLoss` (it bins its
matrix as similarities in [-1, 1] whatever the distance says), losses that take no index tuple
(`RankedListLoss`, `P2SGradLoss`, `VICRegLoss`, `InstanceLoss`, `PNPLoss`) or read it as
something else (`ManifoldLoss`: meta-classes), wrappers (`CrossBatchMemory`: the lab's memory is
`Config.memory_size`; `MultipleLosses`, `SelfSupervisedLoss`), and base classes. `ACCEPTED`
lists what runs, each with how it reads the tuple.

Sizes: a PML class that requires `num_classes` and `embedding_size` (its proxies or class
weights) gets the training classes and the embedding dimension from the build context, and the
labels as positions among the training classes (labels need not be 0..C-1). Optional sizes are
not offered (PML `MarginLoss`'s per-class beta: use the lab's `margin` with
`per_class_beta=True`). A loss's class weights (proxies) train in the proxies' optimiser group
(`Config.proxy_lr`), its other parameters (a learnable beta) in the loss group (`loss_lr`).

PML is an optional package (`pip install 'dmllab[pml]'`), imported when a `pml:` name is first
resolved. The adapter reads these parts of it, all present in PML 2.x: the loss classes in
`pytorch_metric_learning.losses`, subclasses of `BaseMetricLossFunction` called as
`loss(embeddings, labels, indices_tuple, ref_emb, ref_labels)`; index tuples of 3 (triplets) or
4 (pairs) LongTensors; and `pytorch_metric_learning.distances.BaseDistance` (`compute_mat`,
`pairwise_distance`, `is_inverted`, `normalize_embeddings`). A PML 3 that keeps them runs as it
is; a loss that PML adds is refused, naming this table, until it is classified here (a test
fails when the installed PML has a loss that `ACCEPTED` and `REFUSED` lack).

>>> import torch
>>> from dmllab.losses import LOSSES
>>> loss = LOSSES.build("pml:TripletMarginLoss", {"geometry": "euclidean", "margin": 0.3})
>>> z = torch.nn.functional.normalize(torch.randn(8, 4, generator=torch.Generator().manual_seed(0)))
>>> float(loss(z, torch.tensor([0, 0, 1, 1, 2, 2, 3, 3]))) > 0
True
"""

from __future__ import annotations

import functools
import importlib
import inspect
import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import partial
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from dmllab import values
from dmllab.geometry.base import Geometry
from dmllab.losses.base import (
    LOSSES,
    SELECTION,
    Inputs,
    TupleLoss,
    class_ids,
    class_positions,
    embedding_size,
    tuple_stats,
)
from dmllab.losses.strategies import Triplets
from dmllab.registry import Check, UnknownName
from dmllab.values import BadValue

__all__ = ["ACCEPTED", "REFUSED", "Contract", "PMLLoss", "adapter", "pml_losses"]

PAIRS, TRIPLETS, WEIGHTS = "pairs", "triplets", "weights"


@dataclass(frozen=True)
class Contract:
    """How a PML loss reads an index tuple (`pairs`, `triplets`, or sample `weights`) and
    whether the adapter hands it a reference set (`reference`)."""

    tuples: str
    reference: bool


#: the PML losses the adapter runs (PML 2.x), by how they read the lab's selection
ACCEPTED: dict[str, Contract] = {
    "ContrastiveLoss": Contract(PAIRS, reference=True),
    "GeneralizedLiftedStructureLoss": Contract(PAIRS, reference=True),
    "IntraPairVarianceLoss": Contract(PAIRS, reference=True),
    "LiftedStructureLoss": Contract(PAIRS, reference=True),
    "MultiSimilarityLoss": Contract(PAIRS, reference=True),
    "NTXentLoss": Contract(PAIRS, reference=True),
    "SupConLoss": Contract(PAIRS, reference=True),
    "NPairsLoss": Contract(PAIRS, reference=False),  # PML: "ref_emb is not supported"
    "TripletMarginLoss": Contract(TRIPLETS, reference=True),
    "MarginLoss": Contract(TRIPLETS, reference=True),
    # tuples as sample weights: with a reference set the anchor's own row would count
    "NCALoss": Contract(WEIGHTS, reference=False),
    "NormalizedSoftmaxLoss": Contract(WEIGHTS, reference=False),
    "ProxyAnchorLoss": Contract(WEIGHTS, reference=False),
    "ProxyNCALoss": Contract(WEIGHTS, reference=False),
}

_COSINE = "it requires PML's CosineSimilarity as its distance, so the lab's geometry cannot be it"
_LP = "it requires PML's LpDistance on normalised embeddings, so the lab's geometry cannot be it"
_NO_TUPLES = "it takes no indices_tuple, so the lab's selection cannot reach it"
_WRAPPER = "it wraps other losses; name the wrapped loss instead"
_BASE = "it is a base class, not a loss"

#: the PML names the adapter refuses, with the reason
REFUSED: dict[str, str] = {
    "AngularLoss": "it requires PML's LpDistance (it computes its angles from normalised "
    "embeddings itself), so the lab's geometry cannot be its distance",
    "ArcFaceLoss": _COSINE,
    "CircleLoss": _COSINE,
    "CosFaceLoss": _COSINE,
    "InstanceLoss": f"{_COSINE}, and {_NO_TUPLES}",
    "LargeMarginSoftmaxLoss": _COSINE,
    "PNPLoss": f"{_COSINE}, and {_NO_TUPLES}",
    "SmoothAPLoss": _COSINE,
    "SphereFaceLoss": _COSINE,
    "SubCenterArcFaceLoss": _COSINE,
    "ThresholdConsistentMarginLoss": _COSINE,
    "TupletMarginLoss": _COSINE,
    "DynamicSoftMarginLoss": _LP,
    "FastAPLoss": _LP,
    "SignalToNoiseRatioContrastiveLoss": "it requires PML's SNRDistance as its distance, so the "
    "lab's geometry cannot be it",
    "SoftTripleLoss": "it requires a similarity (an inverted distance), and the lab's geometry "
    "is a dissimilarity",
    "HistogramLoss": "it bins its matrix as similarities in [-1, 1] whatever the distance says, "
    "so a dissimilarity would be read backwards",
    "ManifoldLoss": "it reads indices_tuple as meta-classes, not as pairs or triplets, so the "
    "lab's selection cannot reach it",
    "P2SGradLoss": _NO_TUPLES,
    "RankedListLoss": _NO_TUPLES,
    "VICRegLoss": f"{_NO_TUPLES} (a self-supervised loss over two views, without labels)",
    "CrossBatchMemory": "it wraps a loss with a memory of its own; the lab's memory is "
    "Config.memory_size, which every loss (pml: ones included) reads",
    "MultipleLosses": _WRAPPER,
    "SelfSupervisedLoss": _WRAPPER,
    "BaseLossWrapper": _WRAPPER,
    "BaseMetricLossFunction": _BASE,
    "GenericPairLoss": _BASE,
    "EmbeddingRegularizerMixin": "it is a mixin, not a loss",
    "WeightRegularizerMixin": "it is a mixin, not a loss",
}

#: PML options the lab supplies: the distance is the geometry; sizes come from the build context
_SUPPLIED = ("distance", "num_classes", "embedding_size", "mat_based_loss")


def pml_losses() -> Any:
    """The `pytorch_metric_learning.losses` module; UnknownName saying how to install it."""
    try:
        return importlib.import_module("pytorch_metric_learning.losses")
    except ModuleNotFoundError as error:
        if error.name is None or not "pytorch_metric_learning".startswith(error.name):
            raise
        raise UnknownName(
            "pml: losses come from pytorch-metric-learning, which is not installed here: "
            "pip install 'dmllab[pml]' (or pytorch-metric-learning)"
        ) from None


@functools.cache
def adapter(name: str) -> type[PMLLoss]:
    """The adapter class of the PML loss `name` (cached: the same class for the same name).

    Its constructor takes the geometry, the selection keywords, the build context (`classes`,
    `num_classes`, `embedding_dim`) and the PML class's options (besides the distance and the
    sizes the lab supplies); the registry reads them from its signature. Raises UnknownName
    (a ValueError) when PML is not installed, has no loss `name`, or the adapter refuses it
    (the message says why)."""
    module = pml_losses()
    pml_class = getattr(module, name, None)
    if name in REFUSED:
        raise UnknownName(f"pml:{name} cannot run through the adapter: {REFUSED[name]}")
    base = getattr(module, "BaseMetricLossFunction", None)
    if not (inspect.isclass(pml_class) and base is not None and issubclass(pml_class, base)):
        known = sorted(ACCEPTED)
        raise UnknownName(
            f"pytorch-metric-learning has no loss {name!r}; the adapter runs: {', '.join(known)}"
        )
    if name not in ACCEPTED:
        raise UnknownName(
            f"pml:{name} is a loss of this pytorch-metric-learning that the adapter has not "
            "classified yet: add it to ACCEPTED (with how it reads an index tuple) or REFUSED "
            "(with why) in dmllab/losses/pml.py"
        )
    options = [
        inspect.Parameter(key, inspect.Parameter.KEYWORD_ONLY, default=parameter.default)
        for key, parameter in _pml_parameters(pml_class).items()
        if key not in _SUPPLIED and key not in SELECTION
    ]

    def __init__(self: PMLLoss, geometry: Geometry | str, **kwargs: Any) -> None:
        PMLLoss.__init__(self, geometry, **kwargs)

    context = [
        inspect.Parameter(key, inspect.Parameter.KEYWORD_ONLY, default=parameter.default)
        for key, parameter in inspect.signature(PMLLoss.__init__).parameters.items()
        if key in (*SELECTION, "classes", "num_classes", "embedding_dim")
    ]
    __init__.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [
            inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD),
            inspect.Parameter("geometry", inspect.Parameter.POSITIONAL_OR_KEYWORD),
            *context,
            *options,
        ]
    )
    checks = {
        parameter.name: _option_check(parameter.name, parameter.default) for parameter in options
    }
    contract = ACCEPTED[name]
    doc = (
        f"pytorch-metric-learning's {name} on the lab's geometry, reading the lab's selection as "
        f"{contract.tuples} (`dmllab.losses.pml`)."
    )
    return type(
        f"PML{name}",
        (PMLLoss,),
        {
            "__init__": __init__,
            "__doc__": doc,
            "__module__": __name__,
            "pml_name": name,
            "contract": contract,
            "reads_reference": contract.reference,
            "option_checks": checks,
        },
    )


#: PML options that take a PML object (a reducer, a regulariser, an initialiser), which a Config
#: (JSON values) cannot hold; the adapter leaves them at PML's defaults
OBJECT_OPTIONS = {
    "reducer": "a reducer object (pytorch_metric_learning.reducers)",
    "embedding_regularizer": "a regularizer object (pytorch_metric_learning.regularizers)",
    "weight_regularizer": "a regularizer object (pytorch_metric_learning.regularizers)",
    "weight_init_func": "an initialisation function",
    "miner": "a miner object; the lab's selection (positives, negatives) is the miner",
    "distance": "a distance object; the distance is the run's geometry (Config.geometry)",
}

#: ranges PML documents (or divides by) for numeric options, by name: (low, low excluded)
NUMBER_RANGES: dict[str, tuple[float, bool]] = {
    "temperature": (0.0, True),
    "softmax_scale": (0.0, True),
    "alpha": (0.0, True),
    "beta": (0.0, True),
    "nu": (0.0, False),
    "pos_eps": (0.0, False),
    "neg_eps": (0.0, False),
    "embedding_reg_weight": (0.0, False),
    "weight_reg_weight": (0.0, False),
}


def _option_check(key: str, default: Any) -> Check:
    """The value check of the PML option `key` whose constructor default is `default`: a refusal
    for an option that takes a PML object (`OBJECT_OPTIONS`); `"all"` or an int >= 1 for
    `triplets_per_anchor`; true/false for a bool default and for `collect_stats`; a finite number
    for a numeric default (an int default takes a float: PML writes margins as 0 and 1), inside
    `NUMBER_RANGES` where PML documents one; a string for a string default."""
    if key in OBJECT_OPTIONS:
        return partial(_refuse_object, OBJECT_OPTIONS[key])
    if key == "triplets_per_anchor":
        return _triplets_per_anchor
    if key == "collect_stats" or isinstance(default, bool):
        return values.boolean
    if isinstance(default, (int, float)):
        low, low_open = NUMBER_RANGES.get(key, (-math.inf, False))
        return partial(_number, low=low, low_open=low_open)
    if isinstance(default, str):
        return partial(_string, default=default)
    if default is inspect.Parameter.empty:
        return _anything
    return partial(_refuse_object, "a value the adapter does not know how to check")


def _number(owner: str, value: Any, *, low: float, low_open: bool) -> float:
    return values.number(owner, value, low, low_open=low_open)


def _string(owner: str, value: Any, *, default: str) -> str:
    if not isinstance(value, str):
        raise BadValue(
            f"{owner} must be a string like its default {default!r}; "
            f"got {value!r} ({type(value).__name__})"
        )
    return value


def _triplets_per_anchor(owner: str, value: Any) -> Any:
    if value == "all" and isinstance(value, str):
        return value
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise BadValue(f"{owner} must be 'all' or an int >= 1; got {value!r}")
    return value


def _refuse_object(what: str, owner: str, value: Any) -> None:
    raise BadValue(
        f"{owner} takes {what}, which the adapter cannot build from {value!r}; leave it out "
        "(PML's default applies)"
    )


def _anything(owner: str, value: Any) -> Any:
    return value


class PMLLoss(TupleLoss):
    """The adapter's base class: a `TupleLoss` whose formula is a PML loss (`self.pml`), called
    with the lab's geometry as its distance and the selected tuples as its `indices_tuple`; see
    the module docstring. `adapter(name)` makes the class for one PML loss (what
    `LOSSES["pml:<name>"]` is). Raises ValueError for options the PML class refuses, or a
    missing embedding dimension or class list where the PML class needs them."""

    pml_name: ClassVar[str] = ""
    contract: ClassVar[Contract] = Contract(PAIRS, reference=True)
    class_ids: Tensor | None

    def __init__(
        self,
        geometry: Geometry | str,
        *,
        positives: str = "all",
        negatives: str = "all",
        margin: float = 0.2,
        k_positives: int = 1,
        classes: Sequence[int] | Tensor | None = None,
        num_classes: int | None = None,
        embedding_dim: int | None = None,
        **options: Any,
    ) -> None:
        super().__init__(
            geometry,
            positives=positives,
            negatives=negatives,
            margin=margin,
            k_positives=k_positives,
        )
        name = f"pml:{self.pml_name}"
        pml_class = getattr(pml_losses(), self.pml_name)
        required = {
            key
            for key, parameter in _pml_parameters(pml_class).items()
            if parameter.default is inspect.Parameter.empty
        }
        sizes: dict[str, int] = {}
        self.register_buffer("class_ids", None)
        if "num_classes" in required:
            self.class_ids = class_ids(num_classes, classes, name)
            sizes["num_classes"] = len(self.class_ids)
        if "embedding_size" in required:
            sizes["embedding_size"] = embedding_size(embedding_dim, name)
        if "margin" in _pml_parameters(pml_class):
            options = {"margin": margin, **options}  # the loss's margin, as for the lab's losses
        self.distance = _distance_class()(self.geometry)
        try:
            self.pml = pml_class(distance=self.distance, **sizes, **options)
        except (AssertionError, TypeError, ValueError) as error:
            raise ValueError(f"{name} refused its options {options}: {error}") from None
        self.options = dict(options)

    @classmethod
    def learns_proxies(cls, options: Mapping[str, Any]) -> bool:
        """Class weights: a PML loss with `WeightRegularizerMixin` (ProxyAnchor, ProxyNCA,
        NormalizedSoftmax)."""
        mixin = getattr(pml_losses(), "WeightRegularizerMixin", None)
        pml_class = getattr(pml_losses(), cls.pml_name)
        return mixin is not None and issubclass(pml_class, mixin)

    @classmethod
    def learns_parameters(cls, options: Mapping[str, Any]) -> bool:
        """A learnable beta (PML `MarginLoss(learn_beta=True)`), the one parameter besides class
        weights that an accepted PML loss has."""
        default = _pml_parameters(getattr(pml_losses(), cls.pml_name)).get("learn_beta")
        if default is None:
            return False
        return bool(options.get("learn_beta", default.default))

    def proxy_parameters(self) -> list[nn.Parameter]:
        """A PML loss's class weights (proxies: its `WeightMixin` parameters)."""
        mixin = getattr(pml_losses(), "WeightRegularizerMixin", None)
        if mixin is None or not isinstance(self.pml, mixin):
            return []
        return list(self.pml.parameters())

    def _loss(self, inputs: Inputs) -> tuple[Tensor, dict[str, float]]:
        z, batch_only = inputs.z, inputs.ref is inputs.z
        labels = self._positions(inputs.labels)
        ref_args = (None, None) if batch_only else (inputs.ref, self._positions(inputs.ref_labels))
        if self.positives == "all" and self.negatives == "all" and batch_only:
            # every pair: PML's own default (no tuple to build), on the D it reads, if any
            with self.distance.reusing(z, z, inputs.distances) as shared:
                loss = self.pml(z, labels, None, *ref_args)
            return loss, _every_pair_stats(shared.D, inputs.labels)
        # the selection's D, differentiable where PML reads it too (one matrix, one backward); a
        # loss reading the tuple as weights may never read it (proxies), so it is computed
        # without a graph, and again with one if PML asks for it
        D, differentiable = inputs.distances, True
        if D is None:
            differentiable = self.contract.tuples != WEIGHTS
            with torch.set_grad_enabled(differentiable and torch.is_grad_enabled()):
                D = self.geometry.pairwise(z, inputs.ref)
        matrix = self.matrix(replace(inputs, distances=D))
        triplets = self.select(matrix)
        with self.distance.reusing(z, inputs.ref, D, differentiable):
            loss = self.pml(z, labels, _indices_tuple(triplets), *ref_args)
        seen = D.detach()
        pos_d, neg_d, valid = triplets.distances(seen, partial(_entries, seen))
        return loss, tuple_stats(triplets, pos_d, neg_d, valid, valid.sum(), len(seen))

    def _positions(self, labels: Tensor) -> Tensor:
        """Labels as PML reads them: positions among the training classes when the PML loss was
        sized by them (its proxies), the labels themselves otherwise."""
        if self.class_ids is None:
            return labels
        return class_positions(self.class_ids, labels, f"pml:{self.pml_name}")

    def extra_repr(self) -> str:
        return f"pml={self.pml_name!r}, options={self.options}, {super().extra_repr()}"


def _entries(D: Tensor, rows: Tensor, cols: Tensor) -> Tensor:
    return D[rows, cols]


def _every_pair_stats(D: Tensor | None, labels: Tensor) -> dict[str, float]:
    """`last_stats` of a call on every pair of the batch: every (anchor, positive, negative)
    active; the mean positive and negative dissimilarity of the D the PML loss read (NaN when it
    read none: a proxy loss compares the batch with its class weights only). Masked sums, not
    masked selections: no index lists to build."""
    _, inverse, counts = torch.unique(labels, return_inverse=True, return_counts=True)
    positives = counts[inverse] - 1
    negatives = len(labels) - 1 - positives
    anchors = int(((positives > 0) & (negatives > 0)).sum())
    pairs = float(positives.sum())
    stats = {
        "active": float((positives * negatives).sum()),
        "anchors": float(anchors),
        "dropped": float(len(labels) - anchors),
        "pos_dist": math.nan,
        "neg_dist": math.nan,
    }
    if D is not None:
        seen, same = D.detach(), labels.unsqueeze(1) == labels.unsqueeze(0)
        within = float((seen * same).sum() - seen.diagonal().sum())
        total = float(seen.sum() - seen.diagonal().sum())
        negative_pairs = len(labels) * (len(labels) - 1) - pairs
        stats["pos_dist"] = within / pairs if pairs else math.nan
        stats["neg_dist"] = (total - within) / negative_pairs if negative_pairs else math.nan
    return stats


def _indices_tuple(triplets: Triplets) -> tuple[Tensor, ...]:
    """The selection as PML's indices_tuple: (anchors, positives, negatives) with one negative
    per pair, else the pairs (anchors, positives, anchors', negatives) of `negatives="all"`."""
    if not triplets.all_negatives:
        return triplets.anchors, triplets.positives, triplets.negatives
    negative_anchors, negatives = triplets.negatives.nonzero(as_tuple=True)
    return triplets.anchors, triplets.positives, negative_anchors, negatives


def _pml_parameters(pml_class: type) -> dict[str, inspect.Parameter]:
    """The keyword parameters of a PML class's constructor through its base classes (PML passes
    **kwargs on to the base), the class's own first."""
    parameters: dict[str, inspect.Parameter] = {}
    for cls in pml_class.__mro__:
        if "__init__" not in vars(cls) or cls is nn.Module or cls is object:
            continue
        own = dict(inspect.signature(vars(cls)["__init__"]).parameters)
        own.pop("self", None)
        for key, parameter in own.items():
            if parameter.kind not in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
                parameters.setdefault(key, parameter)
        if not any(p.kind is p.VAR_KEYWORD for p in own.values()):
            break
    return parameters


@dataclass
class Shared:
    """The matrix D(z || ref) a loss call and its PML distance share (None until computed), and
    whether it carries its autograd graph (a selection-only D does not: PML recomputes it)."""

    z: Tensor
    ref: Tensor
    D: Tensor | None
    differentiable: bool = True


@functools.cache
def _distance_class() -> type:
    """`GeometryDistance`, a PML distance (defined when PML is first needed)."""
    base = importlib.import_module("pytorch_metric_learning.distances").BaseDistance

    class GeometryDistance(base):  # type: ignore[misc, valid-type]
        """The lab's geometry as a PML distance: D(query || reference), not inverted (smaller =
        closer), not normalised. While `reusing(z, ref, D)` is active, a call on exactly (z, ref)
        returns the D the loss already computed (one matrix, one backward), or computes it once
        and keeps it in the `Shared` record the context yields."""

        def __init__(self, geometry: Geometry) -> None:
            super().__init__(normalize_embeddings=False, is_inverted=False)
            self._geometry = (geometry,)  # in a tuple: the loss owns it as a submodule
            self._shared: Shared | None = None

        def compute_mat(self, query_emb: Tensor, ref_emb: Tensor) -> Tensor:
            if ref_emb is None:
                ref_emb = query_emb
            shared = self._shared
            if shared is None or query_emb is not shared.z or ref_emb is not shared.ref:
                return self._geometry[0].pairwise(query_emb, ref_emb)
            if shared.D is None or not shared.differentiable:  # PML reads it: with its graph
                shared.D = self._geometry[0].pairwise(query_emb, ref_emb)
                shared.differentiable = True
            return shared.D

        def pairwise_distance(self, query_emb: Tensor, ref_emb: Tensor) -> Tensor:
            rows = torch.arange(len(query_emb), device=query_emb.device)
            return self._geometry[0].entries(query_emb, ref_emb, rows, rows)

        @contextmanager
        def reusing(
            self, z: Tensor, ref: Tensor, D: Tensor | None, differentiable: bool = True
        ) -> Iterator[Shared]:
            self._shared = Shared(z, ref, D, differentiable)
            try:
                yield self._shared
            finally:
                self._shared = None

    return GeometryDistance


LOSSES.add_family(
    "pml",
    adapter,
    placeholder="pml:<LossName>",
    description="a pytorch-metric-learning loss on the lab's geometry and selection",
)
