"""Named variants of one Config, trained over seeds, measured the same way: the lessons' tables.

    results = run_variants(Config(dataset="digits-parity", split="stratified", epochs=10),
                           {"random": {"positives": "random"}, "nearest": {"positives": "nearest"}},
                           seeds=(0, 1, 2))
    results.summary(["fine_recall@1", "recall@1"])      # mean, std, CI per variant
    results.readable(["fine_recall@1", "recall@1"])     # the same for people: "0.907 ± 0.012"
    results.difference("fine_recall@1", "nearest", "random")   # paired over seeds, lower bound

Every run is evaluated on its test split (never used for selection). Variants of one seed share
the split, the label noise and the model's initialisation (the seed fixes all three), so a claim
is read from the paired per-seed differences (`dmllab.claims`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import pandas as pd

from dmllab.claims import PairedDifference, paired_difference
from dmllab.config import Config
from dmllab.data.dataset import Dataset
from dmllab.metrics import evaluate
from dmllab.runs import Run, aggregate
from dmllab.train import fit, progress_bar


@dataclass
class Results:
    """One row per (variant, seed): the variant's name, the seed and every metric."""

    table: pd.DataFrame
    runs: dict[tuple[str, int], Run] = field(default_factory=dict)

    @property
    def variants(self) -> list[str]:
        return list(dict.fromkeys(self.table["variant"]))

    def summary(self, metrics: Sequence[str] | None = None, confidence: float = 0.95) -> pd.DataFrame:
        """Mean, std, CI half-width and count of each metric per variant (variants in run order)."""
        metrics = list(metrics) if metrics is not None else self.metric_names()
        table = aggregate(self.table.to_dict("records"), by=["variant"], metrics=metrics, confidence=confidence)
        order = {name: i for i, name in enumerate(self.variants)}
        return table.sort_values("variant", key=lambda s: s.map(order)).reset_index(drop=True)

    def readable(self, metrics: Sequence[str] | None = None, decimals: int = 3) -> pd.DataFrame:
        """The summary for people: one row per variant (the index), one text column per metric
        holding "mean ± std" over seeds rounded to `decimals`, then "seeds" (how many runs).

        The CI and count helper columns are left out; a metric with a single value shows its mean
        alone (no spread to show), one with no finite value an empty cell.
        Raises ValueError for an unknown metric (as `summary`)."""
        metrics = list(metrics) if metrics is not None else self.metric_names()
        unknown = [m for m in metrics if m not in self.metric_names()]
        if unknown:
            raise ValueError(f"no metric(s) {unknown}; metrics: {self.metric_names()}")
        summary = self.summary(metrics)
        table = pd.DataFrame(index=pd.Index(summary["variant"], name="variant"))
        for metric in metrics:
            table[metric] = [_mean_std(row[f"{metric}_mean"], row[f"{metric}_std"], row[f"{metric}_n"], decimals)
                             for _, row in summary.iterrows()]
        table["seeds"] = self.table.groupby("variant", sort=False)["seed"].nunique().reindex(table.index).to_numpy()
        return table

    def metric_names(self) -> list[str]:
        return [c for c in self.table.columns if c not in ("variant", "seed")
                and pd.api.types.is_numeric_dtype(self.table[c])]

    def difference(self, metric: str, better: str, worse: str, confidence: float = 0.95) -> PairedDifference:
        """better - worse on `metric`, paired by seed, with its one-sided lower confidence bound.

        Raises ValueError for an unknown variant or metric, or when the two variants were not run
        with the same seeds."""
        values = []
        for name in (better, worse):
            rows = self.table.loc[self.table["variant"] == name]
            if rows.empty:
                raise ValueError(f"no variant {name!r}; variants: {self.variants}")
            if metric not in rows:
                raise ValueError(f"no metric {metric!r}; metrics: {self.metric_names()}")
            values.append(rows.set_index("seed")[metric])
        repeated = [name for name, column in zip((better, worse), values) if column.index.duplicated().any()]
        if repeated:
            raise ValueError(f"variant(s) {repeated} hold a seed twice: a paired difference needs one value "
                             "per variant and seed")
        if set(values[0].index) != set(values[1].index):
            raise ValueError(f"variants {better!r} and {worse!r} were run with different seeds: "
                             f"{sorted(values[0].index)} vs {sorted(values[1].index)}")
        seeds = sorted(values[0].index)
        return paired_difference(values[0][seeds].tolist(), values[1][seeds].tolist(), metric=metric,
                                 names=(better, worse), confidence=confidence)

    def claims(self, comparisons: Sequence[tuple[str, str, str]], confidence: float = 0.95) -> pd.DataFrame:
        """One row per (metric, better, worse): the paired mean difference, its sd, the one-sided
        lower confidence bound and whether it clears zero, rounded for reading."""
        if not comparisons:
            raise ValueError("claims needs at least one (metric, better, worse) comparison")
        rows = [self.difference(metric, better, worse, confidence).as_row()
                for metric, better, worse in comparisons]
        return pd.DataFrame(rows)[["metric", "better", "worse", "mean", "sd", "lower", "n", "holds"]]

    def headline(self, metrics: Sequence[str], prefix: str = "",
                 claims: Sequence[tuple[str, str, str]] = ()) -> dict[str, float]:
        """Flat `{prefix}{variant}/{metric}` means and `..._std` seed spreads, for a metrics.json;
        for each claim (metric, better, worse) also `{prefix}{better} - {worse}/{metric}` (the
        paired mean difference) and `..._lower` (its 95% one-sided lower bound)."""
        summary = self.summary(metrics)
        out = {}
        for _, row in summary.iterrows():
            for metric in metrics:
                key = f"{prefix}{row['variant']}/{metric}"
                out[key] = float(row[f"{metric}_mean"])
                out[f"{key}_std"] = float(row[f"{metric}_std"])
        for metric, better, worse in claims:
            result = self.difference(metric, better, worse)
            key = f"{prefix}{better} - {worse}/{metric}"
            out[key] = result.mean
            out[f"{key}_lower"] = result.lower
        return out


