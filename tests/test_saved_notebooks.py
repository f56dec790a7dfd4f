"""A notebook saved by JupyterLab (through `make lab`'s pre-save hook) or by `dmllab demo` keeps a
picture or nothing for every widget: never a widget view whose model died with the kernel."""

import json
import re
from pathlib import Path

import nbformat
import pytest
from traitlets.config import Config as TraitletsConfig

from dmllab.saved_notebooks import WIDGET_VIEW, make_static, pre_save_hook, strip_widgets

ROOT = Path(__file__).resolve().parents[1]
VIEW = {WIDGET_VIEW: {"model_id": "0123", "version_major": 2, "version_minor": 0}}
PLOTLY = "application/vnd.plotly.v1+json"


def _notebook() -> nbformat.NotebookNode:
    outputs = [
        # a progress bar: a widget and its repr, nothing to show without the kernel
        {"text/plain": "HBox(children=(HTML(value=''), FloatProgress(value=3.0)))", **VIEW},
        # the LabPanel: a note in words beside the widget
        {"text/plain": "LabPanel: ...", "text/html": "<p><i>LabPanel: ...</i></p>", **VIEW},
        # a MapExplorer / FigureWidget: the figure as plotly JSON beside the widget
        {"text/plain": "plotly figure: map", PLOTLY: {"data": [], "layout": {}}, **VIEW},
    ]
    cell = nbformat.v4.new_code_cell(
        "run()",
        outputs=[nbformat.v4.new_output("display_data", data=data) for data in outputs]
        + [nbformat.v4.new_output("stream", name="stdout", text="done\n")],
    )
    notebook = nbformat.v4.new_notebook(cells=[cell, nbformat.v4.new_markdown_cell("# text")])
    notebook.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    return notebook


def _kinds(notebook) -> list[list[str]]:
    return [
        sorted(output.get("data", {"stream": 0}))
        for cell in notebook["cells"]
        for output in cell.get("outputs", [])
    ]


def test_strip_widgets_keeps_pictures_and_words_and_drops_bare_widgets():
    notebook = _notebook()
    assert strip_widgets(notebook) == 3
    assert "widgets" not in notebook.metadata
    assert _kinds(notebook) == [["text/html", "text/plain"], [PLOTLY, "text/plain"], ["stream"]]
    assert strip_widgets(notebook) == 0  # nothing left to strip
    nbformat.validate(notebook)


def test_make_static_rewrites_the_file(tmp_path):
    path = tmp_path / "lesson.ipynb"
    nbformat.write(_notebook(), path)
    before, after = make_static(path)
    assert after == path.stat().st_size < before
    assert WIDGET_VIEW not in path.read_text()


def test_the_pre_save_hook_strips_what_jupyter_saves(tmp_path):
    """Through jupyter_server's own contents manager, configured as `make lab` configures it."""
    filemanager = pytest.importorskip("jupyter_server.services.contents.filemanager")
    settings = json.loads((ROOT / "jupyter_lab_config.json").read_text())
    manager = filemanager.FileContentsManager(
        config=TraitletsConfig(settings), root_dir=str(tmp_path)
    )
    assert manager.pre_save_hook is pre_save_hook
    content = json.loads(nbformat.writes(_notebook()))  # the JSON JupyterLab sends on Ctrl+S
    manager.save({"type": "notebook", "format": "json", "content": content}, "lesson.ipynb")
    saved = nbformat.read(tmp_path / "lesson.ipynb", as_version=4)
    assert "widgets" not in saved.metadata and WIDGET_VIEW not in json.dumps(saved)
    assert _kinds(saved) == [["text/html", "text/plain"], [PLOTLY, "text/plain"], ["stream"]]
    manager.save({"type": "file", "format": "text", "content": "x"}, "notes.txt")
    assert (tmp_path / "notes.txt").read_text() == "x"  # other files are saved as they are


def test_make_lab_passes_the_config_and_allows_root():
    recipe = re.search(r"^lab:.*\n((?:\t.*\n)+)", (ROOT / "Makefile").read_text(), re.M)
    assert recipe is not None
    command = recipe.group(1)
    assert "--config=jupyter_lab_config.json" in command
    assert "$(if $(filter 0,$(shell id -u)),--allow-root)" in command
