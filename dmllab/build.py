"""From a Config to the parts of a run: its data splits, embedder, geometry, loss and regulariser.

    prepare(config)  : load (or the given Dataset) -> split (class-disjoint or stratified) -> noise on
                       the training labels -> validation split carved from the (noisy) training part
    build_components : (model, geometry, loss_fn) for the training split's inputs

The validation split is carved *after* the noise is injected: in practice a validation set drawn
from the training data carries the same label noise, and early stopping must live with it. The
test split is always clean. The loss owns the geometry (a learned geometry's parameters are
optimised with the loss's own learning rate), so `loss_fn.geometry is geometry`.
"""

from __future__ import annotations

from typing import Sequence

from torch import Tensor, nn

from dmllab import geometry as geometries
from dmllab import losses, models
from dmllab.config import Config
from dmllab.data import Dataset, Splits, load, noise, resolve, split, validation_split

__all__ = ["build_components", "prepare"]


def prepare(config: Config, dataset: Dataset | str | None = None) -> Splits:
    """The splits for `config`; a given `dataset` (a Dataset, or a registered name loaded with
    `config.seed` and default options) wins over `config.dataset`."""
    if dataset is None:
        options = {"seed": config.seed, **config.dataset_options}
        dataset = load(config.dataset, **options)
    dataset = resolve(dataset, seed=config.seed)
    train, test = split(dataset, how=config.split, test_fraction=config.test_fraction, seed=config.seed)
    if config.noise_rate > 0:
        train = noise.inject(train, rate=config.noise_rate, kind=config.noise_kind, seed=config.seed)
    val = None
    if config.val_fraction > 0:
        train, val = validation_split(train, fraction=config.val_fraction, how=config.split, seed=config.seed)
    return Splits(train=train, test=test, val=val)

def build_components(config: Config, input_shape: Sequence[int], num_classes: int | None = None,
                     image_shape: Sequence[int] | None = None, *,
                     classes: Sequence[int] | Tensor | None = None) -> tuple[nn.Module, nn.Module, nn.Module]:
    """(model, geometry, loss_fn) for `config` and inputs of one-sample shape `input_shape`.

    `classes` (the training label ids) or `num_classes` (ids 0..C-1) size per-class loss parameters."""
    model = models.build(config.model, input_shape, config.embedding_dim, config.normalize, image_shape,
                         **config.model_options)
    geometry = geometries.build(config.geometry, model.embedding_dim, **config.geometry_options)
    loss_fn = losses.build(config, geometry, num_classes, classes=classes)
    return model, geometry, loss_fn