def _mean_std(mean: float, std: float, n: int, decimals: int) -> str:
    """"0.907 ± 0.012"; "0.907" for a single value; "" when nothing was measured."""
    if n == 0 or not math.isfinite(mean):
        return ""
    text = f"{mean:.{decimals}f}"
    return text if n < 2 else f"{text} ± {std:.{decimals}f}"


def run_variants(base: Config, variants: Mapping[str, Mapping[str, Any]], seeds: Sequence[int] = (0, 1, 2), *,
                 dataset: Dataset | None = None, keep_runs: bool = False, progress: bool = True,
                 **evaluate_options: Any) -> Results:
    """Train `base` with each variant's field changes for each seed and evaluate on the test split.

    progress: one bar over variants x seeds (tqdm.auto: a widget in Jupyter, text on a terminal),
    its label naming the run in progress; off with progress=False or DMLLAB_PROGRESS=0 in the
    environment (`dmllab demo` sets it for the notebooks it executes).
    Raises ValueError for no variants, no seeds, a repeated seed (it would count one run as
    several paired seeds), a variant that sets `seed` (seeds come from `seeds`, so that every
    variant is paired with every other on the same ones) or an invalid variant, before anything
    trains."""
    if not variants:
        raise ValueError("run_variants needs at least one variant, e.g. {'baseline': {}}")
    if not seeds:
        raise ValueError("run_variants needs at least one seed")
    seeds = [int(seed) for seed in seeds]
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"run_variants: seeds {seeds} repeat a seed; a repeated run is not a new paired "
                         "sample, so give distinct seeds")
    seeded = sorted(name for name, changes in variants.items() if "seed" in changes)
    if seeded:
        raise ValueError(f"run_variants: variant(s) {', '.join(seeded)} set 'seed'; every variant runs on "
                         "`seeds` (so that variants are paired by seed): remove it from the variant")
    configs = {name: base.replace(**dict(changes)) for name, changes in variants.items()}  # validate all first
    rows, runs = [], {}
    jobs = [(name, config, seed) for name, config in configs.items() for seed in seeds]
    bar = progress_bar(jobs, progress, desc="runs", leave=True)
    for name, config, seed in bar:
        if hasattr(bar, "set_description"):
            bar.set_description(f"{name}, seed {seed}")
        run = fit(config.replace(seed=seed), dataset, progress=False)
        rows.append({"variant": name, "seed": seed, **evaluate(run, **evaluate_options)})
        if keep_runs:
            runs[(name, seed)] = run
    return Results(table=pd.DataFrame(rows), runs=runs)
