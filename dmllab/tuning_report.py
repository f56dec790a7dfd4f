"""The report of a tuning (`dmllab.experiments.tune`): an offline HTML page and a text summary.

`write_tuning_report(tuned)` writes `OUT/report.html`: each study's optimisation history and
parameter importances (Optuna's plotly figures; importances by fANOVA with a fixed seed), each
variant's best values, and the test metrics of the reproductions: mean ± 95% CI over seeds per
variant, and the paired difference of every variant against the first with its one-sided 95%
lower bound (the claim holds when it is above zero; `dmllab.claims`). plotly.js is written once
beside the page (`plotly.min.js`) and loaded by a relative `<script src>`: keep the two together.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from dmllab.experiments.results import mean_spread
from dmllab.experiments.tune import Tuned
from dmllab.records import replacing
from dmllab.report import PLOTLY_JS

METRICS = ("map@r", "recall@1")


def final_table(tuned: Tuned, metrics: Sequence[str] = METRICS) -> pd.DataFrame:
    """One row per variant: "mean ± 95% CI" of each test metric over the reproduction seeds."""
    if tuned.results is None:
        raise ValueError("the search was stopped before its reproductions; run it again")
    summary = tuned.results.summary(list(metrics))
    table = pd.DataFrame(index=pd.Index(summary["variant"], name="variant"))
    for metric in metrics:
        table[f"test {metric}"] = [
            mean_spread(row[f"{metric}_mean"], row[f"{metric}_ci"], row[f"{metric}_n"])
            for _, row in summary.iterrows()
        ]
    table["seeds"] = len(tuned.search.seeds)
    return table


def claims_table(tuned: Tuned, metrics: Sequence[str] = METRICS) -> pd.DataFrame | None:
    """The paired per-seed differences of every variant against the first, per metric (None
    with one variant or one seed: nothing to pair)."""
    if tuned.results is None or len(tuned.search.variants) < 2 or len(tuned.search.seeds) < 2:
        return None
    return tuned.results.claims([c for m in metrics for c in tuned.comparisons(m)])


def best_table(tuned: Tuned) -> pd.DataFrame:
    """Each variant's best searched values and validation score."""
    rows = {
        variant: {f"validation {tuned.search.metric}": tuned.best_values[variant], **params}
        for variant, params in tuned.best.items()
    }
    table = pd.DataFrame.from_dict(rows, orient="index").rename_axis("variant")
    for column in table.columns:  # an int field stays an int (3, not 3.0), also beside a gap
        given = [rows[v][column] for v in rows if column in rows[v]]
        if given and all(isinstance(x, int) and not isinstance(x, bool) for x in given):
            table[column] = table[column].astype("Int64")
    return table


def summary_text(tuned: Tuned, metrics: Sequence[str] = METRICS) -> str:
    """The best values, the test table and the paired differences, as text."""
    parts = ["best configurations (validation split):", best_table(tuned).to_string()]
    if tuned.results is not None:
        parts += ["", "retrained on the seeds, measured on the test split:"]
        parts.append(final_table(tuned, metrics).to_string())
        claims = claims_table(tuned, metrics)
        if claims is not None:
            parts += ["", "paired differences (95% one-sided lower bound):", claims.to_string()]
    return "\n".join(parts)


def write_tuning_report(
    tuned: Tuned, path: str | Path | None = None, metrics: Sequence[str] = METRICS
) -> Path:
    """Write the report page (default `OUT/report.html`) and `plotly.min.js` beside it."""
    import plotly.io as pio
    from optuna.importance import FanovaImportanceEvaluator
    from optuna.visualization import plot_optimization_history, plot_param_importances
    from plotly.offline import get_plotlyjs

    path = Path(path) if path is not None else tuned.search.out / "report.html"
    title = f"tuning: {tuned.search.name}"
    parts = [
        f"<h1>{html.escape(title)}</h1>",
        (
            f"<p>{len(tuned.search.variants)} studies of {tuned.search.trials} trials each, "
            f"objective: {html.escape(tuned.search.metric)} on the validation split; study "
            f"database <code>{html.escape(tuned.storage)}</code>.</p>"
        ),
    ]
    if tuned.best:
        parts += [
            "<h2>Best configurations</h2>",
            best_table(tuned).to_html(float_format=lambda v: f"{v:.4g}"),
        ]
    if tuned.results is not None:
        parts += [
            "<h2>Test split (each best configuration retrained on every seed)</h2>",
            final_table(tuned, metrics).to_html(),
        ]
        claims = claims_table(tuned, metrics)
        if claims is not None:
            parts += ["<h3>Paired differences</h3>", claims.to_html(index=False)]
    else:
        parts.append("<p>Stopped before the reproductions: run the same search again.</p>")
    for variant, study in tuned.studies().items():
        parts.append(f"<h2>Study {html.escape(study.study_name)}</h2>")
        figures = [plot_optimization_history(study)]
        try:
            figures.append(
                plot_param_importances(study, evaluator=FanovaImportanceEvaluator(seed=0))
            )
        except (ValueError, RuntimeError) as error:  # too few complete trials, one value each
            parts.append(
                f"<p>No parameter importances for {html.escape(variant)}: "
                f"{html.escape(str(error))}</p>"
            )
        parts += [
            pio.to_html(figure, full_html=False, include_plotlyjs=False) for figure in figures
        ]
    with replacing(path.parent / PLOTLY_JS) as temporary:
        temporary.write_text(get_plotlyjs(), encoding="utf-8")
    page = (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title>"
        f'<script src="{PLOTLY_JS}" charset="utf-8"></script></head><body>'
        + "\n".join(parts)
        + "</body></html>"
    )
    with replacing(path) as temporary:
        temporary.write_text(page, encoding="utf-8")
    return path
