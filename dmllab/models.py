"""Embedders: a trunk that reads the input and a head that writes a d-dimensional embedding.

Names (Config.model): `mlp`, `cnn` (small convnet for image rows), `identity` (the raw input is the
embedding: for 2-D geometry lessons, nothing to train), `resnet18` / `resnet50` (torchvision,
optional; randomly initialised unless `model_options={"weights": ...}` names torchvision weights
already on disk, since the lab never downloads at run time).

>>> import torch
>>> from dmllab.config import Config
>>> model = build(Config(model="mlp", embedding_dim=8), input_shape=(64,))
>>> z = model(torch.rand(5, 64))
>>> tuple(z.shape), bool(torch.allclose(z.norm(dim=1), torch.ones(5)))
((5, 8), True)
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from dmllab.config import Config


class Embedder(nn.Module):
    """trunk -> (optional linear head) -> optional L2 normalisation.

    Inputs of another floating dtype than the parameters (float64 data, see `dmllab.arrays`) are
    cast to the parameters' dtype first."""

    def __init__(self, trunk: nn.Module, head: nn.Module, embedding_dim: int, normalize: bool) -> None:
        super().__init__()
        self.trunk = trunk
        self.head = head
        self.embedding_dim = embedding_dim
        self.normalize = normalize

    def forward(self, x: Tensor) -> Tensor:
        parameter = next(self.parameters(), None)
        if parameter is not None and x.dtype != parameter.dtype:
            x = x.to(parameter.dtype)
        z = self.head(self.trunk(x))
        return F.normalize(z, dim=1) if self.normalize else z


class Flatten(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return x.reshape(len(x), -1)


class ImageView(nn.Module):
    """Reshape flattened image rows [N, C*H*W] back to [N, C, H, W] (no-op on image tensors)."""

    def __init__(self, image_shape: Sequence[int]) -> None:
        super().__init__()
        self.image_shape = tuple(image_shape)

    def forward(self, x: Tensor) -> Tensor:
        return x.reshape(len(x), *self.image_shape)


def mlp_trunk(input_dim: int, hidden: Sequence[int]) -> tuple[nn.Module, int]:
    layers: list[nn.Module] = [Flatten()]
    width = input_dim
    for size in hidden:
        layers += [nn.Linear(width, size), nn.ReLU()]
        width = size
    return nn.Sequential(*layers), width


def cnn_trunk(image_shape: Sequence[int], channels: Sequence[int]) -> tuple[nn.Module, int]:
    layers: list[nn.Module] = [ImageView(image_shape)]
    width = image_shape[0]
    for size in channels:
        layers += [nn.Conv2d(width, size, 3, padding=1), nn.BatchNorm2d(size), nn.ReLU(), nn.MaxPool2d(2, ceil_mode=True)]
        width = size
    layers += [nn.AdaptiveAvgPool2d(1), Flatten()]
    return nn.Sequential(*layers), width


def resnet_trunk(name: str, weights: str | None) -> tuple[nn.Module, int]:
    try:
        import torchvision
    except ImportError as error:  # optional dependency
        raise ValueError(
            f"model={name!r} needs torchvision, which is not installed; install a torchvision build that "
            "matches your torch, or use model='cnn'") from error
    net = getattr(torchvision.models, name)(weights=weights)
    width = net.fc.in_features
    net.fc = nn.Identity()
    return net, width


def build(config: Config, input_shape: Sequence[int], image_shape: Sequence[int] | None = None) -> Embedder:
    """The embedder named by `config.model` for inputs of shape `input_shape` (one sample).

    `image_shape` (C, H, W) lets the `cnn` read flattened image rows; it defaults to
    `input_shape` when that is 3-D.
    """
    options = dict(config.model_options)
    input_shape = tuple(int(s) for s in input_shape)
    input_dim = math.prod(input_shape)
    if image_shape is None and len(input_shape) == 3:
        image_shape = input_shape
    if config.model == "identity":
        _no_options(config, options)
        return Embedder(Flatten(), nn.Identity(), input_dim, config.normalize)
    if config.model == "mlp":
        hidden = _take(options, "hidden", (128, 128))
        _no_options(config, options)
        trunk, width = mlp_trunk(input_dim, hidden)
    elif config.model == "cnn":
        if image_shape is None:
            raise ValueError(
                f"model='cnn' needs image inputs; this dataset's rows have shape {input_shape} and no "
                "image_shape. Use model='mlp' or a dataset with images")
        channels = _take(options, "channels", (32, 64))
        _no_options(config, options)
        trunk, width = cnn_trunk(image_shape, channels)
    else:  # resnet18 / resnet50
        if image_shape is None or image_shape[0] != 3:
            raise ValueError(f"model={config.model!r} needs RGB images [3, H, W]; got input shape {input_shape}")
        weights = _take(options, "weights", None)
        _no_options(config, options)
        trunk, width = resnet_trunk(config.model, weights)
        trunk = nn.Sequential(ImageView(image_shape), trunk)
    head = nn.Linear(width, config.embedding_dim)
    return Embedder(trunk, head, config.embedding_dim, config.normalize)


def _take(options: dict, key: str, default):
    return options.pop(key, default)


def _no_options(config: Config, left: dict) -> None:
    if left:
        raise ValueError(
            f"Config.model_options has unknown key(s) {sorted(left)} for model={config.model!r}; "
            "mlp takes 'hidden', cnn takes 'channels', resnet18/resnet50 take 'weights', identity takes none")
