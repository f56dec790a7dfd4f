"""Named train/eval transform pairs for image inputs (`Config.augment`), and the policies for image
files that fail to decode during training (`Config.on_bad_image`).

`TRANSFORMS` maps a name to a builder `(image_size) -> TransformPair`; "none" decodes, resizes the
shorter side and centre-crops (what `LazyImages` does) for training and evaluation alike.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import Tensor

from dmllab.registry import Registry

__all__ = ["BAD_IMAGE_POLICIES", "TRANSFORMS", "TransformPair"]

#: "raise": stop naming the file; "skip": leave it out of its batch with a warning and a count.
BAD_IMAGE_POLICIES = ("raise", "skip")


@dataclass(frozen=True)
class TransformPair:
    """What training and evaluation do to a decoded image tensor [3, H, W] (None: nothing)."""

    train: Callable[[Tensor], Tensor] | None
    eval: Callable[[Tensor], Tensor] | None


TRANSFORMS: Registry[Callable[..., TransformPair]] = Registry("augment", context=("image_size",))
"""name -> builder `(image_size) -> TransformPair`."""


@TRANSFORMS.register("none", description="decode, resize the shorter side, centre crop: no change")
def no_augmentation(image_size: int) -> TransformPair:
    """Images as decoded, for training and evaluation alike."""
    return TransformPair(train=None, eval=None)
