"""Image trunks from torchvision: ResNet-18 / ResNet-50 without their classifier, ImageNet weights
read from disk (never downloaded), ImageNet normalisation, and frozen BatchNorm.

Weights (`Config.model_options={"weights": ...}`):

    None                        random initialisation (torchvision's)
    "IMAGENET1K_V1", "DEFAULT"  torchvision's weights of that name for the model ("DEFAULT" is
                                its newest), read from torch's hub cache, where torchvision itself
                                keeps them: torch.hub.get_dir()/checkpoints/<torchvision's file
                                name> (under $TORCH_HOME/hub when TORCH_HOME is set)
    "/path/to/resnet50.pth"     a state dict of that torchvision model in a local file (offline
                                clusters; "~" is expanded). The common wrappings are unwrapped:
                                a training checkpoint {"state_dict": ...} (timm) or
                                {"model": ...} (torchvision's reference scripts), and the
                                `module.` in front of every key of a model saved inside
                                (Distributed)DataParallel (`plain_keys`)

The lab never downloads: weights that are not on disk are a `WeightsError` naming the path to
place the file at, where torchvision publishes it, and the local-file alternative. Files are read
with `torch.load(weights_only=True)`, which runs no code from the file (a pickled whole model or
a file torch.save did not write is a one-line `WeightsError` saying what the file holds), and
loaded strictly: every parameter and buffer of the trunk
must be in the file and nothing else may be, except the classifier's `fc.*` keys (the classifier
is removed); a `WeightsError` names the missing, unexpected and mis-shaped keys.

With weights the trunk's first layer normalises its input with ImageNet's channel mean and
standard deviation, the statistics the weights were trained with, so image data stay in [0, 1]
for every model and every augmentation.

`freeze_batchnorm` replaces every BatchNorm2d by torchvision's FrozenBatchNorm2d (running
statistics and affine parameters fixed): `Config.batchnorm="frozen"`.

>>> import torch
>>> trunk, width = resnet_trunk("resnet18", (3, 32, 32))
>>> width, tuple(trunk(torch.rand(2, 3, 32, 32)).shape)
(512, (2, 512))
>>> resnet_trunk("resnet18", (3, 32, 32), weights="/nowhere/resnet18.pth")
Traceback (most recent call last):
...
dmllab.backbones.WeightsError: model 'resnet18': weights='/nowhere/resnet18.pth' is neither a \
weights name of torchvision's resnet18 (IMAGENET1K_V1, DEFAULT) nor an existing file; give one \
of those names (read from torch's hub cache) or the path of a saved state dict
"""

from __future__ import annotations

import os
import re
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
from torch import Tensor, nn

from dmllab import vision

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "ImageInput",
    "ImageNetNormalize",
    "ResNetTrunk",
    "WeightsError",
    "freeze_batchnorm",
    "load_trunk_weights",
    "plain_key",
    "plain_keys",
    "resnet_trunk",
    "weights_file",
    "weights_names",
]

#: ImageNet's per-channel mean and standard deviation of RGB values in [0, 1] (what torchvision's
#: ImageNet weights were trained with; torchvision's `ImageClassification` transform uses them).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: how many keys an error message names of each kind
SHOWN_KEYS = 5


class WeightsError(ValueError):
    """Pretrained weights that cannot be used: not on disk, unreadable, or not the model's keys.
    The message names the file and what to do."""


class ImageNetNormalize(nn.Module):
    """(x - mean) / std per channel, x [N, 3, H, W] with values in [0, 1].

    The statistics are non-persistent buffers: they move with the module and are not part of its
    state dict, so records and checkpoints hold only learned weights."""

    mean: Tensor
    std: Tensor

    def __init__(
        self, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD
    ) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std


def weights_names(arch: str) -> list[str]:
    """The names torchvision gives the weights of model `arch`, "DEFAULT" (its newest) last."""
    return list(_weights_enum(arch).__members__)


def _weights_enum(arch: str) -> Any:
    return vision.require(f"ResNet trunks (model={arch!r})").models.get_model_weights(arch)


