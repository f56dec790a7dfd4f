"""From a Config to the parts of a run: its data splits, embedder, geometry, loss and regulariser.

    prepare(config)  : load (or the given Dataset) -> split (class-disjoint or stratified)
                       -> noise on the training labels -> validation split carved from the
                       (noisy) training part
    build_components : (model, geometry, loss_fn) for the training split's inputs
    build_loss       : the base loss `config.loss` names (with its strategies and options)
    build_regularisers : the terms the trainer adds to the base loss (LSD when lsd_alpha > 0)

The validation split is carved *after* the noise is injected: in practice a validation set drawn
from the training data carries the same label noise, and early stopping must live with it. The
test split is always clean. The loss owns the geometry (a learned geometry's parameters are
optimised with the loss's own learning rate), so `loss_fn.geometry is geometry`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import Tensor, nn

from dmllab import geometry as geometries
from dmllab import losses, models
from dmllab.backbones import freeze_batchnorm
from dmllab.config import Config
from dmllab.data import Dataset, Splits, load, noise, resolve, split, validation_split
from dmllab.geometry.base import Geometry
from dmllab.losses.lsd import lists_for
from dmllab.values import BadValue

__all__ = ["build_components", "build_loss", "build_regularisers", "prepare"]


def prepare(config: Config, dataset: Dataset | str | None = None) -> Splits:
    """The splits for `config`; a given `dataset` (a Dataset, or a registered name loaded with
    `config.seed` and default options) wins over `config.dataset`.

    Raises BadValue naming `Config.split` when a class-disjoint split would leave a side with
    fewer than 2 classes (a 2-class data set needs split='stratified')."""
    if dataset is None:
        options = {"seed": config.seed, **config.dataset_options}
        dataset = load(config.dataset, **options)
    dataset = resolve(dataset, seed=config.seed)
    try:
        train, test = split(
            dataset, how=config.split, test_fraction=config.test_fraction, seed=config.seed
        )
    except ValueError as error:
        if config.split != "classes":
            raise
        problem = str(error).split(". ")[0]
        classes = dataset.num_classes
        batch = (
            f" with classes_per_batch <= {classes}" if config.classes_per_batch > classes else ""
        )
        raise BadValue(
            f"Config.split='classes': {problem}; set split='stratified'{batch} (the same classes "
            "in train and test, as for a 2-class data set) or change test_fraction"
        ) from error
    if config.noise_rate > 0:
        train = noise.inject(
            train, rate=config.noise_rate, kind=config.noise_kind, seed=config.seed
        )
    _check_batch_classes(config, train, "the class-disjoint test split", "test_fraction")
    val = None
    if config.val_fraction > 0:
        before = train.num_classes
        train, val = validation_split(
            train, fraction=config.val_fraction, how=config.split, seed=config.seed
        )
        held = before - train.num_classes
        _check_batch_classes(
            config,
            train,
            f"the validation split, which holds out {held} of the {before} training classes "
            "(split='classes': it is class-disjoint too)",
            "val_fraction",
            lower=held > 2,  # it holds out at least 2 classes, whatever the fraction
        )
    return Splits(train=train, test=test, val=val)


def _check_batch_classes(
    config: Config, train: Dataset, taken: str, field: str, *, lower: bool = True
) -> None:
    """BadValue naming `field` (what took the classes away) when the training part holds fewer
    classes than `Config.classes_per_batch`: a batch could not be drawn. Read before training,
    so that the message names the cause rather than the sampler's class count."""
    if config.split != "classes" or train.num_classes >= config.classes_per_batch:
        return
    fixes = [
        f"lower classes_per_batch to at most {train.num_classes}"
        if train.num_classes >= 2
        else "train on more classes"
    ]
    if lower:
        fixes.append(f"lower {field}")
    raise BadValue(
        f"Config.{field}={getattr(config, field)!r}: after {taken}, {train.name!r} leaves "
        f"{train.num_classes} classes to train on, fewer than classes_per_batch="
        f"{config.classes_per_batch}; {', '.join(fixes)}, or set split='stratified' (every "
        "class on every side)"
    )


