"""Embedders: a trunk that reads the input and a head that writes a d-dimensional embedding.

Names (Config.model): `mlp`, `cnn` (small convnet for image rows), `identity` (the raw input is the
embedding: for 2-D geometry lessons, nothing to train), `resnet18` / `resnet50` (torchvision,
optional; randomly initialised unless `model_options={"weights": ...}` names torchvision weights
already on disk, since the lab never downloads at run time).

`MODELS` maps each name to its trunk builder `(input_shape, image_shape, **options) -> (trunk,
width)`; the options are the builder's keyword arguments (`Config.model_options`), so adding a model
is one registered function. `build` puts the embedding head on top.

>>> import torch
>>> model = build("mlp", input_shape=(64,), embedding_dim=8)
>>> z = model(torch.rand(5, 64))
>>> tuple(z.shape), bool(torch.allclose(z.norm(dim=1), torch.ones(5)))
((5, 8), True)
>>> build("mlp", input_shape=(64,), embedding_dim=8, width=3)
Traceback (most recent call last):
...
ValueError: model 'mlp' has no option(s) width; its options are: hidden
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence

from torch import Tensor, nn
from torch.nn import functional as F

from dmllab.values import registered


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
        input_shape: Sequence[int], image_shape: Sequence[int] | None, weights: str | None = None
    ) -> tuple[nn.Module, int]:
        if image_shape is None or image_shape[0] != 3:
            raise ValueError(
                f"model={name!r} needs RGB images [3, H, W]; got input shape {tuple(input_shape)}"
            )
        try:
            import torchvision
        except ImportError as error:  # optional dependency
            raise ValueError(
                f"model={name!r} needs torchvision, which is not installed; "
                "install a torchvision build that matches your torch, or use model='cnn'"
            ) from error
        net = getattr(torchvision.models, name)(weights=weights)
        width = net.fc.in_features
        net.fc = nn.Identity()
        return nn.Sequential(ImageView(image_shape), net), width

    trunk.__doc__ = (
        f"torchvision's {name} without its classifier "
        "(random init unless `weights` names local weights)."
    )
    return trunk


MODELS: dict[str, Trunk] = {
    "mlp": mlp_trunk,
    "cnn": cnn_trunk,
    "identity": identity_trunk,
    "resnet18": _resnet("resnet18"),
    "resnet50": _resnet("resnet50"),
}
"""Every model name (Config.model) -> its trunk builder."""


def options(name: str) -> dict[str, object]:
    """The options of model `name` (its `Config.model_options`) with their defaults."""
    registered("model", name, MODELS, "dmllab.build.build_components(config, input_shape)")
    skip = ("input_shape", "image_shape")
    return {
        key: p.default
        for key, p in inspect.signature(MODELS[name]).parameters.items()
        if key not in skip
    }


def build(
    name: str,
    input_shape: Sequence[int],
    embedding_dim: int,
    normalize: bool = True,
    image_shape: Sequence[int] | None = None,
    **options_: object,
) -> Embedder:
    """The embedder `name` (see `MODELS`) for inputs of shape `input_shape` (one sample).

    `image_shape` (C, H, W) lets image models read flattened image rows; it defaults to
    `input_shape` when that is 3-D. `identity` has no head: its embedding is the flattened input.
    Raises ValueError for an unknown name or option (listing the allowed ones) and for inputs the
    model cannot read."""
    known = options(name)
    unknown = sorted(set(options_) - set(known))
    if unknown:
        raise ValueError(
            f"model {name!r} has no option(s) {', '.join(unknown)}; its options are: "
            f"{', '.join(known) or 'none'}"
        )
    input_shape = tuple(int(s) for s in input_shape)
    if image_shape is None and len(input_shape) == 3:
        image_shape = input_shape
    trunk, width = MODELS[name](input_shape, image_shape, **options_)
    if width is None:
        return Embedder(trunk, nn.Identity(), math.prod(input_shape), normalize)
    return Embedder(trunk, nn.Linear(width, embedding_dim), embedding_dim, normalize)
