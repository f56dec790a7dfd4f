"""Run records: what `fit` returns, how it is saved and loaded, and aggregation over seeds.

A saved run is a directory with `config.json`, `metrics.json`, `history.csv` and `model.pt`
(state dicts only, loaded with `weights_only=True`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from dmllab.config import Config
from dmllab.components import build_components
from dmllab.data.dataset import Dataset
from dmllab.data.prepare import Splits, prepare


@dataclass
class Run:
    """A trained model and everything needed to read it.

    model:     the embedder (eval mode after `fit`).
    geometry:  the geometry the loss trained (it may have learned parameters).
    history:   one dict per epoch (loss, LSD term and weight, active tuples, distances,
               validation metrics, ...).
    snapshots: epoch -> [probe_size, d] embeddings of `probe_index` rows of the training split.
    config:    the Config that produced the run.
    data:      the train / val / test splits (None when loaded from disk and not rebuilt).
    loss_fn:   the loss module (learnable loss parameters, e.g. the margin loss's beta).
    """

    model: nn.Module
    geometry: nn.Module
    config: Config
    history: list[dict[str, float]] = field(default_factory=list)
    snapshots: dict[int, Tensor] = field(default_factory=dict)
    probe_index: Tensor | None = None
    data: Splits | None = None
    loss_fn: nn.Module | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    stopped_early: bool = False

    @property
    def train(self) -> Dataset:
        return self._splits().train

    @property
    def test(self) -> Dataset:
        return self._splits().test

    @property
    def val(self) -> Dataset | None:
        return self._splits().val

    def _splits(self) -> Splits:
        if self.data is None:
            raise ValueError("this run carries no data; pass a dataset explicitly")
        return self.data

    @torch.no_grad()
    def embed(self, data: Dataset | Tensor, batch_size: int = 1024) -> Tensor:
        """Embeddings of a dataset (or raw inputs) in eval mode, on the CPU, in chunks."""
        x = data.x if isinstance(data, Dataset) else data
        device = next(iter(self.model.parameters()), torch.empty(0)).device
        was_training = self.model.training
        self.model.eval()
        try:
            chunks = []
            for start in range(0, len(x), batch_size):
                index = torch.arange(start, min(start + batch_size, len(x)))
                chunks.append(self.model(x[index].to(device)).float().cpu())
        finally:
            self.model.train(was_training)
        return torch.cat(chunks)

    def history_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.history)

    # ---------------------------------------------------------------- records on disk
    def save(self, directory: str | Path) -> Path:
        """Write config.json, metrics.json, history.csv and model.pt (state dicts only)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "config.json").write_text(self.config.to_json())
        (directory / "metrics.json").write_text(json.dumps(_jsonable(self.metrics), indent=2, sort_keys=True))
        self.history_frame().to_csv(directory / "history.csv", index=False)
        state = {"model": self.model.state_dict(), "geometry": self.geometry.state_dict()}
        if self.loss_fn is not None:
            state["loss"] = self.loss_fn.state_dict()
        torch.save(state, directory / "model.pt")
        return directory


def load(directory: str | Path, *, rebuild_data: bool = True) -> Run:
    """Load a run saved by `Run.save`. Weights are read with `weights_only=True`.

    With `rebuild_data`, a run of a named embedded dataset gets its splits back (they are
    deterministic given the config); runs on a user's own Dataset come back without data.
    """
    directory = Path(directory)
    for name in ("config.json", "model.pt"):
        if not (directory / name).exists():
            raise FileNotFoundError(f"{directory} is not a run record: {name} is missing")
    config = Config.from_json((directory / "config.json").read_text())
    splits = prepare(config) if rebuild_data and config.dataset_options.get("root") is None else None
    input_shape = _input_shape(splits, config, directory)
    num_classes = splits.train.num_classes if splits is not None else None
    model, geometry, loss_fn = build_components(config, input_shape, num_classes)
    state = torch.load(directory / "model.pt", map_location="cpu", weights_only=True)
    model.load_state_dict(state["model"])
    geometry.load_state_dict(state["geometry"])
    if "loss" in state:
        loss_fn.load_state_dict(state["loss"])
    model.eval()
    history = pd.read_csv(directory / "history.csv").to_dict("records") if (directory / "history.csv").exists() else []
    metrics = json.loads((directory / "metrics.json").read_text()) if (directory / "metrics.json").exists() else {}
    return Run(model=model, geometry=geometry, config=config, history=history, data=splits,
               loss_fn=loss_fn, metrics=metrics)


def _input_shape(splits: Splits | None, config: Config, directory: Path) -> tuple[int, ...]:
    if splits is not None:
        return tuple(splits.train.x[torch.tensor([0])].shape[1:])
    shape = json.loads((directory / "config.json").read_text()).get("input_shape")
    if shape is None:
        raise ValueError(f"{directory}: cannot rebuild the model without its data; load with rebuild_data=True")
    return tuple(shape)


# -------------------------------------------------------------------- aggregation
def aggregate(records: Iterable[dict[str, Any]], by: list[str], metrics: list[str] | None = None,
              confidence: float = 0.95) -> pd.DataFrame:
    """Mean, std, count and a Student-t confidence half-width per group of `by` keys.

    >>> rows = [{"pos": "nearest", "r1": 0.8}, {"pos": "nearest", "r1": 0.9},
    ...         {"pos": "random", "r1": 0.5}, {"pos": "random", "r1": 0.7}]
    >>> table = aggregate(rows, by=["pos"], metrics=["r1"])
    >>> table[["pos", "r1_mean", "r1_n"]].round(3).values.tolist()
    [['nearest', 0.85, 2], ['random', 0.6, 2]]
    """
    frame = pd.DataFrame(list(records))
    if frame.empty:
        raise ValueError("aggregate: no records")
    missing = [key for key in by if key not in frame.columns]
    if missing:
        raise ValueError(f"aggregate: records have no column(s) {missing}; columns: {list(frame.columns)}")
    if metrics is None:
        metrics = [c for c in frame.columns if c not in by and pd.api.types.is_numeric_dtype(frame[c])]
    rows = []
    for key, group in frame.groupby(by, sort=True, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        row: dict[str, Any] = dict(zip(by, key))
        for metric in metrics:
            values = group[metric].dropna().to_numpy(dtype=float)
            n = len(values)
            mean = float(values.mean()) if n else math.nan
            std = float(values.std(ddof=1)) if n > 1 else 0.0
            row[f"{metric}_mean"] = mean
            row[f"{metric}_std"] = std
            row[f"{metric}_ci"] = _t_quantile(confidence, n - 1) * std / math.sqrt(n) if n > 1 else 0.0
            row[f"{metric}_n"] = n
        rows.append(row)
    return pd.DataFrame(rows)


def _t_quantile(confidence: float, dof: int) -> float:
    from scipy.stats import t

    return float(t.ppf(0.5 + confidence / 2, dof))


def _jsonable(values: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in values.items():
        if isinstance(value, (np.floating, np.integer)):
            value = value.item()
        if isinstance(value, Tensor):
            value = value.item()
        if isinstance(value, float) and not math.isfinite(value):
            value = None
        out[key] = value
    return out