def build_components(
    config: Config,
    input_shape: Sequence[int],
    num_classes: int | None = None,
    image_shape: Sequence[int] | None = None,
    *,
    classes: Sequence[int] | Tensor | None = None,
    load_weights: bool = True,
) -> tuple[nn.Module, Geometry, losses.MetricLoss]:
    """(model, geometry, loss_fn) for `config` and inputs of one-sample shape `input_shape`.

    `classes` (the training label ids) or `num_classes` (ids 0..C-1) size per-class loss
    parameters. With `config.batchnorm="frozen"` the model's BatchNorm layers are frozen here
    (`backbones.freeze_batchnorm`), so a saved run rebuilds the model it was trained as;
    `load_weights=False` does not read pretrained trunk weights (a saved run's replace them)."""
    model = models.build(
        config.model,
        input_shape,
        config.embedding_dim,
        config.normalize,
        image_shape,
        load_weights=load_weights,
        **config.model_options,
    )
    if config.batchnorm == "frozen":
        freeze_batchnorm(model)  # in place
    geometry = geometries.build(config.geometry, model.embedding_dim, **config.geometry_options)
    loss_fn = build_loss(
        config, geometry, num_classes, classes=classes, embedding_dim=model.embedding_dim
    )
    return model, geometry, loss_fn


def build_loss(
    config: Config,
    geometry: Geometry | str,
    num_classes: int | None = None,
    *,
    classes: Sequence[int] | Tensor | None = None,
    embedding_dim: int | None = None,
) -> losses.MetricLoss:
    """The base loss named by `config.loss`, using `geometry` (a Geometry or a fixed geometry's
    name).

    The loss class takes what it names of the build context: the geometry; a tuple loss the
    selection fields of `config` (positives, negatives, margin, k_positives); the training
    classes (`classes`, their label ids, or `num_classes` C for ids 0..C-1), e.g. margin with
    `{"per_class_beta": True}`; the embedding dimension `embedding_dim`. `config.loss_options` go
    to the loss class as its options (e.g. `{"reduction": "mean"}` for triplet); `Config` has
    checked their names against `losses.LOSSES`.

    >>> from dmllab.geometry import Euclidean
    >>> build_loss(Config(loss="triplet", positives="nearest", negatives="semihard"), Euclidean())
    TripletLoss(
      positives='nearest', negatives='semihard', margin=0.2, k_positives=1
      (geometry): Euclidean(name='euclidean', symmetric=True, eps=1e-12)
    )
    """
    context: dict[str, Any] = {
        "geometry": geometry,
        **{name: getattr(config, name) for name in losses.SELECTION},
        "classes": classes,
        "num_classes": num_classes,
        "embedding_dim": embedding_dim,
    }
    loss_fn: losses.MetricLoss = losses.LOSSES.build(config.loss, context, **config.loss_options)
    return loss_fn


def build_regularisers(config: Config, geometry: Geometry) -> list[losses.Regulariser]:
    """The regularisers `config` names, for a model trained under `geometry`: LSD
    (`lsd_alpha`, `lsd_tau`, `lsd_include_self`, `lsd_beta_neg`) when lsd_alpha > 0, listing
    cosines where the geometry has them for these embeddings and -D otherwise (`lists_for`)."""
    regularisers: list[losses.Regulariser] = []
    if config.lsd_alpha > 0:
        regularisers.append(
            losses.REGULARISERS.build(
                "lsd",
                alpha=config.lsd_alpha,
                tau=config.lsd_tau,
                include_self=config.lsd_include_self,
                beta_neg=config.lsd_beta_neg,
                lists=lists_for(geometry, config.normalize),
            )
        )
    return regularisers