def weights_file(arch: str, weights: str) -> Path:
    """The file that `weights` (a torchvision weights name of `arch`, or a path) names.

    A name resolves to torch's hub cache (module docstring), a path to itself. Raises WeightsError
    when the file is not there (naming the path to place it at and the URL it is published under),
    and when `weights` is neither a name nor an existing file."""
    _check_weights(arch, weights)
    names = weights_names(arch)
    if weights in names:
        url = _weights_enum(arch)[weights].url
        path = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(url).path)
        if not path.is_file():
            raise WeightsError(
                f"model {arch!r}: weights={weights!r} are read from {path} (torch's hub cache; "
                "TORCH_HOME moves it), which does not exist, and dmllab never downloads: copy the "
                f"file there (torchvision publishes it at {url}), or give a local file with "
                "model_options={'weights': '/path/to/file.pth'}"
            )
        return path
    path = Path(weights).expanduser()
    if not path.is_file():
        raise WeightsError(
            f"model {arch!r}: weights={weights!r} is neither a weights name of torchvision's "
            f"{arch} ({', '.join(names)}) nor an existing file; give one of those names (read "
            "from torch's hub cache) or the path of a saved state dict"
        )
    return path


#: The name under which torch.compile's wrapper (OptimizedModule) registers the module it compiles.
COMPILED = "_orig_mod"
#: The prefix (Distributed)DataParallel puts in front of every key of the module it wraps.
PARALLEL_PREFIX = "module."
#: Keys under which training checkpoints keep the model's state dict (timm; torchvision's
#: reference scripts), beside the optimizer's state, the epoch, ...
CHECKPOINT_KEYS = ("state_dict", "model")
#: What a state dict is and how one is saved, for messages.
STATE_DICT = (
    "a state dict (a mapping of parameter names to tensors, as "
    "torch.save(model.state_dict(), path) writes) is expected"
)


def plain_key(key: str) -> str:
    """`key` without torch.compile's `_orig_mod.` parts."""
    return ".".join(part for part in key.split(".") if part != COMPILED)


def plain_keys(state: Mapping[str, Tensor], expected: Collection[str]) -> dict[str, Tensor]:
    """`state` under the names its module has when it was never wrapped: torch.compile's
    `_orig_mod.` taken out of every key, and the `module.` in front of every key of a state dict
    saved from a (Distributed)DataParallel wrapper cut off, unless the keys already are the
    module's `expected` keys."""
    plain = {plain_key(key): value for key, value in state.items()}
    if set(plain) != set(expected) and plain and all(k.startswith(PARALLEL_PREFIX) for k in plain):
        plain = {key[len(PARALLEL_PREFIX) :]: value for key, value in plain.items()}
    return plain


