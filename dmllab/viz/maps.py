"""Embedding maps: where the points of each class, sub-cluster or flipped label land.

    fig = embedding_map(run)                                   # test split, coloured by class
    fig = embedding_map(z, labels, color_by="sub", dataset=data)
    fig = compare_maps({"random": run_a, "nearest": run_b}, color_by="sub")
    fig = evolution(run)                                       # animation over run.snapshots
    fig = angle_histogram(z2, modes)                           # 2-D toys on the unit circle

Each colour value is one trace (so the legend toggles a class), and every trace carries the
sample's row index in `customdata[:, 0]` followed by its labels, shown on hover.

Thumbnails: plotly's hover box is SVG text and does not render `<img>` tags, so images are not put
in the hover. For image data use `dmllab.viz.MapExplorer(fig, dataset)`: the same figure as a
FigureWidget beside an image panel that shows the hovered or clicked sample.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from dmllab.data.dataset import Dataset
from dmllab.viz._inputs import (
    as_dataset,
    as_labels,
    as_points,
    coloring,
    is_run,
    palette,
    run_points,
    sorted_unique,
)
from dmllab.viz.projection import aligned_projections, project

if TYPE_CHECKING:  # plotly is imported where figures are drawn
    import plotly.graph_objects as go


def embedding_map(
    points: Any,
    labels: Any = None,
    *,
    color_by: str = "class",
    dataset: Dataset | None = None,
    sub: Any = None,
    flipped: Any = None,
    split: str = "test",
    method: str = "pca",
    seed: int = 0,
    title: str | None = None,
    marker_size: float = 6.0,
) -> go.Figure:
    """A scatter map of embeddings, one trace per class / sub-cluster / clean-vs-flipped.

    points:   [n, 2] points, [n, d] embeddings (projected with `project(method, seed)`), or a Run
              (its `split` is embedded and supplies labels, sub-clusters and flips).
    labels:   [n] class labels (default: dataset.y).
    color_by: "class", "sub" (sub-cluster / fine label) or "flipped" (was the label changed by
              injected noise).
    dataset:  the Dataset (or a registered dataset name) the rows come from, for labels (shown
              by their names) and hover; `sub` / `flipped` override it.
    """
    import plotly.graph_objects as go

    xy, dataset = _points_and_dataset(points, dataset, split, method, seed, "embedding_map")
    values, legend = coloring(color_by, len(xy), "embedding_map", labels, dataset, sub, flipped)
    hover = _hover_columns(len(xy), labels, dataset, sub, flipped)
    fig = go.Figure(_scatter_traces(xy, values, palette(values), hover, marker_size))
    default = (
        f"{split} split: embeddings coloured by {legend}"
        if is_run(points)
        else f"embeddings coloured by {legend}"
    )
    _map_layout(fig, title or default, legend, method if _projected(points, xy) else None)
    return fig


# Legend rows of plotly's default font (12 px) that a 480 px map shows without scrolling; more
# entries get a 10 px font and a taller figure.
ROOMY_LEGEND = 10


def compare_maps(
    maps: Mapping[str, Any],
    labels: Any = None,
    *,
    color_by: str = "class",
    dataset: Dataset | None = None,
    sub: Any = None,
    flipped: Any = None,
    split: str = "test",
    method: str = "pca",
    seed: int = 0,
    marker_size: float = 5.0,
) -> go.Figure:
    """A grid of maps (up to 3 per row, 2 x 2 for four) sharing one colour per label and one
    legend: clicking a legend entry shows or hides that label in every panel (one legendgroup per
    label). The width follows the notebook (no fixed pixel width).

    maps: {title: points | embeddings | Run}. Runs bring their own split's labels; arrays use
    `labels` / `dataset` / `sub` / `flipped` (the same rows for every entry). Axes are linked, so
    zooming one panel zooms all; their titles name the projection ("PCA 1", "UMAP 2").
    """
    from plotly.subplots import make_subplots

    if not maps:
        raise ValueError("compare_maps: nothing to compare; pass {name: run_or_points, ...}")
    panels = []
    for name, value in maps.items():
        xy, data = _points_and_dataset(
            value, dataset, split, method, seed, f"compare_maps[{name!r}]"
        )
        values, legend = coloring(
            color_by,
            len(xy),
            f"compare_maps[{name!r}]",
            None if is_run(value) else labels,
            data,
            None if is_run(value) else sub,
            None if is_run(value) else flipped,
        )
        hover = _hover_columns(len(xy), None if is_run(value) else labels, data, sub, flipped)
        panels.append((name, xy, values, hover))
    colors = palette(np.concatenate([p[2] for p in panels]))
    count = len(panels)
    cols = 2 if count == 4 else min(3, count)
    rows = -(-count // cols)
    fig = make_subplots(
        rows=rows,
        cols=cols,
        subplot_titles=[p[0] for p in panels],
        shared_xaxes="all",
        shared_yaxes="all",
        horizontal_spacing=0.04,
        vertical_spacing=0.12 if rows > 1 else 0.0,
    )
    axis = _axis_titles(method if any(_projected(maps[p[0]], p[1]) for p in panels) else None)
    shown: set = set()
    for i, (_, xy, values, hover) in enumerate(panels):
        row, col = i // cols + 1, i % cols + 1
        for trace in _scatter_traces(xy, values, colors, hover, marker_size):
            trace.showlegend = trace.name not in shown
            shown.add(trace.name)
            fig.add_trace(trace, row=row, col=col)
        if i + cols >= count:  # nothing below this panel: its x axis carries the title
            fig.update_xaxes(title_text=axis[0], row=row, col=col)
        if col == 1:
            fig.update_yaxes(title_text=axis[1], row=row, col=col)
    where = f"{split} split: " if any(is_run(value) for value in maps.values()) else ""
    fig.update_layout(
        title=f"{where}embeddings coloured by {legend}",
        legend_title_text=legend,
        height=320 * rows + 110,
        width=None,
        autosize=True,
        template="plotly_white",
        margin={"t": 80, "b": 50},
    )
    fig.update_xaxes(showticklabels=False)
    fig.update_yaxes(showticklabels=False)
    return fig


def evolution(
    run: Any,
    labels: Any = None,
    *,
    color_by: str = "class",
    method: str = "pca",
    seed: int = 0,
    marker_size: float = 6.0,
    frame_ms: int = 400,
) -> go.Figure:
    """An animation (play button + epoch slider) of the probe set's map over training.

    run: a Run with `snapshots` (Config.snapshot_every > 0) whose rows are `run.train` rows
    `run.probe_index`, or a {epoch: [n, d]} dict with `labels`. Projections come from
    `aligned_projections(method)`, so the axes stay fixed and the range covers every frame.
    """
    import plotly.graph_objects as go

    snapshots, data = _snapshots_and_data(run, "evolution")
    where = "training split's probe set, " if is_run(run) else ""
    frames_xy = aligned_projections(snapshots, method, seed)
    epochs = sorted(frames_xy)
    n = len(frames_xy[epochs[0]])
    values, legend = coloring(color_by, n, "evolution", labels, data)
    colors = palette(values)
    hover = _hover_columns(n, labels, data, None, None)
    frames = [
        go.Frame(
            data=_scatter_traces(frames_xy[e], values, colors, hover, marker_size),
            name=str(e),
            layout={"title": {"text": f"{where}epoch {e}"}},
        )
        for e in epochs
    ]
    fig = go.Figure(data=frames[0].data, frames=frames)
    _map_layout(fig, f"{where}epoch {epochs[0]}", legend, method)
    everything = np.concatenate([frames_xy[e] for e in epochs])
    low, high = everything.min(axis=0), everything.max(axis=0)
    pad = 0.05 * np.maximum(high - low, 1e-9)
    fig.update_xaxes(range=[low[0] - pad[0], high[0] + pad[0]], autorange=False)
    fig.update_yaxes(range=[low[1] - pad[1], high[1] + pad[1]], autorange=False)
    step_args = {
        "mode": "immediate",
        "frame": {"duration": frame_ms, "redraw": True},
        "transition": {"duration": 0},
    }
    fig.update_layout(
        updatemenus=[
            {
                "type": "buttons",
                "showactive": False,
                "x": 0.0,
                "y": -0.08,
                "buttons": [
                    {
                        "label": "play",
                        "method": "animate",
                        "args": [None, {**step_args, "fromcurrent": True}],
                    },
                    {
                        "label": "pause",
                        "method": "animate",
                        "args": [[None], {**step_args, "frame": {"duration": 0}}],
                    },
                ],
            }
        ],
        sliders=[
            {
                "active": 0,
                "x": 0.12,
                "len": 0.88,
                "y": -0.05,
                "currentvalue": {"prefix": "epoch "},
                "steps": [
                    {"label": str(e), "method": "animate", "args": [[str(e)], step_args]}
                    for e in epochs
                ],
            }
        ],
    )
    return fig


def angle_histogram(
    embeddings2d: Any, labels: Any, *, bins: int = 36, title: str = "embedding angles"
) -> go.Figure:
    """Histogram of atan2(y, x) in degrees, one overlaid histogram per label (e.g. per mode).

    For 2-D embeddings on (or near) the unit circle, as in the class-collapse toy: a class that
    collapsed shows one narrow peak, a class that kept its modes shows one peak per mode.
    """
    import plotly.graph_objects as go

    xy = as_points(embeddings2d, "angle_histogram", min_dim=2)
    if xy.shape[1] != 2:
        raise ValueError(
            f"angle_histogram: needs 2-D embeddings; got d={xy.shape[1]} "
            "(project them first, or use embedding_map)"
        )
    values = as_labels(labels, len(xy), "angle_histogram")
    degrees = np.degrees(np.arctan2(xy[:, 1], xy[:, 0]))
    colors = palette(values)
    width = 360.0 / bins
    fig = go.Figure(
        [
            go.Histogram(
                x=degrees[values == v],
                name=str(v),
                marker_color=colors[v],
                xbins={"start": -180.0, "end": 180.0, "size": width},
                opacity=0.7,
            )
            for v in sorted_unique(values)
        ]
    )
    fig.update_layout(
        barmode="overlay",
        title=title,
        legend_title_text="label",
        template="plotly_white",
        xaxis_title="angle (degrees)",
        yaxis_title="count",
        height=360,
        width=640,
    )
    fig.update_xaxes(range=[-180, 180], dtick=45)
    return fig


# ---------------------------------------------------------------------------- helpers
def _points_and_dataset(
    points: Any, dataset: Dataset | None, split: str, method: str, seed: int, where: str
) -> tuple[np.ndarray, Dataset | None]:
    if is_run(points):
        embeddings, dataset = run_points(points, split, where)
    else:
        embeddings = as_points(points, where, min_dim=2)
        dataset = as_dataset(dataset, seed)
        if dataset is not None and len(dataset) != len(embeddings):
            raise ValueError(
                f"{where}: {len(embeddings)} points but the dataset has {len(dataset)} rows"
            )
    return project(embeddings, method, seed), dataset


def _projected(points: Any, xy: np.ndarray) -> bool:
    return is_run(points) or np.shape(points)[-1] != 2


def _snapshots_and_data(run: Any, where: str) -> tuple[Mapping[int, Any], Dataset | None]:
    if not is_run(run):
        if not isinstance(run, Mapping):
            raise TypeError(
                f"{where}: expected a Run or a {{epoch: embeddings}} dict; got {type(run).__name__}"
            )
        return run, None
    if not run.snapshots:
        raise ValueError(f"{where}: the run has no snapshots; train with Config.snapshot_every > 0")
    data = None
    if run.data is not None and run.probe_index is not None:
        data = run.train.subset(run.probe_index)
    return run.snapshots, data


def _hover_columns(
    n: int, labels: Any, dataset: Dataset | None, sub: Any, flipped: Any
) -> dict[str, np.ndarray]:
    """Columns shown on hover, in order; "index" (the row in the dataset) always first."""
    columns: dict[str, np.ndarray] = {"index": np.arange(n)}
    y = labels if labels is not None else (dataset.label_names() if dataset is not None else None)
    if y is not None:
        columns["class"] = as_labels(y, n, "hover")
    fine = sub if sub is not None else (dataset.sub if dataset is not None else None)
    if fine is not None:
        columns["sub"] = as_labels(fine, n, "hover", "sub")
    if dataset is not None and dataset.clean_y is not None:
        columns["clean label"] = as_labels(dataset.clean_y, n, "hover", "clean_y")
    elif flipped is not None:
        columns["flipped"] = as_labels(flipped, n, "hover", "flipped", mask=True).astype(bool)
    return columns


def _scatter_traces(
    xy: np.ndarray,
    values: np.ndarray,
    colors: dict,
    hover: dict[str, np.ndarray],
    marker_size: float,
) -> list:
    import plotly.graph_objects as go

    customdata = np.column_stack([np.asarray(col).astype(object) for col in hover.values()])
    template = "<br>".join(f"{name}: %{{customdata[{i}]}}" for i, name in enumerate(hover))
    traces = []
    for value in sorted_unique(values):
        rows = np.flatnonzero(values == value)
        traces.append(
            go.Scatter(
                x=xy[rows, 0],
                y=xy[rows, 1],
                mode="markers",
                name=str(value),
                legendgroup=str(value),
                customdata=customdata[rows],
                hovertemplate=template + "<extra>%{fullData.name}</extra>",
                marker={"color": colors[value], "size": marker_size, "line": {"width": 0}},
            )
        )
    return traces


def _map_layout(fig: go.Figure, title: str, legend: str, method: str | None) -> None:
    """Title, legend and axes of a single map. Points drawn as given and PCA projections (which
    keep distances) get one scale on both axes, so a round cluster looks round; every legend
    entry stays in view (a smaller font and a taller figure past ROOMY_LEGEND entries)."""
    x_title, y_title = _axis_titles(method)
    entries = len(fig.data)
    height = 480 if entries <= ROOMY_LEGEND else max(480, 150 + 18 * entries)
    fig.update_layout(
        title=title,
        legend_title_text=legend,
        template="plotly_white",
        xaxis_title=x_title,
        yaxis_title=y_title,
        height=height,
        width=560,
        margin={"t": 80, "b": 60},
    )
    if entries > ROOMY_LEGEND:
        fig.update_layout(legend={"font": {"size": 10}, "tracegroupgap": 0})
    if method in (None, "pca"):
        fig.update_yaxes(scaleanchor="x", scaleratio=1)


def _axis_titles(method: str | None) -> tuple[str, str]:
    """("PCA 1", "PCA 2") for projected maps, ("embedding 1", "embedding 2") for 2-D points drawn
    as given."""
    name = method.upper() if method else "embedding"
    return f"{name} 1", f"{name} 2"
