"""Merged-class views: train on coarse labels while `sub` keeps the original (fine) label.

>>> import torch
>>> data = Dataset(x=torch.zeros(4, 1), y=torch.tensor([0, 1, 2, 3]))
>>> coarse = superclass(data, parity)
>>> coarse.y.tolist(), coarse.sub.tolist()
([0, 1, 0, 1], [0, 1, 2, 3])
"""

from __future__ import annotations

from dataclasses import replace
from typing import Callable, Hashable, Mapping

import torch

from dmllab.data.dataset import Dataset, resolve


def parity(label: int) -> int:
    """Even labels -> 0, odd labels -> 1 (the `digits-parity` preset)."""
    return label % 2


def low_high(label: int) -> int:
    """Labels < 5 -> 0, labels >= 5 -> 1 (the `digits-low-high` preset)."""
    return int(label >= 5)


def superclass(dataset: Dataset | str, mapping: Mapping[Hashable, Hashable] | Callable[[Hashable], Hashable],
               name: str | None = None) -> Dataset:
    """A copy of `dataset` (a Dataset or a registered name) with labels mapped to coarse classes;
    `sub` = the original class ids.

    `mapping` is a dict {fine label: coarse label} covering every label present (in `y` and, when
    noise was injected, in `clean_y`) or a function label -> coarse label. Fine labels are the
    dataset's original labels (its names, `label_names()`, when they were not integers); coarse
    labels are integers or names, which the new Dataset maps to ids as usual. Noisy labels and
    clean labels are mapped alike. Dataset-specific split metadata (`meta["train_classes"]`)
    refers to the fine labels and is dropped; `meta["coarse_of"]` records the mapping used and
    `meta["fine_class_names"]` the fine names, if any.
    """
    dataset = resolve(dataset)
    labels = dataset.y if dataset.clean_y is None else torch.cat([dataset.y, dataset.clean_y])
    fine_ids = torch.unique(labels)
    fine = dataset.label_names(fine_ids)
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
    is_int = {label: isinstance(coarse, int) and not isinstance(coarse, bool) for label, coarse in table.items()}
    if len(set(is_int.values())) > 1:
        odd = {label: table[label] for label, flag in is_int.items() if not flag}
        raise TypeError(f"superclass mapping must give int labels or names (e.g. str), not both; got {odd}")
    meta = {key: value for key, value in dataset.meta.items() if key != "train_classes"}
    meta["coarse_of"] = table
    if dataset.class_names is not None:
        meta["fine_class_names"] = dataset.class_names
    coarse_of_id = dict(zip(fine_ids.tolist(), (table[label] for label in fine)))
    return replace(
        dataset,
        y=[coarse_of_id[i] for i in dataset.y.tolist()],
        sub=dataset.y.clone(),
        clean_y=None if dataset.clean_y is None else [coarse_of_id[i] for i in dataset.clean_y.tolist()],
        name=name or f"{dataset.name}-superclass",
        meta=meta,
        class_names=None,
    )
