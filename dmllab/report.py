"""The reports: lesson outputs and the demo's HTML page that collects them, and a sweep's table.

A notebook run with `output_dir` set calls `save_lesson_outputs(output_dir, metrics, figures)`:

    output_dir/metrics.json            headline numbers (flat dict of floats)
    output_dir/findings.json           its rendered "What we saw" texts and the verdicts in them
    output_dir/figures/<name>.json     plotly figures (plotly's JSON)
    output_dir/figures/<name>.png      matplotlib figures

`write_report(directory, lessons)` turns a demo directory into an offline `report.html`: each
lesson's headline table, its figures, and a link to the executed notebook. plotly.js is written
once beside it (`plotly.min.js`, copied from the plotly package) and loaded by a relative
`<script src>`, so the page stays small; keep the two files together.

`report_sweep(directory)` summarises a sweep folder: its finished cells read as `Results` (the
table the lessons use, `Results.from_cells`), written as `results.csv` (every metric),
`results.html` and a text table of mean ± 95% CI per configuration (by default the headline
metrics; in long form, one row per metric and configuration, when a wide one would not fit in
TEXT_WIDTH characters).
"""

from __future__ import annotations

import base64
import html
import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from dmllab.experiments.cells import finished_cells_of
from dmllab.experiments.grid import GridError
from dmllab.experiments.plan import VARIANT
from dmllab.experiments.results import Results, mean_spread
from dmllab.findings import rendered
from dmllab.lessons import LessonResult
from dmllab.paths import printable
from dmllab.records import json_numbers, replacing
from dmllab.values import BadValue, canonical

PLOTLY_JS = "plotly.min.js"


def save_lesson_outputs(
    output_dir: str | Path | None,
    metrics: Mapping[str, Any],
    figures: Mapping[str, Any] | None = None,
) -> Path | None:
    """Write the figures, the findings this kernel rendered (`findings.json`: a list of
    `{"text": markdown, "verdicts": [...]}` from `dmllab.findings.rendered()`, for the tests that
    check a lesson's words against its numbers), then `metrics.json`, under `output_dir`; does
    nothing when it is None.

    Each file is written to a temporary name and renamed into place (complete or absent)."""
    if output_dir is None:
        return None
    directory = Path(output_dir)
    directory.mkdir(parents=True, exist_ok=True)
    clean = json_numbers({str(key): float(value) for key, value in metrics.items()})
    if figures:
        folder = directory / "figures"
        folder.mkdir(exist_ok=True)
        for name, figure in figures.items():
            if hasattr(figure, "to_json"):  # plotly
                with replacing(folder / f"{name}.json") as path:
                    path.write_text(figure.to_json())
            elif hasattr(figure, "savefig"):  # matplotlib
                with replacing(folder / f"{name}.png") as path:
                    figure.savefig(path, format="png", dpi=110, bbox_inches="tight")
            else:
                raise TypeError(
                    f"figure {name!r} is neither a plotly nor a matplotlib figure: {type(figure)}"
                )
    texts = [{"text": found.data, "verdicts": found.verdicts} for found in rendered()]
    if texts:
        with replacing(directory / "findings.json") as path:
            path.write_text(json.dumps(texts, indent=2))
    with replacing(
        directory / "metrics.json"
    ) as path:  # last: a lesson's outputs are there when it is
        path.write_text(json.dumps(clean, indent=2, sort_keys=True))
    return directory


def _metrics_table(metrics: Mapping[str, float]) -> pd.DataFrame:
    """`variant/metric` keys become a variants x metrics table; plain keys one row named '-'."""
    rows: dict[str, dict[str, float]] = {}
    for key, value in metrics.items():
        variant, _, metric = key.rpartition("/")
        rows.setdefault(variant or "-", {})[metric] = value
    return pd.DataFrame.from_dict(rows, orient="index")


def _number(value: float) -> str:
    """A headline number for reading: a count as an integer, a small value with three
    significant digits (an asymmetry of 8e-05 is not 0.000), anything else with three decimals."""
    if not math.isfinite(value):
        return str(value)
    if value == int(value) and abs(value) < 1e15:
        return f"{int(value)}"
    if abs(value) < 0.001:
        return f"{value:.3g}"
    return f"{value:.3f}"


