"""Saved notebooks show pictures, never dead widgets: small files that reopen without a kernel.

A widget's output in a notebook is only a model id, and its model lives in the kernel. Reopened
after the kernel is gone, JupyterLab draws "Error displaying widget: model not found" for every
one of them: the LabPanel, a MapExplorer, every progress bar. papermill (through nbclient) also
stores every widget's state in the notebook's metadata; for a plotly FigureWidget that state
carries anywidget's ~5 MB JavaScript bundle, so one lesson with a panel weighed 10 MB.

`strip_widgets` removes both from a notebook: the widget state, and each output's widget view.
An output keeps the static fallback the lab's displays carry beside the view (plotly JSON, an
image, HTML; see `dmllab.viz.live`); an output with nothing but the widget and its text repr
(a progress bar, a plain ipywidget: "HBox(children=...") is dropped. Two places apply it:

- `make_static(path)`: the executed copies `dmllab demo` and `dmllab run` save;
- `pre_save_hook`: JupyterLab's save, as `make lab` starts it
  (`--ContentsManager.pre_save_hook=dmllab.saved_notebooks.pre_save_hook`). The file on disk
  loses the views; the open notebook keeps its live widgets until the page is reloaded.

    before, after = make_static("out/00_tour.ipynb")     # sizes in bytes
"""

from __future__ import annotations

from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

from dmllab.records import replacing

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def strip_widgets(notebook: MutableMapping[str, Any]) -> int:
    """Remove the widget state and every output's widget view from `notebook` (an nbformat
    notebook or its JSON dict, changed in place); outputs left with only a text repr are dropped.
    Returns the number of widget views removed."""
    notebook.get("metadata", {}).pop("widgets", None)
    removed = 0
    for cell in notebook.get("cells", []):
        outputs = cell.get("outputs")
        if not outputs:
            continue
        kept = []
        for output in outputs:
            data = output.get("data", {})
            if WIDGET_VIEW in data:
                data.pop(WIDGET_VIEW)
                removed += 1
                if set(data) <= {"text/plain"}:  # nothing to show but "HBox(children=..."
                    continue
            kept.append(output)
        cell["outputs"] = kept
    return removed


def pre_save_hook(model: dict[str, Any], **_: Any) -> None:
    """A Jupyter server `ContentsManager.pre_save_hook`: a notebook is written without widget
    state or widget views (`strip_widgets`); other files are written as they are."""
    if model.get("type") == "notebook" and isinstance(model.get("content"), MutableMapping):
        strip_widgets(model["content"])


def make_static(path: str | Path) -> tuple[int, int]:
    """Rewrite the notebook at `path` without widget state or widget views (`strip_widgets`);
    returns its size in bytes before and after. Raises FileNotFoundError if there is no such file
    and nbformat.ValidationError if it is not a notebook."""
    import nbformat

    path = Path(path)
    before = path.stat().st_size
    notebook = nbformat.read(path, as_version=4)
    strip_widgets(notebook)
    with replacing(path) as temporary:  # readers never see a half-written notebook
        nbformat.write(notebook, temporary)
    return before, path.stat().st_size
