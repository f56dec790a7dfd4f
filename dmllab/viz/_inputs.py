"""Turning what a figure is given (tensors, arrays, runs, datasets) into checked numpy arrays.

Every figure validates its data here, so the error messages read the same everywhere.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from dmllab.arrays import as_floats, refuse_unlabelled
from dmllab.data.dataset import Dataset
from dmllab.data.registry import resolve as resolve_dataset

COLOR_BY = ("class", "sub", "flipped")


def as_points(values: Any, where: str, *, min_dim: int = 1) -> np.ndarray:
    """A float64 [n, d] numpy array from any array-like (converted by the lab's one rule,
    `dmllab.arrays.as_floats`); clear errors for non-numeric / empty / 1-D / NaN input."""
    array = as_floats(values, f"{where}: embeddings").detach().cpu().double().numpy()
    if array.ndim != 2:
        raise ValueError(
            f"{where}: expected embeddings of shape [n, d]; got shape {array.shape}. "
            "Reshape a single vector with x.reshape(1, -1), "
            "a 1-D coordinate list with x.reshape(-1, 1)"
        )
    if array.shape[0] == 0:
        raise ValueError(f"{where}: no points to draw (got an empty [0, {array.shape[1]}] array)")
    if array.shape[1] < min_dim:
        raise ValueError(
            f"{where}: needs at least {min_dim}-D points; got shape {array.shape}. "
            "A 2-D map cannot be drawn from 1-D embeddings"
        )
    if not np.isfinite(array).all():
        raise ValueError(f"{where}: embeddings contain NaN or inf (did training diverge?)")
    return array


def as_labels(
    values: Any, n: int, where: str, name: str = "labels", *, mask: bool = False
) -> np.ndarray:
    """A 1-D numpy label array of length n (or a mask, `mask=True`). Labels follow the lab's one
    rule for rows without a label (`dmllab.arrays.refuse_unlabelled`): a missing value or a
    negative integer is refused, never drawn as one more class."""
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    array = np.asarray(values)
    if array.ndim == 1 and not mask:
        refuse_unlabelled(array, f"{where}: {name}")
    if array.ndim != 1:
        raise ValueError(f"{where}: {name} must be 1-D; got shape {array.shape}")
    if len(array) != n:
        raise ValueError(
            f"{where}: {name} has {len(array)} entries but there are {n} points; "
            "pass one label per embedding row"
        )
    return array


def as_dataset(dataset: Any, seed: int = 0) -> Dataset | None:
    """None, or the Dataset a figure was given (an object or a registered name)."""
    return None if dataset is None else resolve_dataset(dataset, seed=seed)


def is_run(obj: Any) -> bool:
    from dmllab.runs import Run

    return isinstance(obj, Run)


def run_points(run: Any, split: str, where: str) -> tuple[np.ndarray, Dataset]:
    """Embeddings of one split of a run, with the split itself (for labels and thumbnails)."""
    if run.data is None:
        raise ValueError(f"{where}: this run carries no data; pass embeddings and labels instead")
    dataset = run.data.get(split)
    return as_points(run.embed(dataset), where), dataset


def coloring(
    color_by: str,
    n: int,
    where: str,
    labels: Any = None,
    dataset: Dataset | None = None,
    sub: Any = None,
    flipped: Any = None,
) -> tuple[np.ndarray, str]:
    """The values points are coloured by and the legend title.

    color_by="class": `labels` (or dataset.y); "sub": `sub` (or dataset.sub);
    "flipped": `flipped` (or dataset.flipped), drawn as "clean" / "flipped".
    """
    if color_by not in COLOR_BY:
        raise ValueError(
            f"{where}: color_by={color_by!r} is not known; choose one of {', '.join(COLOR_BY)}"
        )
    if color_by == "class":
        values = (
            labels
            if labels is not None
            else (dataset.label_names() if dataset is not None else None)
        )
        if values is None:
            raise ValueError(f"{where}: color_by='class' needs labels (or a dataset)")
        return as_labels(values, n, where), "class"
    if color_by == "sub":
        values = sub if sub is not None else (dataset.sub if dataset is not None else None)
        if values is None:
            raise ValueError(
                f"{where}: color_by='sub' needs sub-cluster labels: pass sub=... or a "
                "dataset whose .sub is set (mixture, modes-on-circle, superclass views)"
            )
        return as_labels(values, n, where, "sub"), "sub-cluster"
    values = flipped if flipped is not None else (dataset.flipped if dataset is not None else None)
    if values is None:
        raise ValueError(
            f"{where}: color_by='flipped' needs a flipped mask: pass flipped=... or a "
            "dataset with injected label noise (Config.noise_rate > 0)"
        )
    mask = as_labels(values, n, where, "flipped", mask=True).astype(bool)
    return np.where(mask, "flipped", "clean"), "label"


# The class colours, in order: chosen one at a time, each the sRGB colour (of a 18-step grid, with
# CIELAB lightness 30-78 and chroma >= 25, so that it stands out on white and is not a grey) whose
# smallest CIEDE2000 difference from the colours before it is largest. Every prefix is as spread
# as that greedy choice makes it: the first 10 differ by at least 27 CIEDE2000 units pairwise, the
# first 16 by 22, all 24 by 18 (plotly's Dark24, the previous palette, had two of its first ten
# 10 units apart and readers could not tell classes 7 / 9, 6 / 8 and 1 / 4 apart).
CLASS_COLOURS = (
    "#0f5ad2", "#b4c300", "#ff4b0f", "#005a2d", "#00d2f0", "#ff96f0", "#96004b", "#693c0f",
    "#3ca578", "#ffa500", "#87a5ff", "#c300e1", "#007887", "#78781e", "#ff2d78", "#e1a596",
    "#8778a5", "#b4000f", "#5a3c78", "#b46900", "#00d22d", "#a5695a", "#b4a578", "#008700",
)  # fmt: skip


def palette(values: np.ndarray) -> dict[Any, str]:
    """One colour per distinct value, the same value always getting the same colour.

    "clean" / "flipped" get grey / red so noise stands out; other values take `CLASS_COLOURS` in
    sorted order (ten classes pairwise at least 27 CIEDE2000 units apart), repeating after 24.
    """
    distinct = sorted_unique(values)
    if set(distinct) <= {"clean", "flipped"}:
        return {"clean": "#b0b0b0", "flipped": "#d62728"}
    return {value: CLASS_COLOURS[i % len(CLASS_COLOURS)] for i, value in enumerate(distinct)}


def sorted_unique(values: np.ndarray) -> list:
    return [v.item() if hasattr(v, "item") else v for v in np.unique(values)]
