"""`Config`: every choice of a dmllab experiment, named by string, validated on construction.

A notebook's papermill parameters, a sweep grid and the command line all map onto this one
object, and `dmllab.fit(Config(...))` is the one training entry point.

>>> config = Config(dataset="digits", loss="triplet", positives="nearest", epochs=3)
>>> Config.from_dict(config.to_dict()) == config
True
>>> Config(loss="tripplet")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
dmllab.values.BadValue: Config.loss='tripplet' is not known; choose one of: contrastive, ...
"""

from __future__ import annotations

import contextvars
import dataclasses
import json
import math
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dmllab import values
from dmllab.data import DATASETS, NOISE_KINDS, SPLITS
from dmllab.data.transforms import BAD_IMAGE_POLICIES, TRANSFORMS
from dmllab.geometry import GEOMETRIES
from dmllab.losses import LOSSES, NEGATIVES, POSITIVES, TupleLoss
from dmllab.losses.strategies import RankedPositives
from dmllab.models import MODELS
from dmllab.optim import OPTIMIZERS, SCHEDULES
from dmllab.registry import Registry, UnknownName, UnknownOption
from dmllab.values import BadValue

# Choices that belong to the trainer itself; every component name (dataset, split, noise kind,
# model, geometry, loss, positives, negatives, optimizer, schedule, transforms) is read from its
# registry when a Config is checked.
DEVICES = ("cpu", "cuda", "mps", "auto")
DIVERGENCE = ("stop", "warn", "off")
PRECISIONS = ("32", "bf16-mixed", "16-mixed")
BATCHNORM = ("auto", "batch", "frozen", "sync")

# Bounds on sizes, so that a typo (embedding_dim: 1000000000) fails here instead of in an
# allocation.
MAX_EMBEDDING_DIM = 65_536
MAX_BATCH = 16_384  # a batch's [B, B] distance matrix: 1 GiB in float32 at this bound
MAX_EPOCHS = 1_000_000
MAX_BATCHES_PER_EPOCH = 10_000_000
MAX_PROBE = 1_000_000
MAX_SEED = 2**32 - 1  # numpy's seeds are 32-bit and non-negative
MAX_WORKERS = 1024
MAX_MEMORY = 10_000_000
MAX_STEPS = 10**12

#: Optimiser steps before a cross-batch memory starts (Config.memory_warmup's default): the
#: first steps move the embeddings fastest (`dmllab.engine.memory` gives the measurement).
MEMORY_WARMUP = 50


