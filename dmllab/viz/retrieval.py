"""A retrieval grid: each query image and its k nearest neighbours, marked correct or wrong.

fig = retrieval_grid(run, queries=[0, 5, 9], k=5)              # run.test, run.geometry
fig = retrieval_grid((embeddings, dataset), queries=[0, 1], k=4)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from dmllab.data.dataset import Dataset
from dmllab.data.registry import resolve as resolve_dataset
from dmllab.metrics.knn import knn
from dmllab.viz._inputs import as_points, is_run

if TYPE_CHECKING:  # matplotlib is imported where the grid is drawn
    import matplotlib.figure

CORRECT, WRONG = "#2ca02c", "#d62728"


def retrieval_grid(
    source: Any, queries: Sequence[int], k: int = 5, *, geometry: Any = None, split: str = "test"
) -> matplotlib.figure.Figure:
    """A matplotlib figure (shown as a PNG in any notebook, pyplot or not): one row per query,
    the query then its top-k neighbours.

    source:   a Run (its `split` is embedded and searched with `run.geometry`) or a pair
              (embeddings [n, d] in any array-like, dataset or registered dataset name) with
              image rows (`dataset.image_shape` set).
    queries:  row indices of the queries; each is searched against every *other* row.
    geometry: a Geometry or a registered name; ranks neighbours by ascending D(query || row)
              with the exact search of `dmllab.metrics.knn` (default: the run's geometry, else
              Euclidean).
    A neighbour with the query's class label gets a green frame and a tick, others a red frame
    and a cross; the panel title is the neighbour's class name.
    """
    from dmllab.viz._static import ShownFigure

    embeddings, dataset, geometry = _resolve(source, geometry, split)
    shape = dataset.image_shape
    if shape is None:
        raise ValueError(
            "retrieval_grid: the dataset has no image_shape, so its rows cannot be drawn as "
            "images; use a dataset of images (digits, mnist-5k, image folders)"
        )
    n = len(embeddings)
    queries = [int(q) for q in queries]
    if not queries:
        raise ValueError("retrieval_grid: no queries; pass row indices, e.g. queries=[0, 1, 2]")
    bad = [q for q in queries if not 0 <= q < n]
    if bad:
        raise ValueError(f"retrieval_grid: query indices {bad} are out of range for {n} rows")
    if not 1 <= k < n:
        raise ValueError(f"retrieval_grid: k={k} must be between 1 and {n - 1} (the other rows)")
    index = torch.as_tensor(queries, dtype=torch.long)
    neighbours = knn(embeddings[index], embeddings, k, geometry, self_index=index)[
        0
    ].numpy()  # [queries, k]
    labels = dataset.y.numpy()
    names = dataset.label_names()
    images = _images(dataset, shape, np.concatenate([queries, neighbours.ravel()]))
    fig = ShownFigure(figsize=(1.4 * (k + 1), 1.55 * len(queries)), layout="constrained")
    axes = fig.subplots(len(queries), k + 1, squeeze=False)
    for row, q in enumerate(queries):
        _show(axes[row, 0], images[q], f"query: {names[q]}", "black")
        for col, j in enumerate(neighbours[row], start=1):
            correct = labels[j] == labels[q]
            mark = "\u2713" if correct else "\u2717"
            _show(
                axes[row, col], images[int(j)], f"{mark} {names[j]}", CORRECT if correct else WRONG
            )
    return fig


def _resolve(source: Any, geometry: Any, split: str) -> tuple[torch.Tensor, Dataset, Any]:
    if is_run(source):
        if source.data is None:
            raise ValueError("retrieval_grid: this run carries no data; pass (embeddings, dataset)")
        dataset = source.data.get(split)
        return source.embed(dataset), dataset, geometry if geometry is not None else source.geometry
    if not (isinstance(source, tuple) and len(source) == 2):
        raise TypeError(
            "retrieval_grid: pass a Run or a pair (embeddings, dataset); "
            f"got {type(source).__name__}"
        )
    embeddings, dataset = source[0], resolve_dataset(source[1])
    points = torch.as_tensor(as_points(embeddings, "retrieval_grid"), dtype=torch.float32)
    if len(points) != len(dataset):
        raise ValueError(
            f"retrieval_grid: {len(points)} embeddings but the dataset has {len(dataset)} rows"
        )
    return points, dataset, geometry


def _images(dataset: Dataset, shape: tuple[int, ...], rows: np.ndarray) -> dict[int, np.ndarray]:
    """Row -> [H, W] or [H, W, 3] image scaled to [0, 1]; `shape` is the dataset's image_shape."""
    unique = np.unique(rows)
    batch = dataset.x[torch.as_tensor(unique, dtype=torch.long)].detach().float()
    pixels = batch.reshape(len(unique), *shape).numpy()
    out = {}
    for row, image in zip(unique.tolist(), pixels, strict=True):
        image = image[0] if image.shape[0] == 1 else np.moveaxis(image[:3], 0, -1)
        low, high = image.min(), image.max()
        out[row] = (image - low) / (high - low) if high > low else np.zeros_like(image)
    return out


def _show(ax: Any, image: np.ndarray, title: str, frame: str) -> None:
    ax.imshow(image, cmap="gray" if image.ndim == 2 else None, vmin=0, vmax=1)
    ax.set_title(title, fontsize=8, color=frame)
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_edgecolor(frame)
        spine.set_linewidth(2.5)
