"""`Config`: every choice of a dmllab experiment, named by string, validated on construction.

A notebook's papermill parameters, a sweep grid and the command line all map onto this one
object, and `dmllab.fit(Config(...))` is the one training entry point.

>>> config = Config(dataset="digits", loss="triplet", positives="nearest", epochs=3)
>>> Config.from_dict(config.to_dict()) == config
True
>>> Config(loss="tripplet")
Traceback (most recent call last):
...
ValueError: Config.loss='tripplet' is not known; choose one of: contrastive, margin, multi_similarity, prototype_ce, triplet
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

# The names every registry must implement (tests check each registry against these).
DATASETS = (
    "mixture",
    "modes-on-circle",
    "digits",
    "digits-parity",
    "digits-low-high",
    "loggrid",
    "mnist-5k",
    "cub200",
    "cars196",
    "sop",
    "folder",
)
SPLITS = ("classes", "stratified")
MODELS = ("mlp", "cnn", "identity", "resnet18", "resnet50")
GEOMETRIES = ("sqeuclidean", "euclidean", "cosine", "bregman", "bregman-maxaffine")
LOSSES = ("contrastive", "margin", "multi_similarity", "prototype_ce", "triplet")
POSITIVES = ("all", "hardest", "nearest", "random")
NEGATIVES = ("all", "semihard", "hardest", "distance_weighted")
NOISE_KINDS = ("symmetric", "pairflip")
OPTIMIZERS = ("adam", "adamw", "sgd")
DEVICES = ("cpu", "cuda", "mps", "auto")
DIVERGENCE = ("stop", "warn", "off")


@dataclass(frozen=True)
class Config:
    """Every knob of one training run. Field names are the public contract (see DESIGN.md).

    Data: `dataset`, `dataset_options` (passed to `dmllab.data.load`), `split` ("classes" = the
    zero-shot protocol with class-disjoint train/test, "stratified" = same classes in both),
    `test_fraction`, `val_fraction` (carved from the training part, for early stopping),
    `noise_rate` and `noise_kind` (training labels only).
    Model: `model`, `model_options`, `embedding_dim`, `normalize` (L2-normalise the embedding).
    Geometry: `geometry`, `geometry_options`.
    Loss: `loss`, `loss_options`, `margin`, `positives`, `negatives`, `k_positives`.
    LSD: `lsd_alpha` (0 = off), `lsd_tau`, `lsd_include_self`, `lsd_beta_neg`.
    Optimisation: `epochs`, `batches_per_epoch` (None = about one pass over the training set),
    `classes_per_batch` x `samples_per_class`, `optimizer`, `lr`, `loss_lr` (learnable loss and
    geometry parameters; None = `lr`), `weight_decay`, `early_stopping_patience`, `divergence`
    (what an exploding loss or weights, or every embedding at one point, does: "stop" with an
    error naming the learning rate, "warn", or "off"; class collapse does not trigger it; see
    `dmllab.guards`).
    Bookkeeping: `snapshot_every` (epochs between embedding snapshots of a probe set; 0 = off),
    `probe_size`, `monitor_test` (record test Recall@1 / MAP@R and, under label noise, the
    training set's memorisation rate per epoch: curves for the lessons, never used to select
    anything), `eval_every` (epochs between validation/monitor evaluations), `seed`, `device`.
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

    lsd_alpha: float = 0.0
    lsd_tau: float = 1.0
    lsd_include_self: bool = True
    lsd_beta_neg: float | None = None

    epochs: int = 20
    batches_per_epoch: int | None = None
    classes_per_batch: int = 5
    samples_per_class: int = 8
    optimizer: str = "adam"
    lr: float = 1e-3
    loss_lr: float | None = None
    weight_decay: float = 0.0
    early_stopping_patience: int | None = None
    divergence: str = "stop"

    snapshot_every: int = 0
    probe_size: int = 500
    monitor_test: bool = False
    eval_every: int = 1
    seed: int = 0
    device: str = "cpu"

    def __post_init__(self) -> None:
        _choice(self, "dataset", DATASETS)
        _choice(self, "split", SPLITS)
        _choice(self, "noise_kind", NOISE_KINDS)
        _choice(self, "model", MODELS)
        _choice(self, "geometry", GEOMETRIES)
        _choice(self, "loss", LOSSES)
        _choice(self, "positives", POSITIVES)
        _choice(self, "negatives", NEGATIVES)
        _choice(self, "optimizer", OPTIMIZERS)
        _choice(self, "device", DEVICES)
        _choice(self, "divergence", DIVERGENCE)
        for name in ("dataset_options", "model_options", "geometry_options", "loss_options"):
            if not isinstance(getattr(self, name), dict):
                raise ValueError(f"Config.{name} must be a dict; got {getattr(self, name)!r}")
        _range(self, "test_fraction", 0.0, 1.0, low_open=True, high_open=True)
        _range(self, "val_fraction", 0.0, 1.0, high_open=True)
        _range(self, "noise_rate", 0.0, 1.0, high_open=True)
        _range(self, "margin", 0.0, None)
        _range(self, "lsd_alpha", 0.0, None)
        _range(self, "lsd_tau", 0.0, None, low_open=True)
        _range(self, "lr", 0.0, None, low_open=True)
        _range(self, "weight_decay", 0.0, None)
        if self.loss_lr is not None:
            _range(self, "loss_lr", 0.0, None, low_open=True)
        if self.lsd_beta_neg is not None:
            _range(self, "lsd_beta_neg", 0.0, None, low_open=True)
        for name in ("embedding_dim", "epochs", "classes_per_batch", "samples_per_class",
                     "k_positives", "probe_size", "eval_every"):
            _positive_int(self, name)
        for name in ("batches_per_epoch", "early_stopping_patience"):
            if getattr(self, name) is not None:
                _positive_int(self, name)
        if not isinstance(self.snapshot_every, int) or self.snapshot_every < 0:
            raise ValueError(f"Config.snapshot_every must be an int >= 0; got {self.snapshot_every!r}")
        if not isinstance(self.seed, int):
            raise ValueError(f"Config.seed must be an int; got {self.seed!r}")
        if self.classes_per_batch < 2:
            raise ValueError(
                f"Config.classes_per_batch={self.classes_per_batch} leaves no negatives in a batch; "
                "use at least 2 classes per batch")
        if self.samples_per_class < 2:
            raise ValueError(
                f"Config.samples_per_class={self.samples_per_class} leaves no positives in a batch; "
                "use at least 2 samples per class")
        if self.positives == "nearest" and self.samples_per_class < 3:
            raise ValueError(
                f"Config.positives='nearest' needs samples_per_class >= 3 (got {self.samples_per_class}): "
                "with 2 samples of a class in a batch the nearest positive is the only positive, so it "
                "changes nothing. Raise samples_per_class (4-8 is typical).")
        if self.k_positives >= self.samples_per_class:
            raise ValueError(
                f"Config.k_positives={self.k_positives} must be smaller than samples_per_class="
                f"{self.samples_per_class} (an anchor has samples_per_class - 1 positives in a batch)")
        if self.early_stopping_patience is not None and self.val_fraction == 0.0:
            raise ValueError(
                "Config.early_stopping_patience needs a validation split: set val_fraction > 0 "
                "(early stopping never looks at the test split)")
        if self.normalize and self.geometry in ("bregman", "bregman-maxaffine") and self.model == "identity":
            raise ValueError(
                "Config.normalize=True with model='identity' would project the raw inputs onto the sphere "
                "before the learned Bregman geometry; set normalize=False for a geometry lesson")

    # ----------------------------------------------------------------- serialisation
    def to_dict(self) -> dict[str, Any]:
        """A plain, JSON-serialisable dict of every field."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "Config":
        """Build a Config from a dict; unknown keys raise a ValueError listing the known ones."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(
                f"Config has no field(s) {', '.join(unknown)}; known fields: {', '.join(sorted(known))}")
        return cls(**values)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "Config":
        return cls.from_dict(json.loads(text))

    def replace(self, **changes: Any) -> "Config":
        """A copy with some fields changed (validated like a new Config)."""
        return self.from_dict({**self.to_dict(), **changes})

    @property
    def batch_size(self) -> int:
        return self.classes_per_batch * self.samples_per_class


def _choice(config: Config, name: str, allowed: tuple[str, ...]) -> None:
    value = getattr(config, name)
    if value not in allowed:
        raise ValueError(
            f"Config.{name}={value!r} is not known; choose one of: {', '.join(sorted(allowed))}")


def _range(config: Config, name: str, low: float, high: float | None, *,
           low_open: bool = False, high_open: bool = False) -> None:
    value = getattr(config, name)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise ValueError(f"Config.{name} must be a number; got {value!r}")
    too_low = value <= low if low_open else value < low
    too_high = high is not None and (value >= high if high_open else value > high)
    if too_low or too_high:
        left = "(" if low_open else "["
        right = ")" if high_open else "]"
        upper = "inf" if high is None else f"{high:g}"
        raise ValueError(f"Config.{name}={value!r} is outside {left}{low:g}, {upper}{right}")


def _positive_int(config: Config, name: str) -> None:
    value = getattr(config, name)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"Config.{name} must be an int >= 1; got {value!r}")
