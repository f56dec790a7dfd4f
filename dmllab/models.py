"""Embedders: a trunk that reads the input and a head that writes a d-dimensional embedding.

Names (Config.model): `mlp`, `cnn` (small convnet for image rows), `identity` (the raw input is the
embedding: for 2-D geometry lessons, nothing to train), `resnet18` / `resnet50` (torchvision's,
without the classifier; randomly initialised unless `model_options={"weights": ...}` names
ImageNet weights in torch's hub cache, e.g. "IMAGENET1K_V1", or a local state-dict file; the lab
never downloads, and pretrained trunks normalise their [0, 1] input with ImageNet's statistics:
see `dmllab.backbones`).

`MODELS` maps each name to its trunk builder `(input_shape, image_shape, **options) -> (trunk,
width)`; the options are the builder's keyword arguments besides the context `build` supplies
(`input_shape`, `image_shape`, and `load_weights`: False when a saved run's weights will replace
any pretrained ones, so the pretrained file is not read), so adding a model is one registered
function. `build` puts the embedding head on top.

>>> import torch
>>> model = build("mlp", input_shape=(64,), embedding_dim=8)
>>> z = model(torch.rand(5, 64))
>>> tuple(z.shape), bool(torch.allclose(z.norm(dim=1), torch.ones(5)))
((5, 8), True)
>>> build("mlp", input_shape=(64,), embedding_dim=8, width=3)
Traceback (most recent call last):
...
dmllab.registry.UnknownOption: model 'mlp' has no option(s) width; its options are: hidden
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from torch import Tensor, nn
from torch.nn import functional as F

from dmllab.backbones import resnet_trunk
from dmllab.registry import Registry
from dmllab.values import BadValue, integer


class Embedder(nn.Module):
    """trunk -> (optional linear head) -> optional L2 normalisation.

    Inputs of another floating dtype than the parameters (float64 data, see `dmllab.arrays`) are
    cast to the parameters' dtype first."""

    def __init__(
        self, trunk: nn.Module, head: nn.Module, embedding_dim: int, normalize: bool
    ) -> None:
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
    """Flatten each row: [N, ...] -> [N, prod(...)]."""

    def forward(self, x: Tensor) -> Tensor:
        return x.reshape(len(x), -1)


class ImageView(nn.Module):
    """Reshape flattened image rows [N, C*H*W] back to [N, C, H, W] (no-op on image tensors)."""

    def __init__(self, image_shape: Sequence[int]) -> None:
        super().__init__()
        self.image_shape = tuple(image_shape)

    def forward(self, x: Tensor) -> Tensor:
        return x.reshape(len(x), *self.image_shape)


Trunk = Callable[..., tuple[nn.Module, "int | None"]]
"""`(input_shape, image_shape, **options) -> (trunk, width)`; width None: the trunk's output is the
embedding itself (no head)."""


def identity_trunk(
    input_shape: Sequence[int], image_shape: Sequence[int] | None
) -> tuple[nn.Module, None]:
    """The raw input, flattened, is the embedding (no head): for 2-D geometry lessons."""
    return Flatten(), None


def mlp_trunk(
    input_shape: Sequence[int],
    image_shape: Sequence[int] | None,
    hidden: Sequence[int] = (128, 128),
) -> tuple[nn.Module, int]:
    """Flatten, then Linear + ReLU per entry of `hidden`."""
    layers: list[nn.Module] = [Flatten()]
    width = math.prod(input_shape)
    for size in hidden:
        layers += [nn.Linear(width, size), nn.ReLU()]
        width = size
    return nn.Sequential(*layers), width


