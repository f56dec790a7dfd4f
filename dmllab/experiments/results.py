"""An experiment's results: one row per job (variant x seed), its factors kept as columns.

    results = run_variants(Config(dataset="digits-parity", split="stratified", epochs=10),
                           {"random": {"positives": "random"}, "nearest": {"positives": "nearest"}},
                           seeds=(0, 1, 2))
    results.summary(["fine_recall@1", "recall@1"])      # mean, std, CI per variant
    results.readable(["fine_recall@1", "recall@1"])     # the same for people: "0.907 ± 0.012"
    results.difference("fine_recall@1", "nearest", "random")   # paired over seeds, lower bound

The table's columns: `variant` (the variant's name), one column per factor of the plan (the value
or level name of each job), `seed`, then every metric. The same table comes from a run in this
process (`run_plan`, `run_variants`) and from a sweep folder's finished cells (`from_cells`), so
a lesson and `dmllab report` summarise alike. Every run is evaluated on its test split (never
used for selection). Variants of one seed share their data: the seed fixes a synthetic data set's
draw, a stratified split, the label noise, the model's initialisation and the batch sampling. A
class-disjoint split does not depend on the seed (the first classes in sorted order, or a data
set's standard split), so every seed tests on the same classes. A claim is read from the paired
per-seed differences (`dmllab.claims`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd

from dmllab.claims import PairedDifference, paired_difference
from dmllab.experiments.plan import VARIANT, level_name, variant_name
from dmllab.runs import Run, aggregate
from dmllab.values import canonical

if TYPE_CHECKING:
    from dmllab.experiments.cells import Finished


@dataclass
class Results:
    """One row per job: `variant`, one column per factor (`factors`), `seed` and every metric.

    runs: the trained Runs by (variant, seed), when the runner was asked to keep them."""

    table: pd.DataFrame
    runs: dict[tuple[str, int], Run] = field(default_factory=dict)
    factors: list[str] = field(default_factory=list)

    @classmethod
    def from_rows(
        cls,
        rows: Sequence[Mapping[str, Any]],
        factors: Sequence[str] = (),
        runs: dict[tuple[str, int], Run] | None = None,
    ) -> Results:
        """A table of `rows` (`variant`, each factor, `seed`, metrics); factor values are kept as
        given (no 1 -> 1.0 or None -> NaN), metrics that JSON stored as None read as NaN."""
        factors = list(factors)
        table = pd.DataFrame(
            [
                {
                    key: math.nan if value is None and key not in factors else value
                    for key, value in row.items()
                }
                for row in rows
            ]
        )
        for name in factors:
            table[name] = pd.Series([row[name] for row in rows], dtype=object, index=table.index)
        return cls(table=table, runs=dict(runs or {}), factors=factors)

    @classmethod
    def from_cells(cls, cells: Sequence[Finished]) -> Results:
        """The results of a sweep's finished cells (`cells.finished_cells`): one row per cell,
        its parameters as the factors (in sorted order, as the grid crosses them), in the cells'
        order."""
        factors = sorted({name for cell in cells for name in cell.params} - {"seed"})
        rows = [
            {
                VARIANT: variant_name([level_name(cell.params[name]) for name in factors]),
                **{name: cell.params[name] for name in factors},
                "seed": cell.params["seed"],
                **cell.metrics,
            }
            for cell in cells
        ]
        return cls.from_rows(rows, factors)

    @property
    def variants(self) -> list[str]:
        return list(dict.fromkeys(self.table[VARIANT]))

    def summary(
        self,
        metrics: Sequence[str] | None = None,
        confidence: float = 0.95,
        by: Sequence[str] | None = None,
    ) -> pd.DataFrame:
        """Mean, std, CI half-width and count of each metric per variant (variants in run order),
        with each factor's value beside it; or per group of the columns `by` (sorted by them).
        Std and CI are NaN for a single seed (`dmllab.runs.aggregate`)."""
        metrics = list(metrics) if metrics is not None else self.metric_names()
        by = list(by) if by is not None else [VARIANT, *self.factors]
        table = aggregate(
            self.table.to_dict("records"), by=by, metrics=metrics, confidence=confidence
        )
        if VARIANT not in by:
            return table
        order = {name: i for i, name in enumerate(self.variants)}
        return table.sort_values(VARIANT, key=lambda s: s.map(order)).reset_index(drop=True)

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
        table = pd.DataFrame(index=pd.Index(summary[VARIANT], name=VARIANT))
        for metric in metrics:
            table[metric] = [
                mean_spread(
                    row[f"{metric}_mean"], row[f"{metric}_std"], row[f"{metric}_n"], decimals
                )
                for _, row in summary.iterrows()
            ]
        table["seeds"] = (
            self.table.groupby(VARIANT, sort=False)["seed"]
            .nunique()
            .reindex(table.index)
            .to_numpy()
        )
        return table

    def metric_names(self) -> list[str]:
        """The numeric columns that are neither the variant, a factor nor the seed."""
        return [
            c
            for c in self.table.columns
            if c not in (VARIANT, "seed", *self.factors)
            and pd.api.types.is_numeric_dtype(self.table[c])
            and not pd.api.types.is_bool_dtype(self.table[c])
        ]

    def difference(
        self, metric: str, better: str, worse: str, confidence: float = 0.95
    ) -> PairedDifference:
        """better - worse on `metric`, paired by seed, with its one-sided lower confidence bound.

        Raises ValueError for an unknown variant or metric, or when the two variants were not run
        with the same seeds."""
        values = []
        for name in (better, worse):
            rows = self.table.loc[self.table[VARIANT] == name]
            if rows.empty:
                raise ValueError(f"no variant {name!r}; variants: {self.variants}")
            if metric not in rows:
                raise ValueError(f"no metric {metric!r}; metrics: {self.metric_names()}")
            values.append(rows.set_index("seed")[metric])
        repeated = [
            name
            for name, column in zip((better, worse), values, strict=True)
            if column.index.duplicated().any()
        ]
        if repeated:
            raise ValueError(
                f"variant(s) {repeated} hold a seed twice: a paired difference needs one value "
                "per variant and seed"
            )
        if set(values[0].index) != set(values[1].index):
            raise ValueError(
                f"variants {better!r} and {worse!r} were run with different seeds: "
                f"{sorted(values[0].index)} vs {sorted(values[1].index)}"
            )
        seeds = sorted(values[0].index)
        return paired_difference(
            values[0][seeds].tolist(),
            values[1][seeds].tolist(),
            metric=metric,
            names=(better, worse),
            confidence=confidence,
        )

    def contrasts(
        self, metric: str, factor: str, better: Any, worse: Any
    ) -> list[tuple[str, str, str]]:
        """(metric, variant, variant) comparisons of two levels of one factor, one for each
        combination of the other factors' levels (in run order), everything else held fixed: the
        comparisons `claims`, `headline` and `difference` read, paired by seed.

        >>> rows = [{"variant": f"{p}-{g}", "positives": p, "geometry": g, "seed": 0, "m": 0.0}
        ...         for p in ("random", "nearest") for g in ("euclidean", "bregman")]
        >>> results = Results.from_rows(rows, ["positives", "geometry"])
        >>> results.contrasts("m", "positives", "nearest", "random")
        [('m', 'nearest-euclidean', 'random-euclidean'), ('m', 'nearest-bregman', 'random-bregman')]

        Raises ValueError for an unknown metric or factor, and for a level missing from a
        context."""
        if metric not in self.metric_names():
            raise ValueError(f"no metric {metric!r}; metrics: {self.metric_names()}")
        if factor not in self.factors:
            raise ValueError(f"no factor {factor!r}; factors: {self.factors}")
        others = [name for name in self.factors if name != factor]
        contexts: dict[str, dict[str, str]] = {}
        for _, row in self.table.drop_duplicates(VARIANT).iterrows():
            context = canonical([row[name] for name in others])
            contexts.setdefault(context, {})[canonical(row[factor])] = row[VARIANT]
        comparisons = []
        for context, variants in contexts.items():
            missing = [level for level in (better, worse) if canonical(level) not in variants]
            if missing:
                raise ValueError(
                    f"no variant with {factor}={missing[0]!r} "
                    f"where {', '.join(others)} = {context}; "
                    f"levels there: {sorted(variants)}"
                )
            comparisons.append((metric, variants[canonical(better)], variants[canonical(worse)]))
        return comparisons

    def claims(
        self, comparisons: Sequence[tuple[str, str, str]], confidence: float = 0.95
    ) -> pd.DataFrame:
        """One row per (metric, better, worse): the paired mean difference, its sd, its one-sided
        lower and upper confidence bounds and the verdict they give (`dmllab.claims.verdict`:
        "higher" when the lower bound clears zero, "lower" when the upper bound is below zero,
        else "undecided"), rounded for reading."""
        if not comparisons:
            raise ValueError("claims needs at least one (metric, better, worse) comparison")
        differences = [
            self.difference(metric, better, worse, confidence)
            for metric, better, worse in comparisons
        ]
        rows = [{**d.as_row(), "verdict": d.verdict} for d in differences]
        return pd.DataFrame(rows)[
            ["metric", "better", "worse", "mean", "sd", "lower", "upper", "n", "verdict"]
        ]

    def headline(
        self, metrics: Sequence[str], prefix: str = "", claims: Sequence[tuple[str, str, str]] = ()
    ) -> dict[str, float]:
        """Flat `{prefix}{variant}/{metric}` means and `..._std` seed spreads, for a metrics.json;
        for each claim (metric, better, worse) also `{prefix}{better} - {worse}/{metric}` (the
        paired mean difference), `..._lower` and `..._upper` (its 95% one-sided lower and upper
        bounds, which a lesson's verdicts read). A variant run with one seed has no spread: its
        `..._std` is NaN (null in metrics.json)."""
        summary = self.summary(metrics)
        out = {}
        for _, row in summary.iterrows():
            for metric in metrics:
                key = f"{prefix}{row[VARIANT]}/{metric}"
                out[key] = float(row[f"{metric}_mean"])
                out[f"{key}_std"] = float(row[f"{metric}_std"])
        for metric, better, worse in claims:
            result = self.difference(metric, better, worse)
            key = f"{prefix}{better} - {worse}/{metric}"
            out[key] = result.mean
            out[f"{key}_lower"] = result.lower
            out[f"{key}_upper"] = result.upper
        return out


def mean_spread(mean: float, spread: float, n: int, decimals: int = 3) -> str:
    """A summarised metric for people: "0.907 ± 0.012" (the spread: a std or a CI half-width);
    "0.907" for a single value (no spread to show); "" when nothing was measured."""
    if n == 0 or not math.isfinite(mean):
        return ""
    text = f"{mean:.{decimals}f}"
    return text if n < 2 else f"{text} ± {spread:.{decimals}f}"
