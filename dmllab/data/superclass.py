"""Merged-class views: train on coarse labels while `sub` keeps the original (fine) label.

>>> import torch
>>> data = Dataset(x=torch.zeros(4, 1), y=torch.tensor([0, 1, 2, 3]))
>>> coarse = superclass(data, parity)
>>> coarse.y.tolist(), coarse.sub.tolist()
([0, 1, 0, 1], [0, 1, 2, 3])
"""

from __future__ import annotations

from dmllab.data.dataset import Dataset, LabelMapping
from dmllab.data.digits import low_high, parity
from dmllab.data.registry import resolve

__all__ = ["superclass", "parity", "low_high"]


def superclass(
    dataset: Dataset | str,
    mapping: LabelMapping,
    name: str | None = None,
) -> Dataset:
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
    return resolve(dataset).merged(mapping, name)
