"""Pictures for Listwise Self-Distillation: one anchor's teacher and student lists, and
per-epoch curves of several runs over seeds.

    lists = anchor_lists(run, epoch=10, anchor=0)        # arrays: teacher, student, labels, ...
    fig = list_bars(lists)                               # the two lists as bars
    fig = epoch_curves(results.runs, "test_recall@1")    # mean +- std over seeds per variant

An LSD list is a row of softmax(S / tau) over a batch, S the run's LSD similarities (z_i . z_j of
the normalised embeddings on the official path, -D for learned geometries): how the anchor spreads
its attention over the batch. The teacher is the model at the end of the previous epoch, so with
`Config.snapshot_every=1` the probe set's snapshots give both lists for any epoch e >= 1:
teacher = snapshot e-1, student = snapshot e.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from dmllab.losses.lsd import ListwiseSelfDistillation, lists_for
from dmllab.viz._inputs import is_run

if TYPE_CHECKING:  # pandas and plotly are imported where tables and figures are made
    import pandas as pd
    import plotly.graph_objects as go


@dataclass
class AnchorLists:
    """One anchor's LSD lists over a small batch drawn from the probe set.

    members:  probe-set rows in the batch (members[0] is the anchor).
    labels:   their (possibly noisy) training labels; `flipped` marks the noisy ones.
    teacher:  softmax(S_teacher[anchor] / tau), the snapshot of epoch `epoch - 1`.
    student:  softmax(S_student[anchor] / tau), the snapshot of epoch `epoch`.
    lists:    which similarities S the run's LSD lists ("cosine" or "distance", i.e. -D).
    anchor_kl: KL(teacher || student) of the anchor's own list (from log-softmax, so finite).
    batch_kd: the LSD term tau^2 * mean_i KL(p_i || q_i) over the whole small batch.
    """

    epoch: int
    tau: float
    lists: str
    members: np.ndarray
    labels: np.ndarray
    flipped: np.ndarray
    teacher: np.ndarray
    student: np.ndarray
    anchor_kl: float
    batch_kd: float


def anchor_lists(
    run: Any,
    epoch: int,
    anchor: int = 0,
    *,
    size: int = 40,
    tau: float | None = None,
    seed: int = 0,
) -> AnchorLists:
    """Teacher (epoch - 1) and student (epoch) lists of probe row `anchor` over a batch of `size`
    probe rows: the anchor, then same-label rows first (up to a quarter of the batch), then others.

    The run needs snapshots at `epoch` and `epoch - 1` (train with `Config.snapshot_every=1`).
    The lists are the ones LSD trains on (`losses.lsd.lists_for` of the run's geometry);
    -D lists use the run's final geometry (exact for fixed geometries such as Euclidean).
    `tau` defaults to the run's `lsd_tau`.
    """
    if not is_run(run):
        raise TypeError(f"anchor_lists: expected a Run; got {type(run).__name__}")
    missing = [e for e in (epoch - 1, epoch) if e not in run.snapshots]
    if missing:
        raise ValueError(
            f"anchor_lists: the run has no snapshot for epoch(s) {missing} "
            f"(it has {sorted(run.snapshots)}); "
            "train with Config.snapshot_every=1 and pick 1 <= epoch < epochs"
        )
    student_all, teacher_all = run.snapshots[epoch], run.snapshots[epoch - 1]
    n = len(student_all)
    if not 0 <= anchor < n:
        raise ValueError(f"anchor_lists: anchor={anchor} is outside the probe set of {n} rows")
    if size < 2:
        raise ValueError(
            f"anchor_lists: size must be >= 2 (the anchor and at least one other row); got {size}"
        )
    tau = float(run.config.lsd_tau if tau is None else tau)
    probe = run.data.train.subset(run.probe_index) if run.data is not None else None
    labels = probe.y if probe is not None else torch.zeros(n, dtype=torch.long)
    flipped = (
        probe.flipped
        if probe is not None and probe.flipped is not None
        else torch.zeros(n, dtype=torch.bool)
    )
    members = _batch_members(labels, anchor, min(size, n), seed)
    lsd = ListwiseSelfDistillation(
        alpha=1.0, tau=tau, lists=lists_for(run.geometry, run.config.normalize)
    )
    with torch.no_grad():
        student_s = lsd.similarities(student_all[members], run.geometry).float()
        teacher_s = lsd.similarities(teacher_all[members], run.geometry).float()
        batch_kd = float(lsd(student_s, teacher_s, labels[members]))
        log_q = torch.log_softmax(student_s[0].double() / tau, dim=0)
        log_p = torch.log_softmax(teacher_s[0].double() / tau, dim=0)
        anchor_kl = float((log_p.exp() * (log_p - log_q)).sum())
    return AnchorLists(
        epoch=epoch,
        tau=tau,
        lists=lsd.lists,
        members=members.numpy(),
        labels=labels[members].numpy(),
        flipped=flipped[members].numpy(),
        teacher=log_p.exp().numpy(),
        student=log_q.exp().numpy(),
        anchor_kl=anchor_kl,
        batch_kd=batch_kd,
    )


def list_bars(lists: AnchorLists, *, title: str | None = None) -> go.Figure:
    """Teacher and student lists of one anchor as grouped bars; batch members sorted by the
    teacher's weight, labelled by their training label (* = the label is noisy)."""
    import plotly.graph_objects as go

    order = np.argsort(-lists.teacher, kind="stable")
    names = [
        f"{'anchor' if i == 0 else '#' + str(i)}: "
        f"y={lists.labels[i]}{'*' if lists.flipped[i] else ''}"
        for i in order
    ]
    fig = go.Figure(
        [
            go.Bar(x=names, y=lists.teacher[order], name=f"teacher (epoch {lists.epoch - 1})"),
            go.Bar(x=names, y=lists.student[order], name=f"student (epoch {lists.epoch})"),
        ]
    )
    fig.update_layout(
        title=title
        or (
            "one anchor's lists, "
            f"softmax({'cos' if lists.lists == 'cosine' else '-D'} / {lists.tau:g}); "
            f"KL(teacher || student) = "
            f"{lists.anchor_kl:.3g}"
        ),
        barmode="group",
        xaxis_title="batch member (y = training label, * = noisy)",
        yaxis_title="weight",
        template="plotly_white",
        height=400,
        width=max(560, 22 * len(names) + 200),
    )
    return fig


def epoch_table(runs: Mapping[Any, Any], key: str) -> pd.DataFrame:
    """Per variant and epoch: the mean, std and count over seeds of history column `key`, and
    `complete`: whether every run of the variant reached that epoch (runs stopped early end at
    different epochs, and a mean over the runs that remain is not the variant's curve).

    runs: `{(variant, seed): Run}` (`Results.runs` with `keep_runs=True`) or
          `{variant: [Run, ...]}`.
    """
    import pandas as pd

    frame = _epoch_rows(runs, key)
    order = list(dict.fromkeys(frame["variant"]))
    table = (
        frame.groupby(["variant", "epoch"], sort=False)[key]
        .agg(["mean", "std", "count"])
        .reset_index()
    )
    table["std"] = table["std"].fillna(0.0)
    runs_per_variant = frame.groupby("variant", sort=False)["run"].nunique()
    table["complete"] = table["count"] == table["variant"].map(runs_per_variant)
    table["variant"] = pd.Categorical(table["variant"], categories=order, ordered=True)
    return table.sort_values(["variant", "epoch"]).reset_index(drop=True)


def _epoch_rows(runs: Mapping[Any, Any], key: str) -> pd.DataFrame:
    """One row per run and epoch with a finite `key`: variant, run (its index), epoch, value."""
    import pandas as pd

    rows = []
    for index, (variant, run) in enumerate(_flatten(runs)):
        for row in run.history:
            value = row.get(key)
            if value is not None and np.isfinite(float(value)):
                rows.append(
                    {
                        "variant": variant,
                        "run": index,
                        "epoch": int(row["epoch"]),
                        key: float(value),
                    }
                )
    if not rows:
        raise ValueError(
            f"epoch_table: no run has history column {key!r}; for test curves train with "
            "Config.monitor_test=True (train_memorisation also needs noise_rate > 0)"
        )
    return pd.DataFrame(rows)


def epoch_summary(runs: Mapping[Any, Any], key: str, prefix: str = "") -> dict[str, float]:
    """Read-outs of each variant's mean curve over seeds of history column `key`, over the epochs
    every run of the variant reached (`epoch_table`'s `complete`), as a flat dict
    `{prefix}{variant}/{stat}` with stat in: `first` (value), `peak` (maximum), `peak_epoch`,
    `low` (minimum), `last` (value).

    runs: as for `epoch_table`. The words a lesson uses about a curve ("peaks early, then
    slides") are read from these numbers."""
    table = epoch_table(runs, key)
    out: dict[str, float] = {}
    for variant in table["variant"].cat.categories:
        part = table[(table["variant"] == variant) & table["complete"]].reset_index(drop=True)
        peak = int(part["mean"].idxmax())
        stats = {
            "first": part["mean"].iloc[0],
            "peak": part["mean"].iloc[peak],
            "peak_epoch": part["epoch"].iloc[peak],
            "low": part["mean"].min(),
            "last": part["mean"].iloc[-1],
        }
        out |= {f"{prefix}{variant}/{stat}": float(value) for stat, value in stats.items()}
    return out


def epoch_curves(
    runs: Mapping[Any, Any], key: str = "test_recall@1", *, title: str | None = None
) -> go.Figure:
    """One line per variant (mean over seeds) with a +-std band, against the epoch, over the
    epochs every run of the variant reached; where runs stopped at different epochs (early
    stopping), each run that went on is a thin line of its own from there, so the tail of the
    mean is never the average of a shrinking set of seeds."""
    import plotly.graph_objects as go
    from plotly.colors import qualitative

    table = epoch_table(runs, key)
    rows = _epoch_rows(runs, key)
    fig = go.Figure()
    tails = False
    for i, variant in enumerate(table["variant"].cat.categories):
        part = table[(table["variant"] == variant) & table["complete"]]
        color = qualitative.D3[i % len(qualitative.D3)]
        epochs = part["epoch"].to_numpy()
        low = (part["mean"] - part["std"]).to_numpy()
        high = (part["mean"] + part["std"]).to_numpy()
        fig.add_trace(
            go.Scatter(
                x=np.concatenate([epochs, epochs[::-1]]),
                y=np.concatenate([high, low[::-1]]),
                fill="toself",
                fillcolor=color,
                opacity=0.15,
                line={"width": 0},
                hoverinfo="skip",
                showlegend=False,
                legendgroup=str(variant),
            )
        )
        fig.add_trace(
            go.Scatter(
                x=epochs,
                y=part["mean"].to_numpy(),
                mode="lines",
                name=str(variant),
                line={"color": color},
                legendgroup=str(variant),
            )
        )
        last = int(epochs.max()) if len(epochs) else -1
        own = rows[(rows["variant"] == variant) & (rows["epoch"] >= last)]
        for _, tail in own.groupby("run"):
            if int(tail["epoch"].max()) > last:
                tails = True
                fig.add_trace(
                    go.Scatter(
                        x=tail["epoch"].to_numpy(),
                        y=tail[key].to_numpy(),
                        mode="lines",
                        name=f"{variant} (one seed)",
                        line={"color": color, "width": 1, "dash": "dot"},
                        legendgroup=str(variant),
                        showlegend=False,
                        hovertemplate=f"{variant}, one seed: %{{y:.3f}} at epoch %{{x}}"
                        "<extra></extra>",
                    )
                )
    fig.update_layout(
        title=title
        or f"{key} per epoch (mean ± std over seeds{'; dotted: one seed each' if tails else ''})",
        xaxis_title="epoch",
        yaxis_title=key,
        template="plotly_white",
        height=400,
        width=640,
    )
    return fig


def _flatten(runs: Mapping[Any, Any]) -> list[tuple[str, Any]]:
    pairs = []
    for name, value in runs.items():
        variant = name[0] if isinstance(name, tuple) else name
        for run in value if isinstance(value, (list, tuple)) else [value]:
            if not is_run(run):
                raise TypeError(
                    "expected Runs (e.g. Results.runs with keep_runs=True); "
                    f"got {type(run).__name__}"
                )
            pairs.append((str(variant), run))
    if not pairs:
        raise ValueError(
            "no runs given; use run_variants(..., keep_runs=True) and pass results.runs"
        )
    return pairs


def _batch_members(labels: torch.Tensor, anchor: int, size: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    others = torch.cat([torch.arange(anchor), torch.arange(anchor + 1, len(labels))])
    others = others[torch.randperm(len(others), generator=generator)]
    same = others[labels[others] == labels[anchor]][: max(1, size // 4)]
    rest = others[labels[others] != labels[anchor]][: size - 1 - len(same)]
    return torch.cat([torch.tensor([anchor]), same, rest])


__all__ = ["AnchorLists", "anchor_lists", "epoch_curves", "epoch_table", "list_bars"]