@dataclass(frozen=True)
class Config:
    """Every knob of one training run. Field names are the public contract: papermill parameters,
    sweep grids, the command line and saved runs name them.

    Data: `dataset`, `dataset_options` (passed to `dmllab.data.load`), `split` ("classes" = the
    zero-shot protocol with class-disjoint train/test, "stratified" = same classes in both),
    `test_fraction`, `val_fraction` (carved from the training part, for early stopping),
    `noise_rate` and `noise_kind` (training labels only).
    Model: `model`, `model_options`, `embedding_dim`, `normalize` (L2-normalise the embedding).
    Geometry: `geometry`, `geometry_options`.
    Loss: `loss` (a registered name, or `pml:<LossName>` for a pytorch-metric-learning loss
    through the adapter, `dmllab.losses.pml`), `loss_options`, `margin`, `positives`,
    `negatives`, `k_positives` (the last four only for a loss that chooses tuples, and
    `k_positives` only for positives that rank them: a field the components would ignore is
    refused); `memory_size` (a cross-batch memory of that many earlier embeddings, which every
    tuple loss and strategy sees beside the batch; 0 = off; Wang et al., CVPR 2020) after
    `memory_warmup` optimiser steps (`dmllab.engine.memory`). With a memory,
    `positives="nearest"` works at 2 samples per class: the nearest positive may come from it.
    LSD: `lsd_alpha` (0 = off), `lsd_tau`, `lsd_include_self`, `lsd_beta_neg`.
    Optimisation: `epochs`, `batches_per_epoch` (None = about one pass over the training set),
    `classes_per_batch` x `samples_per_class`, `optimizer` and `optimizer_options` (registry
    `dmllab.optim.OPTIMIZERS`), `lr` (the trunk's), `head_lr` (the embedding head's; None =
    `lr`), `loss_lr` (learnable loss and geometry parameters; None = `lr`), `proxy_lr` (a proxy
    loss's class proxies; None = 100 x `lr`, the Proxy-Anchor authors' setting), `weight_decay`,
    `lr_schedule` and `schedule_options` ("constant", "cosine", "multistep"; stepped per batch)
    after `warmup_epochs` of linear warm-up, `grad_clip` (max total gradient norm; None = off),
    `precision` ("32", "bf16-mixed", "16-mixed" on CUDA: the trunk under autocast; distances,
    selection and LSD in float32), `batchnorm` ("batch": statistics of each process's batch;
    "frozen": running statistics and affine fixed, as in the standard DML protocol; "sync":
    SyncBatchNorm over all ranks, CUDA; "auto": "sync" under DDP on CUDA, else "batch"),
    `early_stopping_patience`, `divergence` (what an exploding loss or weights, or every embedding
    at one point, does: "stop" with an error naming the learning rate, "warn", or "off"; class
    collapse does not trigger it; see `dmllab.guards`).
    Inputs: `num_workers` (processes decoding image files; 0 = in the training process; tensors
    held in memory are always indexed directly), `augment` (the named train/eval transform pair
    of `dmllab.data.transforms.TRANSFORMS`; "none" = decode, resize and centre-crop only),
    `on_bad_image` ("raise" naming the file, or "skip" it with a warning and a count in the
    history).
    Bookkeeping: `snapshot_every` (epochs between embedding snapshots of a probe set; 0 = off),
    `probe_size`, `monitor_test` (record test Recall@1 / MAP@R and, under label noise, the
    training set's memorisation rate per epoch: curves for the lessons, never used to select
    anything), `eval_every` (epochs between validation/monitor evaluations), `checkpoint_every`
    (epochs between checkpoints when a run folder is given; 0 = at the end only), `seed`,
    `device`.

    Each `*_options` dict is checked here against what its component takes (the dataset
    loader's, model builder's, geometry's or loss constructor's options): its keys, and its
    values against each option's default or own check (`Registry.check_options`); what depends
    on the data (sizes against the classes) is checked when the component is built.
    """

    dataset: str = "digits"
    dataset_options: dict = field(default_factory=dict)
    split: str = "classes"
    test_fraction: float = 0.5
    val_fraction: float = 0.0
    noise_rate: float = 0.0
    noise_kind: str = "symmetric"

    model: str = "mlp"
    model_options: dict = field(default_factory=dict)
    embedding_dim: int = 32
    normalize: bool = True

    geometry: str = "euclidean"
    geometry_options: dict = field(default_factory=dict)

    loss: str = "triplet"
    loss_options: dict = field(default_factory=dict)
    margin: float = 0.2
    positives: str = "random"
    negatives: str = "semihard"
    k_positives: int = 1
    memory_size: int = 0
    memory_warmup: int = MEMORY_WARMUP

    lsd_alpha: float = 0.0
    lsd_tau: float = 1.0
    lsd_include_self: bool = True
    lsd_beta_neg: float | None = None

    epochs: int = 20
    batches_per_epoch: int | None = None
    classes_per_batch: int = 5
    samples_per_class: int = 8
    optimizer: str = "adam"
    optimizer_options: dict = field(default_factory=dict)
    lr: float = 1e-3
    head_lr: float | None = None
    loss_lr: float | None = None
    proxy_lr: float | None = None
    weight_decay: float = 0.0
    lr_schedule: str = "constant"
    schedule_options: dict = field(default_factory=dict)
    warmup_epochs: float = 0.0
    grad_clip: float | None = None
    precision: str = "32"
    batchnorm: str = "auto"
    early_stopping_patience: int | None = None
    divergence: str = "stop"

    num_workers: int = 0
    augment: str = "none"
    on_bad_image: str = "raise"

    snapshot_every: int = 0
    probe_size: int = 500
    monitor_test: bool = False
    eval_every: int = 1
    checkpoint_every: int = 0
    seed: int = 0
    device: str = "cpu"

    def __post_init__(self) -> None:
        for item in dataclasses.fields(self):
            value = getattr(self, item.name)
            plain = _python_values(value)  # np.float32(1e-3) from np.logspace: its Python value
            if plain is not value:
                value = plain
                object.__setattr__(self, item.name, value)
            check_field(item.name, value)
        if self.batch_size > MAX_BATCH:
            raise BadValue(
                f"Config.classes_per_batch x samples_per_class = {self.batch_size} "
                f"is above {MAX_BATCH}: "
                f"the batch's distance matrix would not fit in memory; use a smaller batch"
            )
        if self.classes_per_batch < 2:
            raise BadValue(
                f"Config.classes_per_batch={self.classes_per_batch} "
                "leaves no negatives in a batch; use at least 2 classes per batch"
            )
        if self.samples_per_class < 2:
            raise BadValue(
                f"Config.samples_per_class={self.samples_per_class} "
                "leaves no positives in a batch; use at least 2 samples per class"
            )
        need = POSITIVES[self.positives].min_samples_per_class
        # a memory gives every anchor positives beyond its batch
        if self.samples_per_class < need and self.memory_size == 0:
            raise BadValue(
                f"Config.positives={self.positives!r} needs samples_per_class >= {need} "
                f"(got {self.samples_per_class}): "
                f"with {need - 1} samples of a class in a batch an anchor has {need - 2} "
                "positive(s) to choose from, too few for this strategy to change anything. "
                "Raise samples_per_class (4-8 is typical), or keep a cross-batch memory "
                "(memory_size > 0, e.g. 1024): its earlier embeddings give every anchor "
                "positives beyond its batch to choose from."
            )
        if self.k_positives >= self.samples_per_class and self.memory_size == 0:
            raise BadValue(
                f"Config.k_positives={self.k_positives} must be smaller than samples_per_class="
                f"{self.samples_per_class} "
                "(an anchor has samples_per_class - 1 positives in a batch)"
            )
        self._check_memory()
        if self.early_stopping_patience is not None and self.val_fraction == 0.0:
            raise BadValue(
                "Config.early_stopping_patience needs a validation split: set val_fraction > 0 "
                "(early stopping never looks at the test split)"
            )
        self._check_ignored_fields()
        if self.normalize and GEOMETRIES[self.geometry].learned and self.model == "identity":
            raise BadValue(
                "Config.normalize=True with model='identity' would project the raw inputs "
                "onto the sphere before a learned geometry; "
                "set normalize=False for a geometry lesson"
            )
        self._check_option_names()
        self._check_unread_fields()

    def _check_ignored_fields(self) -> None:
        """Refuse a field the chosen components would ignore, so that two Configs that train alike
        never look different (a crossed grid would run the same cell twice): the tuple fields with
        a loss that chooses no tuples (`reads_tuples`), and `k_positives` with a positives strategy
        that takes every positive (`ranks_positives`). Raises BadValue naming the field and the
        fix."""
        if not reads_tuples(self.loss):
            changed = self._set_away_from_default(TUPLE_FIELDS)
            if changed:
                defaults = ", ".join(f"{name}={_DEFAULTS[name]!r}" for name in TUPLE_FIELDS)
                readers = ", ".join(sorted(name for name in LOSSES if reads_tuples(name)))
                raise BadValue(
                    f"Config.loss={self.loss!r} chooses no tuples, so it would ignore "
                    f"{', '.join(changed)}; leave them at their defaults ({defaults}) or choose "
                    f"a loss that reads them: {readers}"
                )
        elif self.k_positives != 1 and not ranks_positives(self.positives):
            rankers = ", ".join(sorted(name for name in POSITIVES if ranks_positives(name)))
            raise BadValue(
                f"Config.k_positives={self.k_positives} is ignored by "
                f"positives={self.positives!r}, which takes every positive; leave k_positives at "
                f"1 or choose positives that rank them: {rankers}"
            )

    def _set_away_from_default(self, fields: Iterable[str]) -> list[str]:
        """`name=value` of each of `fields` this Config sets to another value than its default
        (a float within float32 rounding of its default, e.g. np.float32(0.2), is the default)."""
        return [
            f"{name}={getattr(self, name)!r}"
            for name in fields
            if not _same_value(getattr(self, name), _DEFAULTS[name])
        ]

    def unread_fields(self) -> list[tuple[tuple[str, ...], str]]:
        """(fields, why) for each group of fields set away from their defaults that the chosen
        components would not read: a learning rate for parameters that do not exist
        (`proxy_lr`, `loss_lr`, `head_lr`), the memory's settings without a memory and LSD's with
        LSD off. A Config refuses them (`why` is its message); `replace` resets those a change
        switched off, and a record of an older dmllab reads them at their defaults
        (`completed`)."""
        found: list[tuple[tuple[str, ...], str]] = []
        loss = LOSSES[self.loss]
        if self.proxy_lr is not None and not loss.learns_proxies(self.loss_options):
            proxies = ", ".join(sorted(n for n in LOSSES if LOSSES[n].learns_proxies({})))
            found.append(
                (
                    ("proxy_lr",),
                    (
                        f"Config.proxy_lr={self.proxy_lr!r} is ignored: loss {self.loss!r} has no "
                        f"proxies; leave proxy_lr at None or choose a proxy loss: {proxies}"
                    ),
                )
            )
        learned = loss.learns_parameters(self.loss_options) or GEOMETRIES[self.geometry].learned
        if self.loss_lr is not None and not learned:
            found.append(
                (
                    ("loss_lr",),
                    (
                        f"Config.loss_lr={self.loss_lr!r} is ignored: neither loss {self.loss!r} "
                        f"(with loss_options={self.loss_options!r}) nor geometry {self.geometry!r} "
                        "has parameters to learn; leave loss_lr at None, or choose a learned "
                        "geometry (bregman) or a loss that learns (margin)"
                    ),
                )
            )
        if self.head_lr is not None and self.model == "identity":
            found.append(
                (
                    ("head_lr",),
                    (
                        f"Config.head_lr={self.head_lr!r} is ignored: model 'identity' has no "
                        "embedding head (nothing trains); leave head_lr at None or choose a model "
                        "with a head (mlp, cnn, resnet18, resnet50)"
                    ),
                )
            )
        if self.memory_size == 0 and self.memory_warmup != MEMORY_WARMUP:
            found.append(
                (
                    ("memory_warmup",),
                    (
                        f"Config.memory_warmup={self.memory_warmup} is ignored without a "
                        "cross-batch memory (memory_size=0); leave memory_warmup at "
                        f"{MEMORY_WARMUP} or set memory_size > 0"
                    ),
                )
            )
        if self.lsd_alpha == 0:
            changed = self._set_away_from_default(LSD_FIELDS)
            if changed:
                defaults = ", ".join(f"{name}={_DEFAULTS[name]!r}" for name in LSD_FIELDS)
                found.append(
                    (
                        tuple(item.split("=")[0] for item in changed),
                        (
                            f"Config.lsd_alpha=0 switches LSD off, so it would ignore "
                            f"{', '.join(changed)}; leave them at their defaults ({defaults}) or "
                            "set lsd_alpha > 0"
                        ),
                    )
                )
        return found

    def _check_unread_fields(self) -> None:
        """Refuse a field set away from its default that the chosen components would not read
        (two such Configs train alike, so a crossed grid would run the same cell twice), each
        with the reason and the fix (`unread_fields`), a warm-up as long as the run and a memory
        smaller than one batch. Raises BadValue naming the field."""
        if not _READING_UNREAD.get():
            for _, why in self.unread_fields():
                raise BadValue(why)
        if self.warmup_epochs >= self.epochs:
            raise BadValue(
                f"Config.warmup_epochs={self.warmup_epochs!r} is not below epochs={self.epochs}: "
                "the warm-up would take the whole run (the learning rate never reaches lr and "
                f"lr_schedule={self.lr_schedule!r} never starts, and every longer warm-up trains "
                "alike); use warmup_epochs < epochs"
            )
        if 0 < self.memory_size < self.batch_size:
            raise BadValue(
                f"Config.memory_size={self.memory_size} is smaller than one batch "
                f"({self.classes_per_batch} x {self.samples_per_class} = {self.batch_size}): it "
                "would hold only part of the previous batch, not earlier batches; use "
                f"memory_size >= {self.batch_size} (several batches, e.g. 1024) or 0 for none"
            )

    def _check_memory(self) -> None:
        """A memory only for a loss that reads a reference set, and a matrix that fits."""
        if self.memory_size == 0:
            return
        columns = self.batch_size + self.memory_size
        if self.batch_size * columns > MAX_BATCH * MAX_BATCH:
            raise BadValue(
                f"Config.memory_size={self.memory_size} with a batch of {self.batch_size}: the "
                f"distance matrix [{self.batch_size}, {columns}] would not fit in memory; use a "
                "smaller memory"
            )
        if not LOSSES[self.loss].reads_reference:
            raise BadValue(
                f"Config.memory_size={self.memory_size}: loss {self.loss!r} reads no reference "
                "set (it compares each sample with its own learned class vectors, or its "
                "contract takes no reference set), so a memory would change nothing; set "
                "memory_size=0 or choose a loss that reads one (the tuple losses, prototype_ce)"
            )

    def _check_option_names(self) -> None:
        """Refuse `*_options` keys the named component does not take, and values unfit for
        their option (`Registry.check_options`). Raises BadValue naming the field, then the
        registry's refusal: the component, the unknown keys and its options (and the Config
        field to set instead, for a key that is one), or the option and what its value needs."""
        for name, (component, registry) in _OPTIONS.items():
            given = getattr(self, name)
            if not given:  # the common case: no signature is read
                continue
            try:
                registry.check_options(getattr(self, component), given)
            except UnknownOption as error:
                fields = sorted(key for key in given if key in _DEFAULTS)
                hint = "".join(
                    f"; {key} is the Config field Config.{key}: set it there" for key in fields
                )
                raise BadValue(f"Config.{name}: {error}{hint}") from None
            except ValueError as error:
                raise BadValue(f"Config.{name}: {error}") from None

    # ----------------------------------------------------------------- serialisation
    def to_dict(self) -> dict[str, Any]:
        """A plain, JSON-serialisable dict of every field."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Config:
        """Build a Config from a dict; unknown keys raise a ValueError listing the known ones."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise BadValue(
                f"Config has no field(s) {', '.join(unknown)}; "
                f"known fields: {', '.join(sorted(known))}"
            )
        return cls(**values)

    @classmethod
    def completed(cls, values: dict[str, Any]) -> dict[str, Any]:
        """`values`, a Config's dict recorded by an older dmllab, with every field it lacks at
        its default: what that run computed with (fields are only ever added with a default that
        keeps earlier behaviour), so that a record, checkpoint or sweep cell of before a new field
        still compares equal to the same Config now. Fields that run did not read (recorded before
        a Config refused them: `unread_fields`) read at their defaults, which is what it trained
        with.

        >>> old = {k: v for k, v in Config(lr=0.01).to_dict().items() if k != "memory_size"}
        >>> Config.completed(old) == Config(lr=0.01).to_dict()
        True
        """
        return cls.unread_at_defaults({**cls().to_dict(), **values})

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str, source: str = "config JSON") -> Config:
        """Read a Config written by `to_json`; duplicate keys and NaN/Infinity are refused.

        Raises BadValue (a ValueError) naming `source` for text that is not such JSON."""
        data = values.load_json(text, source)
        if not isinstance(data, dict):
            raise BadValue(
                f"{source}: a Config is a JSON object of fields; got {type(data).__name__}"
            )
        return cls.from_dict(data)

    def replace(self, **changes: Any) -> Config:
        """A copy with some fields changed, validated like a new Config. A field of this Config
        that the change leaves unread returns to its default (`unread_fields`: LSD's settings
        after `replace(lsd_alpha=0)`, `proxy_lr` after a change to a loss without proxies), so a
        variant can switch a component off; a field named in `changes` is refused as in a new
        Config.

        >>> Config(lsd_alpha=200.0, lsd_tau=0.5).replace(lsd_alpha=0.0).lsd_tau
        1.0
        """
        merged = {**self.to_dict(), **changes}
        try:
            return self.from_dict(merged)  # the common case: nothing left unread
        except BadValue:
            reset = self.unread_at_defaults(merged, changes)
            if reset == merged:
                raise
            return self.from_dict(reset)

    @classmethod
    def unread_at_defaults(
        cls, values: dict[str, Any], keep: Collection[str] = ()
    ) -> dict[str, Any]:
        """`values` (a Config's fields) with each field the components would not read
        (`unread_fields`) at its default, except those in `keep`; `values` unchanged when they are
        no valid Config for another reason (building them says why)."""
        token = _READING_UNREAD.set(True)
        try:
            probe = cls.from_dict(values)
        except BadValue:
            return values
        finally:
            _READING_UNREAD.reset(token)
        reset = {
            name: _DEFAULTS[name]
            for fields, _ in probe.unread_fields()
            for name in fields
            if name not in keep
        }
        return {**values, **reset}

    @property
    def batch_size(self) -> int:
        return self.classes_per_batch * self.samples_per_class