def write_report(
    directory: str | Path, lessons: list[LessonResult], title: str = "dmllab demo"
) -> Path:
    """Write `directory/report.html` (headline tables, figures and links) and the plotly.js it
    loads, `directory/plotly.min.js`; both work offline."""
    import plotly.io as pio
    from plotly.offline import get_plotlyjs

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    parts = [f"<h1>{html.escape(title)}</h1>", _summary_table(lessons)]
    plotly_js_needed = False
    for lesson in lessons:
        parts.append(f'<h2 id="{html.escape(lesson.name)}">{html.escape(lesson.name)}</h2>')
        link = (
            lesson.notebook.relative_to(directory)
            if lesson.notebook.is_relative_to(directory)
            else lesson.notebook
        )
        parts.append(
            f'<p>Executed notebook: <a href="{html.escape(str(link))}">{html.escape(str(link))}</a>'
            f" ({lesson.seconds:.0f} s)</p>"
        )
        if lesson.error:
            parts.append(f'<pre class="error">{html.escape(lesson.error)}</pre>')
        metrics = lesson.metrics
        if metrics:
            table = _metrics_table(metrics).to_html(
                float_format=_number, na_rep="", classes="metrics"
            )  # a wide table scrolls in its own box, not the page
            parts.append(f'<div class="wide">{table}</div>')
        figures = lesson.output_dir / "figures"
        for path in sorted(figures.glob("*.json")) if figures.exists() else []:
            figure = pio.from_json(path.read_text())
            parts.append(pio.to_html(figure, full_html=False, include_plotlyjs=False))
            plotly_js_needed = True
        for path in sorted(figures.glob("*.png")) if figures.exists() else []:
            data = base64.b64encode(path.read_bytes()).decode()
            parts.append(f'<img alt="{html.escape(path.stem)}" src="data:image/png;base64,{data}">')
    script = ""
    if plotly_js_needed:
        with replacing(directory / PLOTLY_JS) as temporary:
            temporary.write_text(get_plotlyjs(), encoding="utf-8")
        script = f'<script src="{PLOTLY_JS}" charset="utf-8"></script>'
    page = (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style>{script}</head><body>"
        + "\n".join(parts)
        + "</body></html>"
    )
    path = directory / "report.html"
    with replacing(path) as temporary:
        temporary.write_text(printable(page))  # a file name of any bytes as \x escapes
    return path


def _summary_table(lessons: list[LessonResult]) -> str:
    rows = "".join(
        f"<tr><td><a href='#{html.escape(lesson.name)}'>{html.escape(lesson.name)}</a></td>"
        f"<td>{'error' if lesson.error else 'ok'}</td><td>{lesson.seconds:.0f}</td>"
        f"<td>{len(lesson.metrics)}</td></tr>"
        for lesson in lessons
    )
    return (
        "<table class='metrics'><tr><th>lesson</th><th>status</th>"
        "<th>seconds</th><th>numbers</th></tr>"
        f"{rows}</table>"
    )


