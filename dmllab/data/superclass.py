"""Merged-class views: train on coarse labels while `sub` keeps the original (fine) label.

>>> import torch
>>> data = Dataset(x=torch.zeros(4, 1), y=torch.tensor([0, 1, 2, 3]))
>>> coarse = superclass(data, parity)
>>> coarse.y.tolist(), coarse.sub.tolist()
([0, 1, 0, 1], [0, 1, 2, 3])
"""

from __future__ import annotations

from dataclasses import replace
from typing import Callable, Mapping

import torch
from torch import Tensor

from dmllab.data.dataset import Dataset


def parity(label: int) -> int:
    """Even labels -> 0, odd labels -> 1 (the `digits-parity` preset)."""
    return label % 2


def low_high(label: int) -> int:
    """Labels < 5 -> 0, labels >= 5 -> 1 (the `digits-low-high` preset)."""
    return int(label >= 5)


def superclass(dataset: Dataset, mapping: Mapping[int, int] | Callable[[int], int],
               name: str | None = None) -> Dataset:
    """A copy of `dataset` with labels mapped to coarse classes; `sub` = the original labels.

    `mapping` is a dict {fine label: coarse label} covering every label present (in `y` and, when
    noise was injected, in `clean_y`) or a function label -> coarse label. Noisy labels and clean
    labels are mapped alike. Dataset-specific split metadata (`meta["train_classes"]`) refers to
    the fine labels and is dropped; `meta["coarse_of"]` records the mapping used.
    """
    labels = dataset.y if dataset.clean_y is None else torch.cat([dataset.y, dataset.clean_y])
    fine = torch.unique(labels).tolist()
    if callable(mapping):
        table = {label: mapping(label) for label in fine}
    elif isinstance(mapping, Mapping):
        missing = [label for label in fine if label not in mapping]
        if missing:
            raise ValueError(
                f"superclass mapping misses label(s) {missing} of dataset {dataset.name!r}; "
                f"map every label in {fine}")
        table = {label: mapping[label] for label in fine}
    else:
        raise TypeError(f"superclass mapping must be a dict or a function; got {type(mapping).__name__}")
    bad = {label: coarse for label, coarse in table.items()
           if isinstance(coarse, bool) or not isinstance(coarse, int)}
    if bad:
        raise TypeError(f"superclass mapping must give int labels; got {bad}")
    meta = {key: value for key, value in dataset.meta.items() if key != "train_classes"}
    meta["coarse_of"] = table
    return replace(
        dataset,
        y=_apply(table, dataset.y),
        sub=dataset.y.clone(),
        clean_y=None if dataset.clean_y is None else _apply(table, dataset.clean_y),
        name=name or f"{dataset.name}-superclass",
        meta=meta,
    )


def _apply(table: dict[int, int], labels: Tensor) -> Tensor:
    keys = torch.tensor(sorted(table))
    values = torch.tensor([table[key] for key in keys.tolist()])
    return values[torch.searchsorted(keys, labels)]