_READING_UNREAD: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "_READING_UNREAD", default=False
)
"""Set while `unread_at_defaults` builds a Config to ask it which fields it would not read."""


def _python_values(value: Any) -> Any:
    """`value` with numpy scalars read as Python values, inside `*_options` mappings and lists
    too (a width from np.arange); `value` itself when it holds none."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        items = {key: _python_values(item) for key, item in value.items()}
        return items if any(items[k] is not value[k] for k in value) else value
    if isinstance(value, (list, tuple)):
        converted = [_python_values(item) for item in value]
        changed = any(new is not old for new, old in zip(converted, value, strict=True))
        return type(value)(converted) if changed else value
    return value


def _same_value(value: Any, default: Any) -> bool:
    if isinstance(value, float) and isinstance(default, float):
        return math.isclose(value, default, rel_tol=1e-6)
    return bool(value == default)


TUPLE_FIELDS = ("positives", "negatives", "k_positives", "margin")
"""The fields a loss reads through the tuples it chooses (positives, then negatives)."""
LSD_FIELDS = ("lsd_tau", "lsd_include_self", "lsd_beta_neg")
"""The fields LSD reads besides lsd_alpha (ignored while lsd_alpha = 0)."""
_DEFAULTS = {item.name: item.default for item in dataclasses.fields(Config)}


def reads_tuples(loss: str) -> bool:
    """Whether the loss registered as `loss` chooses tuples through the positives and negatives
    strategies, and so reads `TUPLE_FIELDS` (prototype cross-entropy compares each sample with
    every class mean and does not). The one place `Config` asks a loss class this."""
    return issubclass(LOSSES[loss], TupleLoss)


def ranks_positives(positives: str) -> bool:
    """Whether the positives strategy registered as `positives` picks the `k_positives` best of
    an anchor's positives (nearest, hardest, random); `all` takes every positive."""
    return issubclass(POSITIVES[positives], RankedPositives)