def cnn_trunk(
    input_shape: Sequence[int],
    image_shape: Sequence[int] | None,
    channels: Sequence[int] = (32, 64),
) -> tuple[nn.Module, int]:
    """Conv 3x3 + BatchNorm + ReLU + 2x2 max-pool per entry of `channels`, then global average
    pool."""
    if image_shape is None:
        raise ValueError(
            "model='cnn' needs image inputs; "
            f"this dataset's rows have shape {tuple(input_shape)} and no image_shape. "
            "Use model='mlp' or a dataset with images"
        )
    layers: list[nn.Module] = [ImageView(image_shape)]
    width = image_shape[0]
    for size in channels:
        layers += [
            nn.Conv2d(width, size, 3, padding=1),
            nn.BatchNorm2d(size),
            nn.ReLU(),
            nn.MaxPool2d(2, ceil_mode=True),
        ]
        width = size
    layers += [nn.AdaptiveAvgPool2d(1), Flatten()]
    return nn.Sequential(*layers), width


def _resnet(name: str) -> Trunk:
    def trunk(
        input_shape: Sequence[int],
        image_shape: Sequence[int] | None,
        weights: str | None = None,
        load_weights: bool = True,
    ) -> tuple[nn.Module, int]:
        return resnet_trunk(name, image_shape, weights, load_weights)

    trunk.__doc__ = (
        f"torchvision's {name} without its classifier (random init, or `weights`: a torchvision "
        "weights name read from torch's hub cache, or a local file; never downloaded)."
    )
    return trunk


#: the largest layer width an option may ask for (a typo such as 1000000 fails here)
MAX_WIDTH = 65_536


def _widths(owner: str, value: object) -> list[int]:
    """The option check of `hidden` / `channels`: a list of layer widths, each an int in
    [1, MAX_WIDTH] (an empty list: no layer). BadValue naming the option otherwise."""
    if not isinstance(value, (list, tuple)):
        raise BadValue(
            f"{owner} must be a list of layer widths (ints >= 1), e.g. [128, 128]; "
            f"got {value!r} ({type(value).__name__})"
        )
    return [integer(f"{owner}[{index}]", size, 1, MAX_WIDTH) for index, size in enumerate(value)]


MODELS: Registry[Trunk] = Registry(
    "model",
    context=("input_shape", "image_shape", "load_weights"),
    from_config="dmllab.build.build_components(config, input_shape)",
)
"""Every model name (Config.model) -> its trunk builder."""
MODELS.register("mlp", mlp_trunk, checks={"hidden": _widths})
MODELS.register("cnn", cnn_trunk, checks={"channels": _widths})
MODELS.register("identity", identity_trunk)
MODELS.register("resnet18", _resnet("resnet18"))
MODELS.register("resnet50", _resnet("resnet50"))


def build(
    name: str,
    input_shape: Sequence[int],
    embedding_dim: int,
    normalize: bool = True,
    image_shape: Sequence[int] | None = None,
    *,
    load_weights: bool = True,
    **options_: object,
) -> Embedder:
    """The embedder `name` (see `MODELS`) for inputs of shape `input_shape` (one sample).

    `image_shape` (C, H, W) lets image models read flattened image rows; it defaults to
    `input_shape` when that is 3-D. `identity` has no head: its embedding is the flattened input.
    `load_weights=False` skips reading pretrained weights (the trunk is built the same; for a
    saved run, whose own weights are loaded next).
    Raises ValueError for an unknown name or option (listing the allowed ones), for inputs the
    model cannot read and for pretrained weights that cannot be used (`backbones.WeightsError`);
    VisionUnavailable when a torchvision model is named and torchvision cannot be imported."""
    input_shape = tuple(int(s) for s in input_shape)
    if image_shape is None and len(input_shape) == 3:
        image_shape = input_shape
    context = {"input_shape": input_shape, "image_shape": image_shape, "load_weights": load_weights}
    trunk, width = MODELS.build(name, context, **options_)
    if width is None:
        return Embedder(trunk, nn.Identity(), math.prod(input_shape), normalize)
    return Embedder(trunk, nn.Linear(width, embedding_dim), embedding_dim, normalize)
