"""Class-disjoint and stratified splits, validation splits, and prepare() end to end."""

from __future__ import annotations

import pytest
import torch

from dmllab.build import prepare
from dmllab.config import Config
from dmllab.data import Dataset, split, validation_split


def _data(counts, *, offset=0, meta=None):
    """A toy dataset whose x[i] = i, so parts can be traced back to source rows."""
    y = torch.cat([torch.full((n,), c + offset) for c, n in enumerate(counts)])
    return Dataset(
        x=torch.arange(len(y), dtype=torch.float32)[:, None],
        y=y,
        sub=y * 10,
        name="toy",
        meta=dict(meta or {}),
    )


def _rows(part):
    return set(part.x[:, 0].long().tolist())


def test_class_split_takes_the_first_sorted_classes_for_training():
    ordered = _data([5] * 7, offset=100)
    data = ordered.subset(torch.randperm(35, generator=torch.Generator().manual_seed(0)))
    train, test = split(data, how="classes", test_fraction=0.4, seed=123)
    assert train.classes.tolist() == [100, 101, 102, 103] and test.classes.tolist() == [
        104,
        105,
        106,
    ]
    assert _rows(train) | _rows(test) == set(range(35)) and not _rows(train) & _rows(test)
    assert torch.equal(train.sub, train.y * 10)  # fields stay aligned
    again, _ = split(data, how="classes", test_fraction=0.4, seed=999)
    assert torch.equal(again.x, train.x)  # deterministic, seed unused


def test_class_split_uses_the_standard_training_classes():
    data = _data([3] * 6, meta={"train_classes": [1, 4, 5]})
    train, test = split(data, how="classes", test_fraction=0.9)
    assert train.classes.tolist() == [1, 4, 5] and test.classes.tolist() == [0, 2, 3]
    assert "train_classes" not in train.meta and "train_classes" in data.meta
    with pytest.raises(ValueError, match=r"standard split.*max_classes"):
        split(_data([3] * 6, meta={"train_classes": [0]}), how="classes")


@pytest.mark.parametrize("counts, fraction", [([4, 4, 4], 0.5), ([4] * 10, 0.95), ([4, 4], 0.5)])
def test_class_split_with_fewer_than_two_classes_per_side_is_refused(counts, fraction):
    with pytest.raises(ValueError, match=r"at least 2 classes.*how='stratified'"):
        split(_data(counts), how="classes", test_fraction=fraction)


def test_stratified_split_keeps_every_class_on_both_sides():
    data = _data([10, 20, 7, 1, 2])
    train, test = split(data, how="stratified", test_fraction=0.3, seed=4)
    assert _rows(train) | _rows(test) == set(range(len(data))) and not _rows(train) & _rows(test)
    per_class_test = torch.bincount(test.y, minlength=5).tolist()
    assert per_class_test == [3, 6, 2, 0, 1]  # round(0.3 n), single sample -> train
    assert torch.equal(train.sub, train.y * 10)
    again, _ = split(data, how="stratified", test_fraction=0.3, seed=4)
    other, _ = split(data, how="stratified", test_fraction=0.3, seed=5)
    assert torch.equal(again.x, train.x) and not torch.equal(other.x, train.x)


def test_stratified_split_of_rows_sorted_by_class_takes_random_rows():
    _, test = split(_data([50] * 10), how="stratified", test_fraction=0.5, seed=0)
    assert torch.bincount(test.y).tolist() == [25] * 10
    first_class = sorted(_rows(test.subset(test.y == 0)))
    assert first_class != list(range(25)) and first_class != list(range(25, 50))


def test_validation_by_classes_is_a_seeded_class_disjoint_subset_of_train():
    train = _data([4] * 10)
    kept, val = validation_split(train, 0.3, how="classes", seed=1)
    assert val.num_classes == 3 and kept.num_classes == 7
    assert not set(val.classes.tolist()) & set(kept.classes.tolist())
    assert _rows(kept) | _rows(val) == _rows(train) and not _rows(kept) & _rows(val)
    picks = {tuple(validation_split(train, 0.3, seed=s)[1].classes.tolist()) for s in range(8)}
    assert len(picks) > 1  # a random subset, not the last classes
    same, _ = validation_split(train, 0.3, seed=1)
    assert torch.equal(same.x, kept.x)


def test_validation_by_classes_holds_out_at_least_two_classes():
    kept, val = validation_split(_data([4] * 6), 0.1, seed=0)
    assert val.num_classes == 2 and kept.num_classes == 4
    with pytest.raises(ValueError, match=r"validation split.*at least 2 classes"):
        validation_split(_data([4] * 3), 0.1, seed=0)


def test_validation_stratified_is_per_class():
    train = _data([10, 10, 10])
    kept, val = validation_split(train, 0.2, how="stratified", seed=0)
    assert torch.bincount(val.y).tolist() == [2, 2, 2] and not _rows(kept) & _rows(val)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(how="random"), "classes, stratified"),
        (dict(test_fraction=0.0), r"\(0, 1\)"),
        (dict(test_fraction=1.0), r"\(0, 1\)"),
    ],
)
def test_bad_split_arguments_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        split(_data([3] * 4), **kwargs)


def test_prepare_digits_class_split_with_validation():
    splits = prepare(Config(dataset="digits", val_fraction=0.2, classes_per_batch=3, seed=0))
    train, val, test = splits.train, splits.val, splits.test
    assert test.classes.tolist() == [5, 6, 7, 8, 9]
    assert val.num_classes == 2 and train.num_classes == 3
    assert len(train) + len(val) + len(test) == 1797 and train.clean_y is None


def test_prepare_digits_parity_stratified_with_noise():
    splits = prepare(
        Config(
            dataset="digits-parity",
            split="stratified",
            test_fraction=0.3,
            noise_rate=0.1,
            val_fraction=0.1,
            seed=2,
        )
    )
    train, val, test = splits.train, splits.val, splits.test
    assert train.classes.tolist() == test.classes.tolist() == val.classes.tolist() == [0, 1]
    assert test.clean_y is None and train.flipped.any() and val.clean_y is not None
    assert abs(float(train.flipped.float().mean()) - 0.1) < 0.04
    assert torch.equal(test.y, test.sub % 2) and torch.equal(train.clean_y, train.sub % 2)


def test_prepare_loggrid_stratified_and_mixture_with_noise():
    grid = prepare(Config(dataset="loggrid", split="stratified", seed=1))
    assert grid.val is None and grid.train.num_classes == grid.test.num_classes == 16
    config = Config(
        dataset="mixture",
        dataset_options={"num_classes": 8, "per_mode": 20},
        noise_rate=0.3,
        noise_kind="pairflip",
        val_fraction=0.25,
        classes_per_batch=2,  # 2 of the 8 classes are left to train on
        seed=3,
    )
    mix = prepare(config)
    assert mix.test.classes.tolist() == [4, 5, 6, 7]
    assert mix.val.num_classes == 2 and mix.train.num_classes == 2
    flipped = torch.cat([mix.train.flipped, mix.val.flipped]).float().mean()
    assert abs(float(flipped) - 0.3) < 0.06
    again = prepare(config)
    assert torch.equal(again.train.x, mix.train.x) and torch.equal(again.train.y, mix.train.y)
