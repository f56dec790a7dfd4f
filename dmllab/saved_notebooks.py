"""Executed notebooks saved for reading: small, and showing pictures instead of dead widgets.

papermill (through nbclient) stores every widget's state in the notebook's metadata; for a plotly
FigureWidget that state carries anywidget's ~5 MB JavaScript bundle, so one lesson with a panel
weighed 10 MB. A saved notebook has no kernel to drive those widgets anyway, so `make_static`
drops the widget state and each output's widget view, keeping the static fallback every output
already carries (plotly JSON, HTML or text; see `dmllab.viz.live`).

    before, after = make_static("out/00_tour.ipynb")     # sizes in bytes
"""

from __future__ import annotations

from pathlib import Path

from dmllab.records import replacing

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def make_static(path: str | Path) -> tuple[int, int]:
    """Rewrite the notebook at `path` without widget state or widget views; returns its size in
    bytes before and after. Raises FileNotFoundError if there is no such file and
    nbformat.ValidationError if it is not a notebook."""
    import nbformat

    path = Path(path)
    before = path.stat().st_size
    notebook = nbformat.read(path, as_version=4)
    notebook.metadata.pop("widgets", None)
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            output.get("data", {}).pop(WIDGET_VIEW, None)
    with replacing(path) as temporary:  # readers never see a half-written notebook
        nbformat.write(notebook, temporary)
    return before, path.stat().st_size