def load_trunk_weights(net: nn.Module, path: Path, arch: str) -> None:
    """Load the state dict in `path` into `net` (a torchvision `arch` whose classifier `fc` was
    replaced by nn.Identity), strictly except for the classifier's `fc.*` keys. A training
    checkpoint holding the state dict under "state_dict" or "model", and a state dict saved from
    a wrapped model (`plain_keys`), are unwrapped.

    Raises WeightsError naming the file when it cannot be read as a state dict with
    weights_only=True (saying what it holds instead), and naming the missing, unexpected and
    mis-shaped keys."""
    state = _unwrapped_checkpoint(_read_weights(path, arch))
    if not isinstance(state, Mapping) or not all(isinstance(v, Tensor) for v in state.values()):
        raise WeightsError(
            f"model {arch!r}: {path} does not hold a state dict (a mapping of names to "
            f"tensors) but a {type(state).__name__}; save torchvision's "
            f"model.state_dict() of a {arch}"
        )
    expected = net.state_dict()
    state = plain_keys(state, expected)
    trunk_state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    shapes = [
        f"{key!r} {tuple(value.shape)} (the model has {tuple(expected[key].shape)})"
        for key, value in trunk_state.items()
        if key in expected and value.shape != expected[key].shape
    ]
    if shapes:
        raise WeightsError(
            f"model {arch!r}: the weights in {path} do not fit torchvision's {arch}: "
            f"{len(shapes)} key(s) of another shape: {_shown(shapes, quote=False)}; "
            f"are they the weights of another model?"
        )
    result = net.load_state_dict(trunk_state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        parts = [
            f"{len(keys)} {kind} key(s): {_shown(keys)}"
            for kind, keys in (
                ("missing", result.missing_keys),
                ("unexpected", result.unexpected_keys),
            )
            if keys
        ]
        raise WeightsError(
            f"model {arch!r}: the weights in {path} do not fit torchvision's {arch} "
            f"({'; '.join(parts)}){_prefix_hint(result.unexpected_keys, expected)}"
        )


def _read_weights(path: Path, arch: str) -> Any:
    """What `torch.load(path, weights_only=True)` reads (argparse.Namespace allowed: torchvision's
    reference scripts save their arguments beside the model), or WeightsError in one line."""
    import argparse

    holds = _foreign_content(path)
    if holds is not None:
        raise WeightsError(
            f"model {arch!r}: cannot read the weights in {path}: it holds {holds}, not a file "
            f"torch.save writes; {STATE_DICT}"
        )
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch.load's errors for damaged files are of many kinds
        text = _ANSI.sub("", str(error))
        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
        if found is not None:
            raise WeightsError(
                f"model {arch!r}: cannot read the weights in {path}: it holds a pickled "
                f"{found.group(1)} object (a whole model or another object, whose loading would "
                f"run code from the file), not a state dict; {STATE_DICT}: save the model's "
                "state_dict()"
            ) from None
        cause = text.strip().splitlines()[0] if text.strip() else type(error).__name__
        raise WeightsError(
            f"model {arch!r}: cannot read the weights in {path} ({cause}); the file is damaged, "
            "cut short, or not a state dict saved with torch.save"
        ) from None


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
#: How the files torch.save writes begin: a zip archive, or (before torch 1.6) a pickle.
_TORCH_SAVE_STARTS = (b"PK\x03\x04", b"\x80")


def _foreign_content(path: Path) -> str | None:
    """What a file holds when it cannot be one torch.save wrote (by its first bytes), for
    messages; None when it may be one."""
    with open(path, "rb") as file:
        head = file.read(64)
    if not head:
        return "nothing (0 bytes)"
    if head.startswith(_TORCH_SAVE_STARTS):
        return None
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return f"other bytes (it starts with {head[:16]!r})"
    first = text.strip().splitlines()[0][:40] if text.strip() else text[:40]
    return f"text (it starts with {first!r})"


def _unwrapped_checkpoint(state: Any) -> Any:
    """The state dict a training checkpoint holds under one of `CHECKPOINT_KEYS`, else `state`."""
    if not isinstance(state, Mapping) or all(isinstance(v, Tensor) for v in state.values()):
        return state
    for key in CHECKPOINT_KEYS:
        inner = state.get(key)
        if isinstance(inner, Mapping) and all(isinstance(v, Tensor) for v in inner.values()):
            return inner
    return state


class ImageInput(nn.Module):
    """Image rows [N, 3, H, W] (or flattened [N, 3*H*W]) as [N, 3, H, W], normalised with
    ImageNet's statistics when `normalize`."""

    def __init__(self, image_shape: Sequence[int], normalize: bool) -> None:
        super().__init__()
        self.image_shape = tuple(image_shape)
        self.normalize = ImageNetNormalize() if normalize else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return self.normalize(x.reshape(len(x), *self.image_shape))


class ResNetTrunk(nn.Sequential):
    """`ImageInput` then torchvision's ResNet `net` without its classifier: images -> features
    [N, width]. A Sequential of the two, so the weights' names are those records have always had
    (`1.conv1.weight`, ...)."""

    def __init__(self, image_shape: Sequence[int], net: nn.Module, normalize: bool) -> None:
        super().__init__(ImageInput(image_shape, normalize), net)

    @property
    def net(self) -> nn.Module:
        """torchvision's ResNet (its `fc` an nn.Identity)."""
        return self[1]

    @property
    def normalize(self) -> nn.Module:
        """ImageNetNormalize for pretrained weights, else nn.Identity."""
        module = self[0]
        assert isinstance(module, ImageInput)
        return module.normalize


def resnet_trunk(
    arch: str,
    image_shape: Sequence[int] | None,
    weights: str | None = None,
    load_weights: bool = True,
) -> tuple[ResNetTrunk, int]:
    """torchvision's `arch` ("resnet18", "resnet50") without its classifier, reading image rows
    [N, 3, H, W] (or flattened [N, 3*H*W]), and its output width (512 or 2048).

    weights:      module docstring; with weights the trunk normalises its input with ImageNet's
                  statistics first.
    load_weights: False builds the same trunk without reading the file (a saved run's own weights
                  replace them anyway).

    Raises ValueError for inputs that are not RGB images, VisionUnavailable when torchvision
    cannot be imported, WeightsError for weights that cannot be used."""
    if image_shape is None or len(image_shape) != 3 or image_shape[0] != 3:
        shape = tuple(image_shape) if image_shape is not None else None
        raise ValueError(
            f"model={arch!r} needs RGB images [3, H, W]; this dataset's rows are not (image "
            f"shape {shape}). Use model='mlp' for other inputs"
        )
    torchvision = vision.require(f"ResNet trunks (model={arch!r})")
    if weights is not None:
        _check_weights(arch, weights)
    path = weights_file(arch, weights) if weights is not None and load_weights else None
    net = getattr(torchvision.models, arch)(weights=None)
    width = int(net.fc.in_features)
    net.fc = nn.Identity()
    if path is not None:
        load_trunk_weights(net, path, arch)
    return ResNetTrunk(image_shape, net, normalize=weights is not None), width


def _check_weights(arch: str, weights: object) -> None:
    if not isinstance(weights, str) or not weights:
        raise WeightsError(
            f"model {arch!r}: weights must be a torchvision weights name or a file path "
            f"(a non-empty string), or None for a random initialisation; got {weights!r}"
        )


_BATCHNORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


def freeze_batchnorm(model: nn.Module) -> nn.Module:
    """`model` with every BatchNorm2d replaced (in place) by torchvision's FrozenBatchNorm2d with
    its running statistics and affine parameters: a fixed per-channel affine map, the same in
    training and evaluation and in one process or N. Returns the model.

    Raises ValueError for another kind of BatchNorm layer (which FrozenBatchNorm2d cannot take),
    VisionUnavailable when torchvision cannot be imported."""
    frozen_class = vision.require("Config.batchnorm='frozen'").ops.misc.FrozenBatchNorm2d
    for name, child in list(model.named_children()):
        if isinstance(child, nn.BatchNorm2d):
            frozen = frozen_class(child.num_features, eps=child.eps)
            with torch.no_grad():
                if child.affine:
                    frozen.weight.copy_(child.weight)
                    frozen.bias.copy_(child.bias)
                if child.running_mean is not None and child.running_var is not None:
                    frozen.running_mean.copy_(child.running_mean)
                    frozen.running_var.copy_(child.running_var)
            source = next(iter(child.parameters()), child.running_mean)
            setattr(model, name, frozen.to(source.device if source is not None else "cpu"))
        elif isinstance(child, _BATCHNORMS):
            raise ValueError(
                f"Config.batchnorm='frozen' freezes BatchNorm2d layers; {name} is a "
                f"{type(child).__name__}: use batchnorm='batch'"
            )
        else:
            freeze_batchnorm(child)
    return model


def _shown(keys: Sequence[str], quote: bool = True) -> str:
    more = f", ... ({len(keys) - SHOWN_KEYS} more)" if len(keys) > SHOWN_KEYS else ""
    return ", ".join(repr(key) if quote else key for key in keys[:SHOWN_KEYS]) + more


def _prefix_hint(unexpected: Sequence[str], expected: Mapping[str, Tensor]) -> str:
    """'; every key carries the prefix P ...' when stripping one leading prefix from the
    unexpected keys would give the model's keys (a wrapped model's state dict)."""
    if not unexpected:
        return ""
    first = unexpected[0]
    for cut in range(len(first)):
        if first[cut] != ".":
            continue
        prefix = first[: cut + 1]
        stripped = {k[len(prefix) :] for k in unexpected if k.startswith(prefix)}
        if set(expected) <= stripped:
            return (
                f"; every key carries the prefix {prefix!r} (the state dict of a wrapped model): "
                "save the inner model's state_dict()"
            )
    return ""
