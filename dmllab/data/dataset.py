"""`Dataset`: the one record every loader returns and every split, sampler and metric reads.

It is the data boundary of the lab: inputs and labels are converted here, once, by the rules of
`dmllab.arrays` (any array-like; float precision never lowered; names mapped to class ids).

>>> import torch
>>> data = Dataset(x=torch.zeros(4, 2), y=torch.tensor([0, 0, 1, 1]), name="toy")
>>> len(data), data.num_classes, data.subset(torch.tensor([2, 3])).y.tolist()
(4, 2, [1, 1])
>>> pets = Dataset(x=[[0.0], [1.0], [2.0]], y=["dog", "cat", "dog"])
>>> pets.y.tolist(), pets.class_names, pets.label_names()
([1, 0, 1], ('cat', 'dog'), ['dog', 'cat', 'dog'])
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, TypeAlias

import torch
from torch import Tensor

from dmllab.arrays import as_class_ids, as_floats, encode_labels, is_array_like
from dmllab.geometry.base import all_finite

# Fine label -> coarse label, for `Dataset.merged`. The fine labels are the dataset's own (ints,
# or its names), so a mapping may take any of them.
LabelMapping: TypeAlias = Mapping[Any, Hashable] | Callable[[Any], Hashable]


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

    x:           [N, ...] inputs: a tensor, numpy array, (nested) list or pandas DataFrame of real
                 numbers (stored as a tensor; float64 stays float64, float16 / integer / bool
                 become float32, see `dmllab.arrays`), or a `LazyInputs` whose `x[idx]` returns
                 a float tensor.
    y:           [N] class labels, any hashable values in any 1-D container (the labels training
                 sees; noisy if noise was injected). Stored as long class ids: integer labels as
                 they are, other labels (strings, ...) as the positions 0..C-1 of their sorted
                 distinct values, whose names go to `class_names`.
    sub:         [N] integer fine labels (sub-cluster / mode / original class), or None.
    clean_y:     [N] labels before noise was injected (same label space as y), or None.
    image_shape: (C, H, W) when each row of x is an image (for thumbnails), else None.
    name:        a short name for tables and plots.
    meta:        anything else (folder class names, the source path, generator options, ...).
    class_names: the original name of each class id 0..C-1 when the labels were not integers
                 (set by the constructor; pass it yourself only with ids 0..C-1 in y), else None.

    Raises ValueError for mismatched lengths, empty data, non-numeric x, NaN or inf in x (naming
    how many rows and the first of them; lazy inputs are decoded later and checked there), float
    labels and rows without a label (missing, or negative such as -1).
    """

    x: Tensor | LazyInputs
    y: Tensor
    sub: Tensor | None = None
    clean_y: Tensor | None = None
    image_shape: tuple[int, ...] | None = None
    name: str = "dataset"
    meta: dict[str, Any] = field(default_factory=dict)
    class_names: tuple[Hashable, ...] | None = None

    def __post_init__(self) -> None:
        where = f"Dataset {self.name!r}"
        if is_array_like(self.x):
            self.x = as_floats(self.x, f"{where}: x")
            _refuse_nonfinite(self.x, where)
        self._encode_labels(where)
        n = len(self.y)
        if n == 0:
            raise ValueError(f"{where} is empty")
        if len(self.x) != n:
            raise ValueError(f"{where}: x has {len(self.x)} rows but y has {n} labels")
        for name in ("sub", "clean_y"):
            value = getattr(self, name)
            if value is not None:
                value = as_class_ids(value, f"{where}: {name}")
                if len(value) != n:
                    raise ValueError(f"{where}: {name} has {len(value)} labels but y has {n}")
                setattr(self, name, value)

    def _encode_labels(self, where: str) -> None:
        """y and clean_y as class ids in one label space; names kept in class_names."""
        if self.class_names is None:
            columns = [self.y] if self.clean_y is None else [self.y, self.clean_y]
            encoded, self.class_names = encode_labels(*columns, name=f"{where}: y")
            self.y = encoded[0]
            if self.clean_y is not None:
                self.clean_y = encoded[1]
            return
        self.class_names = tuple(self.class_names)
        for name in ("y", "clean_y"):
            ids = getattr(self, name)
            if ids is None:
                continue
            ids = as_class_ids(ids, f"{where}: {name}")
            if len(ids) and (int(ids.min()) < 0 or int(ids.max()) >= len(self.class_names)):
                raise ValueError(
                    f"{where}: with class_names, {name} must hold class ids "
                    f"0..{len(self.class_names) - 1}; got ids in [{int(ids.min())}, "
                    f"{int(ids.max())}]. Pass the names themselves as labels instead (they are "
                    "mapped for you)"
                )
            setattr(self, name, ids)

    def __len__(self) -> int:
        return len(self.y)

    @property
    def classes(self) -> Tensor:
        """The sorted distinct class ids in y (`label_names(classes)` gives their labels)."""
        return torch.unique(self.y)

    @property
    def num_classes(self) -> int:
        """The number of distinct classes in y."""
        return len(self.classes)

    def label_names(self, labels: Tensor | Sequence[int] | None = None) -> list[Hashable]:
        """The original label of each class id in `labels` (default: y), for tables and plots:
        `class_names[id]` when the labels were names, else the id itself."""
        ids = self.y if labels is None else as_class_ids(labels, "labels")
        if self.class_names is None:
            return ids.tolist()
        return [self.class_names[i] for i in ids.tolist()]

    @property
    def flipped(self) -> Tensor | None:
        """Boolean mask of samples whose label was changed by injected noise (None if none was)."""
        return None if self.clean_y is None else self.clean_y != self.y

    @property
    def dim(self) -> int:
        """Number of input features per sample (the product of the non-batch dimensions)."""
        first = self.x[torch.tensor([0])]
        return int(first[0].numel())

    def subset(self, index: Tensor | Sequence[int]) -> Dataset:
        """The rows `index` (a long index or a boolean mask), every field kept aligned."""
        index = torch.as_tensor(index)
        if index.dtype == torch.bool:
            index = index.nonzero().flatten()
        if index.numel() == 0:
            raise ValueError(f"Dataset {self.name!r}: subset would be empty")
        # lazy inputs may offer subset(index), a view that decodes nothing
        lazy_subset = None if isinstance(self.x, Tensor) else getattr(self.x, "subset", None)
        return replace(
            self,
            x=lazy_subset(index) if lazy_subset is not None else self.x[index],
            y=self.y[index],
            sub=None if self.sub is None else self.sub[index],
            clean_y=None if self.clean_y is None else self.clean_y[index],
            meta=dict(self.meta),
        )

    def with_labels(
        self, y: Tensor, *, clean_y: Tensor | None = None, name: str | None = None
    ) -> Dataset:
        """The same inputs with other labels (noise keeps the clean labels in `clean_y`)."""
        return replace(self, y=y, clean_y=clean_y, name=name or self.name, meta=dict(self.meta))

    def __repr__(self) -> str:
        shape = tuple(self.x.shape) if isinstance(self.x, Tensor) else (len(self.x), "lazy")
        extras = [f"sub={self.sub is not None}"]
        flipped = self.flipped
        if flipped is not None:
            extras.append(f"flipped={int(flipped.sum())}")
        return f"Dataset({self.name!r}, x={shape}, classes={self.num_classes}, {', '.join(extras)})"

    def merged(
        self,
        mapping: LabelMapping,
        name: str | None = None,
    ) -> Dataset:
        """A copy with labels mapped to coarse classes and `sub` = the original class ids; see
        `dmllab.data.superclass` (which also takes a registered name) for the rules and errors."""
        labels = self.y if self.clean_y is None else torch.cat([self.y, self.clean_y])
        fine_ids = torch.unique(labels)
        fine = self.label_names(fine_ids)
        if callable(mapping):
            table = {label: mapping(label) for label in fine}
        elif isinstance(mapping, Mapping):
            missing = [label for label in fine if label not in mapping]
            if missing:
                raise ValueError(
                    f"superclass mapping misses label(s) {missing} of dataset {self.name!r}; "
                    f"map every label in {fine}"
                )
            table = {label: mapping[label] for label in fine}
        else:
            raise TypeError(
                f"superclass mapping must be a dict or a function; got {type(mapping).__name__}"
            )
        is_int = {
            label: isinstance(coarse, int) and not isinstance(coarse, bool)
            for label, coarse in table.items()
        }
        if len(set(is_int.values())) > 1:
            odd = {label: table[label] for label, flag in is_int.items() if not flag}
            raise TypeError(
                f"superclass mapping must give int labels or names (e.g. str), not both; got {odd}"
            )
        meta = {key: value for key, value in self.meta.items() if key != "train_classes"}
        meta["coarse_of"] = table
        if self.class_names is not None:
            meta["fine_class_names"] = self.class_names
        coarse_of_id = dict(zip(fine_ids.tolist(), (table[label] for label in fine), strict=True))
        return replace(
            self,
            # coarse labels as given (ints or names): __post_init__ encodes them to ids
            y=[coarse_of_id[i] for i in self.y.tolist()],  # type: ignore[arg-type]
            sub=self.y.clone(),
            clean_y=None
            if self.clean_y is None
            else [coarse_of_id[i] for i in self.clean_y.tolist()],  # type: ignore[arg-type]
            name=name or f"{self.name}-superclass",
            meta=meta,
            class_names=None,
        )


def _refuse_nonfinite(x: Tensor, where: str) -> None:
    """ValueError naming the rows of x that hold NaN or inf. One reduction over x when it is
    finite (`all_finite`); the rows are found only when it is not."""
    if x.numel() == 0 or all_finite(x):
        return
    bad = (~torch.isfinite(x.detach().reshape(len(x), -1))).any(dim=1).nonzero().flatten()
    rows = f"{bad[:5].tolist()}{' ...' if len(bad) > 5 else ''}"
    raise ValueError(
        f"{where}: x holds NaN or inf in {len(bad)} row(s) {rows}; a model cannot learn from them "
        "(training would diverge) and metrics cannot rank them: drop those rows (x[keep], "
        "y[keep] with keep the rows whose values are all finite) or fill the missing values first"
    )