def _optional(check: Callable[[str, Any], Any]) -> Callable[[str, Any], Any]:
    return lambda owner, value: None if value is None else check(owner, value)


def _count(low: int, high: int) -> Callable[[str, Any], int]:
    return lambda owner, value: values.integer(owner, value, low, high)


def _real(low: float, high: float = math.inf, **openness: bool) -> Callable[[str, Any], float]:
    return lambda owner, value: values.number(owner, value, low, high, **openness)


def _one_of(allowed: Collection[str]) -> Callable[[str, Any], str]:
    # read when a value is checked, so a component registered at run time is accepted at once
    return lambda owner, value: values.choice(owner, value, tuple(allowed))


def _component(registry: Registry[Any]) -> Callable[[str, Any], str]:
    """A registered name, or a member of one of the registry's families (`pml:<LossName>`),
    which the family resolves: BadValue with its reason when it cannot (e.g. the package is not
    installed, or the loss's contract cannot take the lab's geometry)."""

    def check(owner: str, value: Any) -> str:
        if registry.family_of(value) is None:
            return values.choice(owner, value, tuple(registry))
        try:
            registry.get_component(value)
        except UnknownName as error:
            raise BadValue(f"{owner}={value!r}: {error}") from None
        return str(value)

    return check


# each `*_options` field -> (the field naming its component, the component's registry)
_OPTIONS: dict[str, tuple[str, Registry[Any]]] = {
    "dataset_options": ("dataset", DATASETS),
    "model_options": ("model", MODELS),
    "geometry_options": ("geometry", GEOMETRIES),
    "loss_options": ("loss", LOSSES),
    "optimizer_options": ("optimizer", OPTIMIZERS),
    "schedule_options": ("lr_schedule", SCHEDULES),
}

