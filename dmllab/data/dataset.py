"""`Dataset`: the one record every loader returns and every split, sampler and metric reads.

>>> import torch
>>> data = Dataset(x=torch.zeros(4, 2), y=torch.tensor([0, 0, 1, 1]), name="toy")
>>> len(data), data.num_classes, data.subset(torch.tensor([2, 3])).y.tolist()
(4, 2, [1, 1])
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Protocol, Sequence

import torch
from torch import Tensor


class LazyInputs(Protocol):
    """Inputs too large to hold as one tensor (image folders): `x[idx]` decodes a batch.

    An optional `subset(idx)` returning another lazy object lets `Dataset.subset` (and so the
    splits) stay lazy.
    """

    def __len__(self) -> int: ...

    def __getitem__(self, index: Tensor) -> Tensor: ...


@dataclass
class Dataset:
    """Inputs with class labels and, where known, the hidden structure behind them.

    x:           [N, ...] float tensor, or a `LazyInputs` whose `x[idx]` returns a float tensor.
    y:           [N] long class labels (the labels training sees; noisy if noise was injected).
    sub:         [N] long fine labels (sub-cluster / mode / original class), or None.
    clean_y:     [N] long labels before noise was injected, or None when no noise was injected.
    image_shape: (C, H, W) when each row of x is an image (for thumbnails), else None.
    name:        a short name for tables and plots.
    meta:        anything else (class names, the source path, generator options, ...).
    """

    x: Tensor | LazyInputs
    y: Tensor
    sub: Tensor | None = None
    clean_y: Tensor | None = None
    image_shape: tuple[int, ...] | None = None
    name: str = "dataset"
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.y = _as_labels(self.y, "y")
        n = len(self.y)
        if n == 0:
            raise ValueError(f"Dataset {self.name!r} is empty")
        if len(self.x) != n:
            raise ValueError(f"Dataset {self.name!r}: x has {len(self.x)} rows but y has {n} labels")
        if isinstance(self.x, Tensor) and not torch.is_floating_point(self.x):
            raise ValueError(f"Dataset {self.name!r}: x must be a float tensor; got {self.x.dtype}")
        for name in ("sub", "clean_y"):
            value = getattr(self, name)
            if value is not None:
                value = _as_labels(value, name)
                if len(value) != n:
                    raise ValueError(
                        f"Dataset {self.name!r}: {name} has {len(value)} labels but y has {n}")
                setattr(self, name, value)

    def __len__(self) -> int:
        return len(self.y)

    @property
    def classes(self) -> Tensor:
        """The sorted distinct class labels."""
        return torch.unique(self.y)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def flipped(self) -> Tensor | None:
        """Boolean mask of samples whose label was changed by injected noise (None if none was)."""
        return None if self.clean_y is None else self.clean_y != self.y

    @property
    def dim(self) -> int:
        """Number of input features per sample (the product of the non-batch dimensions)."""
        first = self.x[torch.tensor([0])]
        return int(first[0].numel())

    def subset(self, index: Tensor | Sequence[int]) -> "Dataset":
        """The rows `index` (a long index or a boolean mask), every field kept aligned."""
        index = torch.as_tensor(index)
        if index.dtype == torch.bool:
            index = index.nonzero().flatten()
        if index.numel() == 0:
            raise ValueError(f"Dataset {self.name!r}: subset would be empty")
        # lazy inputs may offer subset(index), a view that decodes nothing
        lazy_view = not isinstance(self.x, Tensor) and hasattr(self.x, "subset")
        return replace(
            self,
            x=self.x.subset(index) if lazy_view else self.x[index],
            y=self.y[index],
            sub=None if self.sub is None else self.sub[index],
            clean_y=None if self.clean_y is None else self.clean_y[index],
            meta=dict(self.meta),
        )

    def with_labels(self, y: Tensor, *, clean_y: Tensor | None = None, name: str | None = None) -> "Dataset":
        """The same inputs with other labels (noise keeps the clean labels in `clean_y`)."""
        return replace(self, y=y, clean_y=clean_y, name=name or self.name, meta=dict(self.meta))

    def __repr__(self) -> str:
        shape = tuple(self.x.shape) if isinstance(self.x, Tensor) else (len(self.x), "lazy")
        extras = [f"sub={self.sub is not None}"]
        if self.clean_y is not None:
            extras.append(f"flipped={int(self.flipped.sum())}")
        return (f"Dataset({self.name!r}, x={shape}, classes={self.num_classes}, "
                f"{', '.join(extras)})")


def _as_labels(values: Tensor | Sequence[int], name: str) -> Tensor:
    labels = torch.as_tensor(values)
    if labels.dim() != 1:
        raise ValueError(f"Dataset.{name} must be 1-D; got shape {tuple(labels.shape)}")
    if torch.is_floating_point(labels) or labels.dtype == torch.bool:
        raise ValueError(f"Dataset.{name} must hold integer labels; got {labels.dtype}")
    return labels.long()
