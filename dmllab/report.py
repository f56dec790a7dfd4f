"""Lesson outputs and the HTML report that collects them.

A notebook run with `output_dir` set calls `save_lesson_outputs(output_dir, metrics, figures)`:

    output_dir/metrics.json            headline numbers (flat dict of floats)
    output_dir/figures/<name>.json     plotly figures (plotly's JSON)
    output_dir/figures/<name>.png      matplotlib figures

`write_report(directory, lessons)` turns a demo directory into an offline `report.html`: each
lesson's headline table, its figures, and a link to the executed notebook. plotly.js is written
once beside it (`plotly.min.js`, copied from the plotly package) and loaded by a relative
`<script src>`, so the page stays small; keep the two files together.
"""

from __future__ import annotations

import base64
import html
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import pandas as pd


PLOTLY_JS = "plotly.min.js"


def save_lesson_outputs(output_dir: str | Path | None, metrics: Mapping[str, Any],
                        figures: Mapping[str, Any] | None = None) -> Path | None:
    """Write `metrics.json` (and figures) under `output_dir`; does nothing when it is None."""
    if output_dir is None:
        return None
    directory = Path(output_dir)
    directory.mkdir(parents=True, exist_ok=True)
    clean = {}
    for key, value in metrics.items():
        value = float(value)
        clean[str(key)] = value if math.isfinite(value) else None
    (directory / "metrics.json").write_text(json.dumps(clean, indent=2, sort_keys=True))
    if figures:
        folder = directory / "figures"
        folder.mkdir(exist_ok=True)
        for name, figure in figures.items():
            if hasattr(figure, "to_json"):  # plotly
                (folder / f"{name}.json").write_text(figure.to_json())
            elif hasattr(figure, "savefig"):  # matplotlib
                figure.savefig(folder / f"{name}.png", dpi=110, bbox_inches="tight")
            else:
                raise TypeError(f"figure {name!r} is neither a plotly nor a matplotlib figure: {type(figure)}")
    return directory


@dataclass
class LessonResult:
    """One executed lesson: its name, the executed notebook, its output directory, an error if any."""

    name: str
    notebook: Path
    output_dir: Path
    seconds: float = math.nan
    error: str | None = None

    @property
    def metrics(self) -> dict[str, float]:
        path = self.output_dir / "metrics.json"
        return json.loads(path.read_text()) if path.exists() else {}


def metrics_table(metrics: Mapping[str, float]) -> pd.DataFrame:
    """`variant/metric` keys become a variants x metrics table; plain keys one row named '-'."""
    rows: dict[str, dict[str, float]] = {}
    for key, value in metrics.items():
        variant, _, metric = key.rpartition("/")
        rows.setdefault(variant or "-", {})[metric] = value
    return pd.DataFrame.from_dict(rows, orient="index")


def write_report(directory: str | Path, lessons: list[LessonResult], title: str = "dmllab demo") -> Path:
    """Write `directory/report.html` (headline tables, figures and links) and the plotly.js it
    loads, `directory/plotly.min.js`; both work offline."""
    import plotly.io as pio
    from plotly.offline import get_plotlyjs

    directory = Path(directory)
    parts = [f"<h1>{html.escape(title)}</h1>", _summary_table(lessons, directory)]
    plotly_js_needed = False
    for lesson in lessons:
        parts.append(f'<h2 id="{html.escape(lesson.name)}">{html.escape(lesson.name)}</h2>')
        link = lesson.notebook.relative_to(directory) if lesson.notebook.is_relative_to(directory) else lesson.notebook
        parts.append(f'<p>Executed notebook: <a href="{html.escape(str(link))}">{html.escape(str(link))}</a>'
                     f" ({lesson.seconds:.0f} s)</p>")
        if lesson.error:
            parts.append(f'<pre class="error">{html.escape(lesson.error)}</pre>')
        metrics = lesson.metrics
        if metrics:
            parts.append(metrics_table(metrics).to_html(float_format=lambda v: f"{v:.3f}", na_rep="",
                                                        classes="metrics"))
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
        (directory / PLOTLY_JS).write_text(get_plotlyjs(), encoding="utf-8")
        script = f'<script src="{PLOTLY_JS}" charset="utf-8"></script>'
    page = ("<!doctype html><html><head><meta charset='utf-8'>"
            f"<title>{html.escape(title)}</title><style>{_STYLE}</style>{script}</head><body>"
            + "\n".join(parts) + "</body></html>")
    path = directory / "report.html"
    path.write_text(page)
    return path


def _summary_table(lessons: list[LessonResult], directory: Path) -> str:
    rows = "".join(
        f"<tr><td><a href='#{html.escape(l.name)}'>{html.escape(l.name)}</a></td>"
        f"<td>{'error' if l.error else 'ok'}</td><td>{l.seconds:.0f}</td><td>{len(l.metrics)}</td></tr>"
        for l in lessons)
    return ("<table class='metrics'><tr><th>lesson</th><th>status</th><th>seconds</th><th>numbers</th></tr>"
            f"{rows}</table>")


_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; color: #222; }
table.metrics { border-collapse: collapse; margin: 1em 0; }
table.metrics td, table.metrics th { border: 1px solid #ccc; padding: 4px 8px; text-align: right; }
pre.error { background: #fee; padding: 1em; overflow-x: auto; }
img { max-width: 100%; }
"""
