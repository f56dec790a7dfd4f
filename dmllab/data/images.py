"""`LazyImages`: image files decoded on demand, so large image datasets never sit in memory.

`images[index]` decodes the listed files with Pillow: turned upright by their EXIF orientation,
RGB by the per-mode rules of `dmllab.data.pixels` (16-bit grey / 65535, transparency over white),
the shorter side resized to `size` (bilinear), a centred size x size crop, values in [0, 1], as a
float tensor [n, 3, size, size]. `images.subset(index)` is a lazy view (what `Dataset.subset` and
the splits use). A file that cannot be decoded raises `BadImageError` naming it.

`read_pixels(path, size)` is what the named transforms (`dmllab.data.transforms`) start from: the
whole picture, upright, as a uint8 tensor [3, H, W] (float32 in [0, 1] for high-depth grey), so a
random crop sees all of it. RGB and grey JPEGs are decoded by torchvision's `decode_jpeg` (the same
libjpeg-turbo pixels as Pillow), a JPEG whose shorter side is at least 4 x `size` by Pillow at a
reduced DCT scale (`Image.draft`: 1/2, 1/4 or 1/8, keeping the shorter side >= 2 x `size`), every
other file by Pillow with the per-mode rules above.

Two checks list bad files before any training: `check_files(paths)` is cheap (the file exists and
is not empty, Pillow reads its header, and a JPEG or PNG ends with its end marker; one that does
not is decoded in full to be sure), `find_bad_images(paths)` decodes every file in full.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from dmllab.data.pixels import as_pixels, to_array
from dmllab.paths import printable

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
EMPTY = "empty file (0 bytes)"
#: A JPEG's last marker (end of image) and a PNG's last chunk (IEND with its CRC).
END_MARKERS = {"JPEG": b"\xff\xd9", "PNG": b"IEND\xaeB`\x82"}
TAIL = 64  # bytes read from a file's end to find its end marker (padding allowed)
ORIENTATION = 0x0112  # the EXIF tag of the orientation


class BadImageError(ValueError):
    """An image file that cannot be decoded; `path` is the file (as given: it opens it),
    `reason` what Pillow said. The message shows the path with `dmllab.paths.printable`."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path, self.reason = str(path), printable(reason)
        super().__init__(
            f"cannot decode image {printable(self.path)}: {self.reason} — replace or delete the "
            "file (`dmllab verify ROOT --layout LAYOUT` lists every bad file of a data set)"
        )

    def __reduce__(self) -> tuple[type[BadImageError], tuple[str, str]]:
        return type(self), (self.path, self.reason)  # rebuilt from its fields when pickled


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
    return _failures(read, paths, workers)


def check_files(paths: Sequence[str | Path], workers: int | None = None) -> list[BadImageError]:
    """The cheap check of every file, without decoding the good ones: one BadImageError per file
    that is missing, empty (0 bytes), has a header Pillow cannot read, or is a JPEG or PNG cut
    short (its end marker missing and a full decode fails), in `paths` order; [] when all pass.
    Uses `workers` threads (default: the CPU count)."""
    return _failures(_check_file, paths, workers)


def _check_file(path: str | Path) -> None:
    from PIL import Image

    _refuse_missing_or_empty(path)
    try:
        with open(path, "rb") as file:
            with Image.open(file) as image:
                marker = END_MARKERS.get(image.format or "")
            file.seek(max(0, file.seek(0, os.SEEK_END) - TAIL))
            ends = marker is None or file.read().rstrip(b"\x00\r\n ").endswith(marker)
    except Exception as error:  # whatever a broken header makes Pillow raise, name the file
        raise BadImageError(path, f"{type(error).__name__}: {error}") from error
    if not ends:  # cut short, or trailing data after the end marker: decoding decides
        read(path)


def _failures(
    check: Callable[[str | Path], object], paths: Sequence[str | Path], workers: int | None
) -> list[BadImageError]:
    from concurrent.futures import ThreadPoolExecutor

    def failure(path: str | Path) -> BadImageError | None:
        try:
            check(path)
        except BadImageError as error:
            return error
        return None

    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        return [error for error in pool.map(failure, paths) if error is not None]


def read_pixels(path: str | Path, size: int) -> Tensor:
    """The whole picture at `path`, upright, for the named transforms: uint8 [3, H, W] (8-bit
    sources) or float32 [3, H, W] in [0, 1] (16-bit grey and the other high-depth modes); those
    Pillow decodes come in channels-last memory (a view of its [H, W, 3] pixels).

    JPEGs whose shorter side is at least 4 x `size` are decoded at a reduced DCT scale that keeps
    the shorter side >= 2 x `size` (Pillow's draft); other RGB and grey JPEGs by torchvision's
    `decode_jpeg` (same pixels as Pillow, EXIF orientation applied); the rest by Pillow with the
    per-mode rules of `dmllab.data.pixels`. Raises BadImageError (a ValueError) naming `path` when
    the file is missing, truncated, not an image, or in a mode `dmllab.data.pixels` refuses.
    """
    from PIL import Image, ImageOps

    from dmllab.vision import require

    io = require("the named image transforms").io  # outside the try: not the file's fault
    _refuse_missing_or_empty(path)
    try:
        with Image.open(path) as image:
            width, height = image.size
            if image.format == "JPEG" and min(width, height) >= 4 * size:
                scale = 2 * size / min(width, height)
                image.draft(None, (math.ceil(width * scale), math.ceil(height * scale)))
            elif image.format == "JPEG" and image.mode in ("RGB", "L"):
                data = torch.frombuffer(bytearray(Path(path).read_bytes()), dtype=torch.uint8)
                return io.decode_jpeg(data, mode=io.ImageReadMode.RGB, apply_exif_orientation=True)
            image.load()
            if image.getexif().get(ORIENTATION, 1) != 1:
                image = ImageOps.exif_transpose(image)
            # an RGB image without a transparent colour is its own RGB: no copy made
            plain = image.mode == "RGB" and "transparency" not in image.info
            pixels = image if plain else as_pixels(image)
            if pixels.mode == "F":
                return torch.from_numpy(to_array(pixels)).permute(2, 0, 1)
            rgb = torch.frombuffer(bytearray(pixels.tobytes()), dtype=torch.uint8)
            return rgb.view(pixels.height, pixels.width, 3).permute(2, 0, 1)  # channels last
    except Exception as error:  # whatever a broken file makes Pillow raise, say which file it was
        raise BadImageError(path, f"{type(error).__name__}: {error}") from error


def read(path: str | Path) -> PIL.Image.Image:
    """The image at `path` decoded in full, turned upright by its EXIF orientation, as the "RGB"
    or "F" image `dmllab.data.pixels.as_pixels` makes. Any failure (missing, truncated, not an
    image, a refused mode) raises BadImageError naming `path`."""
    from PIL import Image, ImageOps

    _refuse_missing_or_empty(path)
    try:
        with Image.open(path) as image:
            return as_pixels(ImageOps.exif_transpose(image))
    except Exception as error:  # whatever a broken file makes Pillow raise, say which file it was
        raise BadImageError(path, f"{type(error).__name__}: {error}") from error


def _refuse_missing_or_empty(path: str | Path) -> None:
    if not Path(path).is_file():
        raise BadImageError(path, MISSING)
    if Path(path).stat().st_size == 0:
        raise BadImageError(path, EMPTY)


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
