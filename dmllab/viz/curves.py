"""Training curves of one run and bar charts comparing runs over seeds.

fig = training_curves(run)                           # loss, LSD term, active tuples, val metrics
fig = compare_runs(table, "recall@1", by="positives")  # table = dmllab.runs.aggregate(...)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from dmllab.viz._inputs import is_run

if TYPE_CHECKING:  # plotly is imported where figures are drawn
    import plotly.graph_objects as go

# Shown by default when present in the history, in this order, then every "val_*" key.
DEFAULT_CURVES = ("loss", "base_loss", "lsd_term", "active", "pos_dist", "neg_dist")
# What each history column measures, in words: the y-axis title of its panel.
CURVE_WORDS = {
    "loss": "loss (total)",
    "base_loss": "loss without the LSD term",
    "lsd_term": "tau^2 mean KL(teacher || student)",
    "active": "active tuples per batch",
    "anchors": "anchors used per batch",
    "dropped": "anchors dropped",
    "pos_dist": "mean D to the chosen positive",
    "neg_dist": "mean D to the chosen negatives",
    "lsd_weight": "LSD weight",
    "seconds": "seconds per epoch",
}
# The same in a few words: the title of its panel (trace names stay the history keys).
CURVE_TITLES = {
    "loss": "loss",
    "base_loss": "base loss (without LSD)",
    "lsd_term": "LSD term (unweighted)",
    "active": "active tuples",
    "anchors": "anchors used",
    "dropped": "anchors dropped",
    "pos_dist": "mean positive distance",
    "neg_dist": "mean negative distance",
    "lsd_weight": "LSD weight",
    "seconds": "time per epoch",
}
# A loss that chooses no positives (`uses_positives = False`: prototype_ce, a softmax over the
# batch's class means) selects no tuples to count, and its distances are to class means.
TUPLE_COUNTS = ("active", "anchors", "dropped")
PROTOTYPE_WORDS = {
    "pos_dist": "mean D to the own class mean",
    "neg_dist": "mean D to the other class means",
}
PROTOTYPE_TITLES = {"pos_dist": "distance to own class mean", "neg_dist": "to other class means"}
_SPLIT_WORDS = {"val_": "validation ", "test_": "test ", "train_": "training-set "}
GAP_PX = (
    80  # between rows of panels: room for one row's "epoch" title and the next row's panel title
)


def training_curves(
    run_or_history: Any, keys: Sequence[str] | None = None, *, title: str = "training"
) -> go.Figure:
    """One panel per history key against the epoch, titled in words (`curve_title`: "mean positive
    distance" for `pos_dist`); its y axis says precisely what the key measures (`curve_words`). The
    traces are named by their history keys.

    run_or_history: a Run, a list of per-epoch dicts (`run.history`) or a DataFrame of them.
    keys: which columns to draw (default: those of DEFAULT_CURVES present, then "val_*" keys;
    `base_loss` only where it differs from `loss`, i.e. when an LSD term was added). A Run whose
    loss chooses no positives (prototype_ce) draws no tuple counts, and its distances are named
    as distances to class means (`loss_wording`).
    """
    history = _history_rows(run_or_history)
    if not history:
        raise ValueError("training_curves: the history is empty (no epoch has finished yet)")
    loss = getattr(getattr(run_or_history, "config", None), "loss", None)
    hidden, words, titles = loss_wording(loss)
    keys = curve_keys(history, keys, hidden=hidden)
    fig = curves_figure(keys, title=title, words=words, titles=titles)
    update_curves(fig, history)
    return fig


def loss_wording(loss: str | None) -> tuple[tuple[str, ...], dict[str, str], dict[str, str]]:
    """(history keys not drawn by default, y-axis words, panel titles) for runs of the registered
    loss `loss`: a loss that chooses no tuples (not a `TupleLoss`: prototype_ce) has no
    tuple counts, and its `pos_dist` / `neg_dist` are distances to the own / other class means.
    Other losses and None: nothing hidden, the usual words."""
    from dmllab.losses import LOSSES, TupleLoss

    if loss is None or loss not in LOSSES or issubclass(LOSSES[loss], TupleLoss):
        return (), {}, {}
    return TUPLE_COUNTS, dict(PROTOTYPE_WORDS), dict(PROTOTYPE_TITLES)


def curve_keys(
    history: list[dict], keys: Sequence[str] | None = None, *, hidden: Sequence[str] = ()
) -> list[str]:
    """The keys to draw: `keys` checked against the history, or the defaults present in it
    (less `hidden`)."""
    available = [
        k for k in dict.fromkeys(k for row in history for k in row) if _numeric(history, k)
    ]
    if keys is None:
        chosen = [
            k
            for k in DEFAULT_CURVES
            if k in available
            and k not in hidden
            and not (k == "base_loss" and _same(history, k, "loss"))
        ]
        chosen += [k for k in available if k.startswith("val_")]
        if not chosen:
            chosen = [k for k in available if k != "epoch"]
        return chosen
    keys = list(keys)
    missing = [k for k in keys if k not in available]
    if missing:
        raise ValueError(
            f"training_curves: the history has no numeric column(s) {missing}; "
            f"available: {[k for k in available if k != 'epoch']}"
        )
    if not keys:
        raise ValueError("training_curves: keys is empty; name at least one history column")
    return keys


def curves_figure(
    keys: Sequence[str],
    *,
    title: str = "training",
    words: dict[str, str] | None = None,
    titles: dict[str, str] | None = None,
    columns: int | None = None,
) -> go.Figure:
    """An empty curves figure: one panel per key, titled `curve_title(key)` (or `titles[key]`),
    its y axis `curve_words(key)` (or `words[key]`), holding one line trace named `key`. `columns`
    panels per row (default: 2 for four keys, else up to 3)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    keys, words, titles = list(keys), words or {}, titles or {}
    cols = columns or (2 if len(keys) == 4 else min(3, len(keys)))
    rows = math.ceil(len(keys) / cols)
    panel_px, margin = 200, {"t": 70, "b": 50}
    plot_px = rows * panel_px + (rows - 1) * GAP_PX
    fig = make_subplots(
        rows=rows,
        cols=cols,
        subplot_titles=[titles.get(key, curve_title(key)) for key in keys],
        horizontal_spacing=0.1,
        vertical_spacing=GAP_PX / plot_px if rows > 1 else 0.0,
    )
    for i, key in enumerate(keys):
        axis = words.get(key, curve_words(key))
        fig.add_trace(
            go.Scatter(
                x=np.zeros(0),
                y=np.zeros(0),
                mode="lines+markers",
                name=key,
                showlegend=False,
                hovertemplate=f"epoch %{{x}}<br>{axis}: %{{y:.4g}}<extra></extra>",
            ),
            row=i // cols + 1,
            col=i % cols + 1,
        )
        fig.update_xaxes(title_text="epoch", title_standoff=4, row=i // cols + 1, col=i % cols + 1)
        fig.update_yaxes(title_text=axis, title_font_size=11, row=i // cols + 1, col=i % cols + 1)
    fig.update_layout(
        title=title,
        template="plotly_white",
        height=plot_px + margin["t"] + margin["b"],
        width=max(440, 340 * cols),
        margin=margin,
    )
    return fig


def curve_title(key: str) -> str:
    """A history column's panel title: "pos_dist" -> "mean positive distance", "val_recall@1" ->
    "validation recall@1"; unknown keys are returned as they are."""
    return _in_words(key, CURVE_TITLES)


def curve_words(key: str) -> str:
    """A history column in words: "pos_dist" -> "mean D to the chosen positive",
    "val_recall@1" -> "validation recall@1"; unknown keys are returned as they are."""
    return _in_words(key, CURVE_WORDS)


def _in_words(key: str, words: dict[str, str]) -> str:
    for prefix, split in _SPLIT_WORDS.items():
        if key.startswith(prefix):
            return split + words.get(key[len(prefix) :], key[len(prefix) :])
    return words.get(key, key)


def update_curves(fig: go.Figure, history: Sequence[dict]) -> None:
    """Fill each named trace of `curves_figure` from the history (in place; works on
    FigureWidgets)."""
    epochs = np.array([row.get("epoch", i + 1) for i, row in enumerate(history)], dtype=float)
    for trace in fig.data:
        values = np.array([_float(row.get(trace.name)) for row in history])
        keep = np.isfinite(values)
        trace.x, trace.y = epochs[keep], values[keep]


def compare_runs(
    table: Any,
    metric: str,
    by: str | Sequence[str],
    *,
    error: str = "ci",
    color: str | None = None,
    title: str | None = None,
) -> go.Figure:
    """Bars of `<metric>_mean` per group with `<metric>_ci` (or `_std`) error bars.

    table: the DataFrame `dmllab.runs.aggregate(records, by=[...], metrics=[metric])` returns.
    by:    the column(s) on the x axis (several are joined with " / ").
    color: an optional further column drawn as grouped bars of different colours.
    error: "ci" (confidence half-width over seeds) or "std".
    """
    import pandas as pd
    import plotly.graph_objects as go

    frame = pd.DataFrame(table)
    if frame.empty:
        raise ValueError("compare_runs: the table is empty")
    if error not in ("ci", "std"):
        raise ValueError(f"compare_runs: error={error!r}; choose 'ci' or 'std'")
    by = [by] if isinstance(by, str) else list(by)
    needed = by + [f"{metric}_mean", f"{metric}_{error}"] + ([color] if color else [])
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise ValueError(
            f"compare_runs: the table has no column(s) {missing}; columns: {list(frame.columns)}. "
            "Build it with dmllab.runs.aggregate(records, by=..., metrics=[metric])"
        )
    frame = frame.assign(_x=frame[by].astype(str).agg(" / ".join, axis=1))
    groups = [(None, frame)] if color is None else list(frame.groupby(color, sort=True))
    fig = go.Figure()
    for name, group in groups:
        count = group.get(f"{metric}_n")
        fig.add_trace(
            go.Bar(
                x=group["_x"].to_numpy(),
                y=group[f"{metric}_mean"].to_numpy(dtype=float),
                error_y={
                    "type": "data",
                    "array": group[f"{metric}_{error}"].to_numpy(dtype=float),
                    "visible": True,
                },
                name=metric if name is None else f"{color}={name}",
                customdata=None if count is None else count.to_numpy(),
                hovertemplate="%{x}: %{y:.4f} ± %{error_y.array:.4f}"
                + ("" if count is None else " (n=%{customdata})")
                + "<extra></extra>",
            )
        )
    title = title or f"{metric} (mean ± {'95% CI' if error == 'ci' else 'std'} over seeds)"
    fig.update_layout(
        title=title,
        xaxis_title=" / ".join(by),
        yaxis_title=metric,
        barmode="group",
        template="plotly_white",
        height=400,
        width=max(420, 90 * len(frame) + 200, 9 * len(title) + 80),  # the whole title shows
        showlegend=color is not None,
    )
    return fig


def _history_rows(value: Any) -> list[dict]:
    import pandas as pd

    if is_run(value):
        return list(value.history)
    if isinstance(value, pd.DataFrame):
        return value.to_dict("records")
    if isinstance(value, (list, tuple)) and all(isinstance(row, dict) for row in value):
        return list(value)
    raise TypeError(
        f"expected a Run, a list of per-epoch dicts or a DataFrame; got {type(value).__name__}"
    )


def _same(history: list[dict], key: str, other: str) -> bool:
    """True when columns `key` and `other` hold the same value in every epoch (e.g. no LSD term)."""
    return all(
        math.isclose(_float(row.get(key)), _float(row.get(other)), rel_tol=1e-9, abs_tol=1e-12)
        for row in history
    )


def _numeric(history: list[dict], key: str) -> bool:
    return any(np.isfinite(_float(row.get(key))) for row in history)


def _float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan
