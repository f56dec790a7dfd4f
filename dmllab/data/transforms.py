"""Named train/eval transform pairs for image inputs (`Config.augment`), and the policies for image
files that fail to decode during training (`Config.on_bad_image`).

`TRANSFORMS` maps a name to a builder `(image_size) -> TransformPair` (torchvision's v2 API):

    none          training and evaluation alike: decode, resize the shorter side to image_size,
                  centre crop (what `LazyImages` does); the model sees the same pixels every epoch
    dml-standard  training: RandomResizedCrop(image_size) + RandomHorizontalFlip; evaluation:
                  Resize(round(image_size * 256 / 224)) + CenterCrop(image_size): the protocol of
                  Roth et al. 2020 ("Revisiting training strategies and generalization
                  performance in deep metric learning") and of the official LSD code (at
                  image_size 224: crops of 224 for training, 256 then a 224 centre crop for
                  evaluation)

A named pair other than "none" reads each file whole (`dmllab.data.images.read_pixels`: the full
picture, or a JPEG at a reduced DCT scale that keeps about 2 x image_size), so a random crop can
fall anywhere in it; it transforms the uint8 tensor and converts to float32 in [0, 1] last
(`as_float`). The training transform's random draws for each image come from a generator seeded
by (seed, epoch, batch number, position in the global batch), `sample_seed`: the same with any
number of workers or ranks, and after a resume.

Bad image policies (`Config.on_bad_image`, for a file that fails while the batches are decoded;
the cheap check when a folder is listed names every file that is empty or unreadable before any
training, whatever the policy):

    raise   stop with a `BadImageError` naming the file
    skip    warn naming the file, count it in the epoch's history row (`bad_images`) and put
            another image of the same class in its place (drawn from the training split outside
            the batch, by the same seed), so every batch, and every rank's share of it under DDP,
            keeps its size; where every row must keep its place (`Run.embed`: evaluation, the
            validation split, probes), a black image takes it, with a warning naming the file
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from dmllab.registry import Registry

__all__ = [
    "BAD_IMAGE_POLICIES",
    "TRANSFORMS",
    "TransformPair",
    "as_float",
    "dml_standard",
    "no_augmentation",
    "sample_seed",
]

#: "raise": stop naming the file; "skip": leave it out of its batch with a warning and a count.
BAD_IMAGE_POLICIES = ("raise", "skip")

Transform = Callable[[Tensor], Tensor]


@dataclass(frozen=True)
class TransformPair:
    """What training and evaluation do to a decoded image tensor [3, H, W] (uint8, or float32 for
    high-depth sources), giving [3, image_size, image_size] of the same dtype. None: the image is
    read as `LazyImages` decodes it (resized and centre-cropped in Pillow), untransformed."""

    train: Transform | None
    eval: Transform | None


TRANSFORMS: Registry[Callable[..., TransformPair]] = Registry("augment", context=("image_size",))
"""name -> builder `(image_size) -> TransformPair`."""


@TRANSFORMS.register("none", description="decode, resize the shorter side, centre crop: no change")
def no_augmentation(image_size: int) -> TransformPair:
    """Images as decoded, for training and evaluation alike."""
    return TransformPair(train=None, eval=None)


@TRANSFORMS.register(
    "dml-standard",
    description="train: random resized crop + horizontal flip; eval: resize x 256/224, centre crop",
)
def dml_standard(image_size: int) -> TransformPair:
    """RandomResizedCrop(image_size) + RandomHorizontalFlip for training; Resize(round(image_size *
    256 / 224)) + CenterCrop(image_size) for evaluation (Roth et al. 2020; official LSD code).
    Bilinear with antialiasing, on uint8 tensors. Raises VisionUnavailable without torchvision."""
    import importlib

    from dmllab.vision import require

    require("augment='dml-standard'")  # torchvision, or one error that names the fix
    v2 = importlib.import_module("torchvision.transforms.v2")
    return TransformPair(
        train=v2.Compose([v2.RandomResizedCrop(image_size), v2.RandomHorizontalFlip()]),
        eval=v2.Compose([v2.Resize(round(image_size * 256 / 224)), v2.CenterCrop(image_size)]),
    )


def as_float(image: Tensor) -> Tensor:
    """A transformed image as float32 in [0, 1]: uint8 / 255; a float image as it is."""
    if image.dtype == torch.uint8:
        return image.to(torch.float32).div_(255.0)
    return image.to(torch.float32)


def sample_seed(seed: int, epoch: int, batch: int, position: int) -> int:
    """The seed of one image's random draws: a hash (NumPy's SeedSequence) of (seed, epoch,
    batch number within the epoch, position in the global batch), in [0, 2**63)."""
    words = [int(value) & 0xFFFFFFFF for value in (seed, epoch, batch, position)]
    return int(np.random.SeedSequence(words).generate_state(1, np.uint64)[0] >> 1)
