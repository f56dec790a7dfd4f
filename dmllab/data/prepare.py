"""From a Config to the train / validation / test splits a run uses.

    load (or the given Dataset) -> split (class-disjoint or stratified) -> noise on the training
    labels -> validation split carved from the (noisy) training part

The validation split is carved *after* the noise is injected: in practice a validation set
drawn from the training data carries the same label noise, and early stopping must live with it.
The test split is always clean.
"""

from __future__ import annotations

from dataclasses import dataclass

from dmllab.config import Config
from dmllab.data.dataset import Dataset, resolve


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
            raise ValueError(f"this run has no {split!r} split (set Config.val_fraction > 0 for one)")
        return data


def prepare(config: Config, dataset: Dataset | str | None = None) -> Splits:
    """The splits for `config`; a given `dataset` (a Dataset, or a registered name loaded with
    `config.seed` and default options) wins over `config.dataset`."""
    from dmllab.data import load, noise, split, validation_split

    if dataset is None:
        options = {"seed": config.seed, **config.dataset_options}
        dataset = load(config.dataset, **options)
    dataset = resolve(dataset, seed=config.seed)
    train, test = split(dataset, how=config.split, test_fraction=config.test_fraction, seed=config.seed)
    if config.noise_rate > 0:
        train = noise.inject(train, rate=config.noise_rate, kind=config.noise_kind, seed=config.seed)
    val = None
    if config.val_fraction > 0:
        train, val = validation_split(train, fraction=config.val_fraction, how=config.split, seed=config.seed)
    return Splits(train=train, test=test, val=val)
