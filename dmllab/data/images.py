"""`LazyImages`: image files decoded on demand, so large image datasets never sit in memory.

`images[index]` decodes the listed files with Pillow: RGB, the shorter side resized to `size`
(bilinear), a centred size x size crop, values in [0, 1], as a float tensor [n, 3, size, size].
`images.subset(index)` is a lazy view (what `Dataset.subset` and the splits use).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import Tensor


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

    def subset(self, index: Tensor | Sequence[int]) -> "LazyImages":
        """The images `index` (long index or boolean mask) as another lazy list; nothing is decoded."""
        return LazyImages([self.paths[row] for row in _rows(index, len(self.paths))], self.size)

    def __repr__(self) -> str:
        return f"LazyImages({len(self.paths)} files, size={self.size})"


def decode(path: str | Path, size: int) -> Tensor:
    """One image as a float tensor [3, size, size] in [0, 1]: shorter side -> size, centre crop."""
    from PIL import Image

    with Image.open(path) as image:
        image = image.convert("RGB")
        width, height = image.size
        scale = size / min(width, height)
        resized = (max(size, round(width * scale)), max(size, round(height * scale)))
        image = image.resize(resized, Image.BILINEAR)
        left, top = (resized[0] - size) // 2, (resized[1] - size) // 2
        image = image.crop((left, top, left + size, top + size))
        pixels = np.asarray(image, dtype=np.uint8)
    return torch.from_numpy(pixels.copy()).permute(2, 0, 1).float().div_(255.0)


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
