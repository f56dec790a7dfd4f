"""Build the three trainable parts of a run from its Config: embedder, geometry, loss.

The loss owns the geometry (a learned geometry's parameters are optimised with the loss's own
learning rate), so `loss_fn.geometry is geometry`.
"""

from __future__ import annotations

from typing import Sequence

from torch import Tensor, nn

from dmllab import geometry as geometries
from dmllab import losses, models
from dmllab.config import Config


def build_components(config: Config, input_shape: Sequence[int], num_classes: int | None = None,
                     image_shape: Sequence[int] | None = None, *,
                     classes: Sequence[int] | Tensor | None = None) -> tuple[nn.Module, nn.Module, nn.Module]:
    """(model, geometry, loss_fn) for `config` and inputs of one-sample shape `input_shape`.

    `classes` (the training label ids) or `num_classes` (ids 0..C-1) size per-class loss parameters."""
    model = models.build(config, input_shape, image_shape)
    geometry = geometries.build(config.geometry, model.embedding_dim, **config.geometry_options)
    loss_fn = losses.build(config, geometry, num_classes, classes=classes)
    return model, geometry, loss_fn
