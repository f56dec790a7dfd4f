"""`LazyImages`: image files decoded on demand, so large image datasets never sit in memory.

`images[index]` decodes the listed files with Pillow: turned upright by their EXIF orientation,
RGB by the per-mode rules of `dmllab.data.pixels` (16-bit grey / 65535, transparency over white),
the shorter side resized to `size` (bilinear), a centred size x size crop, values in [0, 1], as a
float tensor [n, 3, size, size]. `images.subset(index)` is a lazy view (what `Dataset.subset` and
the splits use). A file that cannot be decoded raises `BadImageError` naming it;
`find_bad_images(paths)` decodes every file up front and lists all that fail.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from dmllab.data.pixels import as_pixels, to_array

if TYPE_CHECKING:  # Pillow is imported where images are decoded
    import PIL.Image


class LazyImages:
    """A list of image paths that decodes `images[index]` to a float tensor [n, 3, size, size]."""

    def __init__(self, paths: Sequence[str | Path], size: int) -> None:
        self.paths = [str(path) for path in paths]
        self.size = int(size)

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.paths), 3, self.size, self.size)

    def __getitem__(self, index: Tensor | Sequence[int] | int) -> Tensor:
        rows = _rows(index, len(self.paths))
        if not rows:
            return torch.empty(0, 3, self.size, self.size)
        return torch.stack([decode(self.paths[row], self.size) for row in rows])

    def subset(self, index: Tensor | Sequence[int]) -> LazyImages:
        """The images `index` (long index or boolean mask) as another lazy list; none decoded."""
        return LazyImages([self.paths[row] for row in _rows(index, len(self.paths))], self.size)

    def __repr__(self) -> str:
        return f"LazyImages({len(self.paths)} files, size={self.size})"


MISSING = "does not exist"


class BadImageError(ValueError):
    """An image file that cannot be decoded; `path` is the file, `reason` what Pillow said."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path, self.reason = str(path), reason
        super().__init__(
            f"cannot decode image {self.path}: {reason} — replace or delete the file "
            "(`dmllab verify ROOT --layout LAYOUT` lists every bad file of a data set)"
        )


def decode(path: str | Path, size: int) -> Tensor:
    """One image as a float32 tensor [3, size, size] in [0, 1]: shorter side -> size, centre crop.

    Raises BadImageError (a ValueError) naming `path` when the file is missing, truncated, not an
    image, or in a mode `dmllab.data.pixels` refuses.
    """
    from PIL import Image

    image = read(path)
    width, height = image.size
    scale = size / min(width, height)
    resized = (max(size, round(width * scale)), max(size, round(height * scale)))
    image = image.resize(resized, Image.Resampling.BILINEAR)
    left, top = (resized[0] - size) // 2, (resized[1] - size) // 2
    pixels = to_array(image.crop((left, top, left + size, top + size)))
    return torch.from_numpy(pixels).permute(2, 0, 1).contiguous()


def find_bad_images(paths: Sequence[str | Path], workers: int | None = None) -> list[BadImageError]:
    """Decode every file in full (as `decode` would) and return one BadImageError per failure,
    in `paths` order; [] when all decode. Uses `workers` threads (default: the CPU count)."""
    from concurrent.futures import ThreadPoolExecutor

    def check(path: str | Path) -> BadImageError | None:
        try:
            read(path)
        except BadImageError as error:
            return error
        return None

    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        return [error for error in pool.map(check, paths) if error is not None]


def read(path: str | Path) -> PIL.Image.Image:
    """The image at `path` decoded in full, turned upright by its EXIF orientation, as the "RGB"
    or "F" image `dmllab.data.pixels.as_pixels` makes. Any failure (missing, truncated, not an
    image, a refused mode) raises BadImageError naming `path`."""
    from PIL import Image, ImageOps

    if not Path(path).is_file():
        raise BadImageError(path, MISSING)
    try:
        with Image.open(path) as image:
            return as_pixels(ImageOps.exif_transpose(image))
    except Exception as error:  # whatever a broken file makes Pillow raise, say which file it was
        raise BadImageError(path, f"{type(error).__name__}: {error}") from error


def _rows(index: Tensor | Sequence[int] | int, length: int) -> list[int]:
    index = torch.as_tensor(index)
    if index.dtype == torch.bool:
        if len(index) != length:
            raise IndexError(f"boolean mask of length {len(index)} for {length} images")
        index = index.nonzero().flatten()
    rows = index.reshape(-1).long()
    rows = torch.where(rows < 0, rows + length, rows)
    if len(rows) and (int(rows.min()) < 0 or int(rows.max()) >= length):
        raise IndexError(f"image index out of range for {length} images")
    return rows.tolist()