_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; color: #222; }
table.metrics { border-collapse: collapse; margin: 1em 0; }
table.metrics td, table.metrics th { border: 1px solid #ccc; padding: 4px 8px; text-align: right; }
pre.error { background: #fee; padding: 1em; overflow-x: auto; }
div.wide { overflow-x: auto; max-width: 100%; }
img { max-width: 100%; }
"""


# --------------------------------------------------------------------------- sweep results
HEADLINE_METRICS = (
    "recall@1",
    "map@r",
    "nmi",
    "fine_recall@1",
    "memorisation",
    "prototype_accuracy",
)
HELPER_SUFFIXES = ("_std", "_lower", "_upper", "_ci", "_n")
"""Endings of the keys a lesson's metrics.json holds beside its headline numbers (seed spreads,
confidence bounds, counts): left out of the default text table, kept in results.csv."""
TEXT_WIDTH = 160
"""A wide text table whose lines reach this many characters is printed in long form."""


def report_sweep(directory: Path | Sequence[Path], metrics: list[str] | None = None) -> str:
    """`dmllab report DIR [DIR ...]`: the finished cells of the sweep folder `directory` (or of
    several folders holding shards of one sweep, merged: `cells.finished_cells_of`) summarised
    over seeds per configuration into `results.csv` and `results.html` (in the folder, or in the
    folders' common parent: `results_folder`); returns the table as text. Prints one line per
    cell folder left out.

    Raises GridError when a folder does not exist, holds no finished cell or its
    cells come from different sweeps, BadValue for a metric of `metrics` the cells do not hold."""
    folders = [directory] if isinstance(directory, Path) else list(directory)
    for folder in folders:
        if not folder.is_dir():
            raise GridError(f"{folder}: no such folder")
    cells, skipped = finished_cells_of(folders)
    for line in skipped:
        print(f"skipped {line}")
    if not cells:
        raise GridError(
            f"{', '.join(map(str, folders))}: no finished cells (folders with an intact "
            "cell.json) found"
        )
    return _write_sweep_results(results_folder(folders), Results.from_cells(cells), metrics)


def results_folder(folders: Sequence[Path]) -> Path:
    """Where the report of a sweep's folders goes: the folder itself, or the common parent of
    several (`runs/` for `runs/sweep-0 runs/sweep-1`)."""
    if len(folders) == 1:
        return folders[0]
    return Path(os.path.commonpath([folder.resolve() for folder in folders]))


def _write_sweep_results(
    directory: Path, results: Results, metrics: list[str] | None = None
) -> str:
    """Summarise a sweep's results (`Results.from_cells`) over seeds per configuration of its
    parameters, write `results.csv` (every numeric metric) and `results.html` (the `metrics`)
    into `directory`, and return the `metrics` as text: "mean ± 95% CI (n=seeds)" per metric and
    configuration, the mean alone for a single seed (a sweep without parameters: one row per
    seed). The text is wide (one column per metric) while its lines stay under TEXT_WIDTH
    characters; else, for a sweep over parameters, side by side (one row per metric, one column
    per configuration, then each configuration's paired difference from the first, the lab's
    claim rule: `_side_by_side`) while that fits; else long (one row per metric and
    configuration).

    `metrics` defaults to the headline ones present, else every measured numeric one that is no
    helper key (`HELPER_SUFFIXES`). Parameter values may be any JSON value (shown as JSON);
    every value is escaped in the HTML.
    Raises BadValue for a metric of `metrics` the results do not hold, ValueError when there is
    no metric to tabulate."""
    params = results.factors
    keys = params or ["seed"]
    available = results.metric_names()
    if metrics:
        unknown = [m for m in metrics if m not in available]
        if unknown:
            raise BadValue(
                f"--metric: no metric(s) {unknown} in the cells of {directory}; "
                f"metrics: {available}"
            )
    else:
        metrics = _default_metrics(results)
    if not metrics:
        raise ValueError(f"{directory}: the finished cells hold no numeric metrics to tabulate")
    table = results.summary(list(dict.fromkeys([*metrics, *available])), by=keys)
    layouts = [
        lambda: _wide(table, keys, metrics),
        *([lambda: _side_by_side(results, table, metrics)] if params else []),
        lambda: _long(table, keys, metrics),
    ]
    for layout in layouts:
        shown = layout()
        text = shown.to_string(index=False)
        if max(map(len, text.splitlines())) < TEXT_WIDTH:
            break
    table.assign(**{p: table[p].map(_as_text) for p in params}).to_csv(
        directory / "results.csv", index=False
    )
    _write_results_html(directory / "results.html", table, shown, params, metrics)
    return text


def _default_metrics(results: Results) -> list[str]:
    """The headline metrics present; else every measured numeric one but the helper keys (all of
    them when nothing else is there), sorted."""
    headline = [m for m in HEADLINE_METRICS if m in results.table.columns]
    if headline:
        return headline
    measured = sorted(m for m in results.metric_names() if results.table[m].notna().any())
    return [m for m in measured if not m.endswith(HELPER_SUFFIXES)] or measured


def _as_text(value: Any) -> str:
    """A parameter value as shown in tables: strings as they are, anything else as JSON."""
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def _mean_ci(mean: float, ci: float, n: int) -> str:
    """ "0.852 ± 0.054 (n=3)"; "0.600 (n=1)" for a single value (no spread); "" for none."""
    text = mean_spread(mean, ci, n)
    return f"{text} (n={n})" if text else ""


def _cells(table: pd.DataFrame, metric: str) -> list[str]:
    """`metric` per row of the summary `table`, as `_mean_ci` text."""
    return [
        _mean_ci(m, c, n)
        for m, c, n in zip(
            table[f"{metric}_mean"], table[f"{metric}_ci"], table[f"{metric}_n"], strict=True
        )
    ]


def _wide(table: pd.DataFrame, keys: list[str], metrics: list[str]) -> pd.DataFrame:
    """One row per configuration: its `keys`, then one column per metric."""
    shown = pd.DataFrame({k: table[k].map(_as_text) for k in keys})
    for metric in metrics:
        shown[metric] = _cells(table, metric)
    return shown


def _side_by_side(results: Results, table: pd.DataFrame, metrics: list[str]) -> pd.DataFrame:
    """One row per metric (`metric`, padded so that the text table aligns it left), one column
    per configuration of the summary `table` ("mean ± 95% CI (n=seeds)"), then for each
    configuration after the first its paired difference from the first, paired by seed
    (`Results.difference`): "+0.012 (+0.004, +0.020)", the mean difference and its one-sided 95%
    lower and upper bounds (a claim holds when the lower one clears zero); the mean alone for a
    single seed; nothing where the two were not run with the same seeds."""
    variants = {
        canonical([row[name] for name in results.factors]): row[VARIANT]
        for _, row in results.table.drop_duplicates(VARIANT).iterrows()
    }
    labels, names = [], []
    for row in table[results.factors].itertuples(index=False):
        labels.append(
            ", ".join(f"{k}={_as_text(v)}" for k, v in zip(results.factors, row, strict=True))
        )
        names.append(variants[canonical(list(row))])
    width = max(len("metric"), *map(len, metrics))
    shown = pd.DataFrame({"metric".ljust(width): [m.ljust(width) for m in metrics]})
    for i, label in enumerate(labels):
        shown[label] = [_cells(table, metric)[i] for metric in metrics]
    for label, name in zip(labels[1:], names[1:], strict=True):
        shown[f"{label} - {labels[0]}"] = [
            _paired_text(results, metric, name, names[0]) for metric in metrics
        ]
    return shown


def _paired_text(results: Results, metric: str, better: str, worse: str) -> str:
    """ "+0.012 (+0.004, +0.020)": better - worse paired by seed with its one-sided 95% bounds;
    "+0.012 (n=1)" for one seed; "" when the seeds differ or a value is missing."""
    rows = results.table[results.table[VARIANT].isin([better, worse])]
    if rows[metric].isna().any():
        return ""
    try:
        difference = results.difference(metric, better, worse)
    except ValueError:  # one seed (no bound) or unpaired seeds
        values = rows.set_index(VARIANT)[metric]
        if len(rows) == 2 and rows["seed"].nunique() == 1:
            return f"{values[better] - values[worse]:+.3f} (n=1)"
        return ""
    return f"{difference.mean:+.3f} ({difference.lower:+.3f}, {difference.upper:+.3f})"


def _long(table: pd.DataFrame, keys: list[str], metrics: list[str]) -> pd.DataFrame:
    """One row per metric and configuration (the configurations of one metric together):
    `metric` (padded, so that the text table aligns it left), the configuration's `keys`, then
    "mean ± 95% CI (n=seeds)"."""
    width = max(len("metric"), *map(len, metrics))
    configurations = [[_as_text(v) for v in row] for row in table[keys].itertuples(index=False)]
    rows = [
        [metric.ljust(width), *configuration, cell]
        for metric in metrics
        for configuration, cell in zip(configurations, _cells(table, metric), strict=True)
    ]
    return pd.DataFrame(rows, columns=["metric".ljust(width), *keys, "mean ± 95% CI"])


def _write_results_html(
    path: Path, table: pd.DataFrame, shown: pd.DataFrame, params: list[str], metrics: list[str]
) -> None:
    import plotly.graph_objects as go

    # plotly renders a subset of HTML in labels (<a href>, <b>, ...): escaped, they show as text
    labels = (
        [
            html.escape(", ".join(_as_text(v) for v in row))
            for row in table[params].itertuples(index=False)
        ]
        if params
        else [str(i) for i in table.index]
    )
    figure = go.Figure(
        [
            go.Bar(
                name=html.escape(m),
                x=labels,
                y=table[f"{m}_mean"].to_numpy(),
                error_y={"type": "data", "array": table[f"{m}_ci"].to_numpy()},
            )
            for m in metrics
        ]
    )
    figure.update_layout(barmode="group", title="mean ± 95% CI over seeds", yaxis_title="value")
    with replacing(path) as temporary:
        temporary.write_text(
            printable(  # a path of any bytes among the parameters as \x escapes
                "<!doctype html><html><head><meta charset='utf-8'><title>dmllab results</title>"
                f"</head><body>{shown.to_html(index=False, escape=True)}"
                f"{figure.to_html(full_html=False, include_plotlyjs=True)}</body></html>"
            )
        )
