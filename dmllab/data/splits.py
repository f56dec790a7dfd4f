"""Train / test and train / validation splits.

- how="classes": the zero-shot protocol of deep metric learning: train and test share no class.
  `split` takes the first classes in sorted order for training (deterministic); datasets with a
  standard split (CUB-200-2011, Cars196, SOP) record its training classes in
  `meta["train_classes"]`, which wins over `test_fraction`. `validation_split` holds out a
  seeded random subset of the training classes.
- how="stratified": the same classes on both sides, the fraction taken per class (seeded); a
  class with a single sample stays on the training side.

>>> import torch
>>> data = Dataset(x=torch.zeros(8, 1), y=torch.tensor([0, 0, 1, 1, 2, 2, 3, 3]))
>>> train, test = split(data, how="classes")
>>> train.classes.tolist(), test.classes.tolist()
([0, 1], [2, 3])
>>> train, test = split(data, how="stratified", seed=0)
>>> train.classes.tolist() == test.classes.tolist() == [0, 1, 2, 3]
True
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from dmllab.data.dataset import Dataset
from dmllab.data.registry import resolve

HOWS = ("classes", "stratified")


def split(
    dataset: Dataset | str, how: str = "classes", test_fraction: float = 0.5, seed: int = 0
) -> tuple[Dataset, Dataset]:
    """(train, test) parts of `dataset` (a Dataset or a registered name, loaded with `seed`); see
    the module docstring for the two protocols.

    how="classes" is deterministic (`seed` unused): the first C - round(test_fraction * C) sorted
    classes train, the rest test, unless `meta["train_classes"]` names the standard training
    classes. Both sides need at least 2 classes (use how="stratified" for datasets with few
    classes).
    """
    _check(how, test_fraction, "test_fraction")
    dataset = resolve(dataset, seed=seed)
    if how == "stratified":
        train, test = _stratified(dataset, test_fraction, seed, "test")
    else:
        classes = dataset.classes
        standard = dataset.meta.get("train_classes")
        if standard is not None:
            is_train = torch.isin(classes, torch.as_tensor(list(standard), dtype=torch.long))
            fix = (
                "The dataset's standard split applies here: keep more classes (max_classes), "
                "or use how='stratified'"
            )
        else:
            is_train = torch.arange(len(classes)) < len(classes) - _round(
                test_fraction * len(classes)
            )
            fix = "Change test_fraction, or use how='stratified'"
        train, test = _by_classes(dataset, classes[is_train], classes[~is_train], "test", fix)
    for part in (train, test):
        part.meta.pop("train_classes", None)
    return train, test


def validation_split(
    train: Dataset | str, fraction: float, how: str = "classes", seed: int = 0
) -> tuple[Dataset, Dataset]:
    """(train, val) carved from the training part (a Dataset or a registered name), never from the
    test part.

    how="classes": a seeded random subset of max(2, round(fraction * C)) training classes is held
    out (at least 2, so that retrieval on the validation part means something), class-disjoint
    from the rest. how="stratified": `fraction` of every class, seeded.
    """
    _check(how, fraction, "fraction")
    train = resolve(train, seed=seed)
    if how == "stratified":
        return _stratified(train, fraction, seed, "validation")
    classes = train.classes
    held = max(2, _round(fraction * len(classes)))
    order = torch.randperm(len(classes), generator=torch.Generator().manual_seed(int(seed)))
    is_val = torch.zeros(len(classes), dtype=torch.bool)
    is_val[order[:held]] = True
    return _by_classes(
        train,
        classes[~is_val],
        classes[is_val],
        "validation",
        "Lower the validation fraction, train on more classes, or use how='stratified'",
    )


def _by_classes(
    dataset: Dataset, kept: Tensor, held: Tensor, part: str, fix: str
) -> tuple[Dataset, Dataset]:
    if len(kept) < 2 or len(held) < 2:
        raise ValueError(
            f"a class-disjoint {part} split of {dataset.name!r} ({dataset.num_classes} classes) "
            f"would leave {len(kept)} training and {len(held)} {part} classes; each side needs at "
            f"least 2 classes. {fix} (the same classes on both sides)."
        )
    is_held = torch.isin(dataset.y, held)
    return dataset.subset(~is_held), dataset.subset(is_held)


def _stratified(dataset: Dataset, fraction: float, seed: int, part: str) -> tuple[Dataset, Dataset]:
    """Per class: round(fraction * n_c) samples held out, clamped to 1 .. n_c - 1 (0 if n_c = 1)."""
    gen = torch.Generator().manual_seed(int(seed))
    shuffled = torch.randperm(len(dataset), generator=gen)
    labels = dataset.y[shuffled]
    order = torch.sort(labels, stable=True).indices  # grouped by class, random within
    _, counts = torch.unique_consecutive(labels[order], return_counts=True)
    starts = counts.cumsum(0) - counts
    rank = torch.arange(len(dataset)) - starts.repeat_interleave(counts)
    wanted = torch.floor(fraction * counts + 0.5).long()
    held_per_class = torch.minimum(wanted.clamp(min=1), counts - 1)
    is_held = rank < held_per_class.repeat_interleave(counts)
    index = shuffled[order]
    if not bool(is_held.any()):
        raise ValueError(
            f"a stratified {part} split of {dataset.name!r} holds out nothing: every class "
            "has a single sample"
        )
    return (
        dataset.subset(index[~is_held].sort().values),
        dataset.subset(index[is_held].sort().values),
    )


def _check(how: str, fraction: float, name: str) -> None:
    if how not in HOWS:
        raise ValueError(f"split how={how!r} is not known; choose one of: {', '.join(HOWS)}")
    if (
        isinstance(fraction, bool)
        or not isinstance(fraction, (int, float))
        or not 0.0 < fraction < 1.0
    ):
        raise ValueError(f"{name} must be a number in (0, 1); got {fraction!r}")


def _round(value: float) -> int:
    """Round half up (Python's round() rounds half to even)."""
    return math.floor(value + 0.5)


@dataclass
class Splits:
    """The data a run was trained and is evaluated on. `val` is carved from the training part."""

    train: Dataset
    test: Dataset
    val: Dataset | None = None

    def get(self, split: str) -> Dataset:
        if split not in ("train", "val", "test"):
            raise ValueError(f"split must be 'train', 'val' or 'test'; got {split!r}")
        data = getattr(self, split)
        if data is None:
            raise ValueError(
                f"this run has no {split!r} split (set Config.val_fraction > 0 for one)"
            )
        return data