_CHECKS: dict[str, Callable[[str, Any], Any]] = {
    "dataset": _one_of(DATASETS),
    "split": _one_of(SPLITS),
    "noise_kind": _one_of(NOISE_KINDS),
    "model": _one_of(MODELS),
    "geometry": _one_of(GEOMETRIES),
    "loss": _component(LOSSES),
    "positives": _one_of(POSITIVES),
    "negatives": _one_of(NEGATIVES),
    "optimizer": _one_of(OPTIMIZERS),
    "lr_schedule": _one_of(SCHEDULES),
    "augment": _one_of(TRANSFORMS),
    "on_bad_image": _one_of(BAD_IMAGE_POLICIES),
    "precision": _one_of(PRECISIONS),
    "batchnorm": _one_of(BATCHNORM),
    "device": _one_of(DEVICES),
    "divergence": _one_of(DIVERGENCE),
    "optimizer_options": values.options,
    "schedule_options": values.options,
    "dataset_options": values.options,
    "model_options": values.options,
    "geometry_options": values.options,
    "loss_options": values.options,
    "normalize": values.boolean,
    "monitor_test": values.boolean,
    "lsd_include_self": values.boolean,
    "test_fraction": _real(0.0, 1.0, low_open=True, high_open=True),
    "val_fraction": _real(0.0, 1.0, high_open=True),
    "noise_rate": _real(0.0, 1.0, high_open=True),
    "margin": _real(0.0),
    "lsd_alpha": _real(0.0),
    "weight_decay": _real(0.0),
    "lsd_tau": _real(0.0, low_open=True),
    "lr": _real(0.0, low_open=True),
    "loss_lr": _optional(_real(0.0, low_open=True)),
    "proxy_lr": _optional(_real(0.0, low_open=True)),
    "head_lr": _optional(_real(0.0, low_open=True)),
    "grad_clip": _optional(_real(0.0, low_open=True)),
    "warmup_epochs": _real(0.0),
    "num_workers": _count(0, MAX_WORKERS),
    "checkpoint_every": _count(0, MAX_EPOCHS),
    "lsd_beta_neg": _optional(_real(0.0, low_open=True)),
    "embedding_dim": _count(1, MAX_EMBEDDING_DIM),
    "epochs": _count(1, MAX_EPOCHS),
    "classes_per_batch": _count(1, MAX_BATCH),
    "samples_per_class": _count(1, MAX_BATCH),
    "k_positives": _count(1, MAX_BATCH),
    "memory_size": _count(0, MAX_MEMORY),
    "memory_warmup": _count(0, MAX_STEPS),
    "probe_size": _count(1, MAX_PROBE),
    "eval_every": _count(1, MAX_EPOCHS),
    "batches_per_epoch": _optional(_count(1, MAX_BATCHES_PER_EPOCH)),
    "early_stopping_patience": _optional(_count(1, MAX_EPOCHS)),
    "snapshot_every": _count(0, MAX_EPOCHS),
    "seed": _count(0, MAX_SEED),
}


def check_field(name: str, value: Any) -> None:
    """Check one value for the Config field `name` on its own (type, finiteness, range, bounds),
    as `Config(...)` does; the sweep and `dmllab run` call it before any work.

    Raises BadValue (a ValueError) naming `Config.<name>`, the value and what it needs; KeyError
    for a name that is not a field."""
    _CHECKS[name](f"Config.{name}", value)
