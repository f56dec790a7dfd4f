"""Every figure the lab draws shows as a picture in a fresh kernel: a lesson-like notebook calls
each figure function of `dmllab.viz` and every such cell must have an image/png or plotly output,
never only a text repr such as `<Figure size 840x930 with 36 Axes>`. The same notebook also shows
widgets (a FigureWidget, a MapExplorer, a LabPanel) and saves lesson outputs: saved for reading
(`make_static`) it stays under 2 MB and shows figures instead of dead widgets, and its report too.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from plotly.offline import get_plotlyjs

import dmllab.viz
from dmllab.report import LessonResult, write_report
from dmllab.saved_notebooks import WIDGET_VIEW, make_static
from dmllab.viz import distillation

TESTS = Path(__file__).resolve().parents[1]
PLOTLY = "application/vnd.plotly.v1+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
PICTURES = ("image/png", PLOTLY)
SETUP = (
    f"import sys; sys.path.insert(0, {str(TESTS)!r})\n"
    "import numpy as np\nfrom dmllab import viz\nfrom dmllab.runs import aggregate\n"
    "from dmllab.viz import distillation\nfrom viz_fixtures import ExpBregman, hand_run\n"
    "run = hand_run()\npoints = np.random.default_rng(0).normal(size=(30, 2))\n"
    "table = aggregate([{'v': v, 'seed': s, 'm': 0.1 * s + v} for v in (0, 1) for s in range(3)], "
    "by=['v'], metrics=['m'])"
)
# One cell per figure function, as a lesson calls it (the figure is the cell's last expression).
FIGURE_CELLS = {
    "embedding_map": "viz.embedding_map(run)",
    "compare_maps": "viz.compare_maps({'a': run, 'b': run})",
    "evolution": "viz.evolution(run)",
    "angle_histogram": "viz.angle_histogram(points, np.arange(30) % 3)",
    "training_curves": "viz.training_curves(run)",
    "compare_runs": "viz.compare_runs(table, 'm', by='v')",
    "level_sets": "viz.level_sets(ExpBregman(), [(0.3, 0.3), (0.6, 0.7)], resolution=15)",
    "asymmetry_heatmap": "viz.asymmetry_heatmap(ExpBregman(), resolution=15)",
    "phi_surface": "viz.phi_surface(ExpBregman(), resolution=9)",
    "retrieval_grid": "grid = viz.retrieval_grid(run, [0, 1, 2], k=4)\ngrid",
    "list_bars": (
        "distillation.list_bars(distillation.anchor_lists(run, epoch=2, anchor=0, size=8))"
    ),
    "epoch_curves": "distillation.epoch_curves({('a', 0): run, ('a', 1): run}, 'val_recall@1')",
    "augmented_samples": (
        "from dmllab.data import load\n"
        "from dmllab.data.example_folder import write_example_folder\n"
        "root = write_example_folder('pictures', classes=2, per_class=2, size=24)\n"
        "viz.augmented_samples(load('folder', root=root, image_size=16), views=2)"
    ),
}
NOT_FIGURES = {
    "aligned_projections",
    "project",
    "save_figure",
    "update_curves",
    "LabPanel",
    "MapExplorer",
}  # widgets: WIDGET_CELLS
WIDGET_CELLS = {
    "figure_widget": (
        "from dmllab.viz.live import FigureWidget\nFigureWidget(viz.embedding_map(run))"
    ),
    "map_explorer": (
        "from dmllab.viz.widgets import LabPanel, MapExplorer\n"
        "MapExplorer(viz.embedding_map(run), run.test)"
    ),
    "panel": "LabPanel(dataset='mixture', epochs=1)",
}
SAVE = (
    "from dmllab.report import save_lesson_outputs\n"
    "save_lesson_outputs({out!r}, {{'a/recall@1': 0.5}}, figures={{'map': viz.embedding_map(run), "
    "'curves': viz.training_curves(run), 'grid': grid}})"
)
MB = 2**20


def lesson_like(cells: list[str]) -> nbformat.NotebookNode:
    notebook = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell(source) for source in cells]
    )
    notebook.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    return notebook


def execute(notebook: nbformat.NotebookNode, cwd: Path) -> nbformat.NotebookNode:
    NotebookClient(
        notebook,
        timeout=180,
        kernel_name="python3",
        extra_arguments=["--log-level=ERROR"],
        resources={"metadata": {"path": str(cwd)}},
    ).execute()
    return notebook


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("display")


@pytest.fixture(scope="module")
def executed(workdir):
    cells = [
        SETUP,
        *FIGURE_CELLS.values(),
        *WIDGET_CELLS.values(),
        SAVE.format(out=str(workdir / "lesson")),
    ]
    return execute(lesson_like(cells), workdir)


def _outputs(notebook: nbformat.NotebookNode, name: str) -> list:
    index = 1 + len(FIGURE_CELLS) + list(WIDGET_CELLS).index(name)
    return notebook.cells[index].outputs


def test_the_spelled_out_public_names_are_the_lazily_imported_ones():
    assert dmllab.viz.__all__ == sorted(dmllab.viz._NAMES)


def test_every_figure_function_is_called_by_the_notebook():
    public = set(dmllab.viz.__all__) | {"list_bars", "epoch_curves"}
    assert public - NOT_FIGURES == set(FIGURE_CELLS)
    assert {"list_bars", "epoch_curves"} <= set(distillation.__all__)


def test_every_figure_cell_shows_a_picture_in_a_fresh_kernel(executed):
    # the figure cells come first; the widget cells after them are not pictures
    for name, cell in zip(FIGURE_CELLS, executed.cells[1:], strict=False):
        kinds = [kind for output in cell.outputs for kind in output.get("data", {})]
        assert any(kind in PICTURES for kind in kinds), f"{name} shows only {kinds}"
    grid = executed.cells[1 + list(FIGURE_CELLS).index("retrieval_grid")].outputs[0]
    assert grid.data["image/png"][:10] == "iVBORw0KGg"  # base64 of the PNG signature


def test_a_saved_notebook_is_small_and_shows_figures_instead_of_dead_widgets(executed, workdir):
    path = workdir / "lesson.ipynb"
    nbformat.write(executed, path)
    before, after = make_static(path)
    assert (
        before > 10 * MB
    )  # the widgets' state: anywidget's JavaScript bundle once per FigureWidget
    assert after == path.stat().st_size < 2 * MB, after
    saved = nbformat.read(path, as_version=4)
    assert "widgets" not in saved.metadata
    assert not [
        kind
        for cell in saved.cells
        for output in cell.get("outputs", [])
        for kind in output.get("data", {})
        if kind == WIDGET_VIEW
    ]
    for name in ("figure_widget", "map_explorer"):
        (output,) = _outputs(saved, name)
        assert [t["name"] for t in output.data[PLOTLY]["data"]] == ["0", "1", "2"], name
    (panel,) = _outputs(saved, "panel")
    assert (
        panel.data["text/plain"].startswith("LabPanel: interactive")
        and "HBox" not in panel.data["text/html"]
    )


def test_live_displays_still_carry_the_widget(executed):
    for name in WIDGET_CELLS:
        assert WIDGET_VIEW in _outputs(executed, name)[0].data, name
    assert len(executed.metadata.widgets[WIDGET_STATE]["state"]) > 0


def test_the_report_loads_plotly_js_once_from_a_file_beside_it(executed, workdir):
    lesson = LessonResult(
        name="lesson", notebook=workdir / "lesson.ipynb", output_dir=workdir / "lesson"
    )
    report = write_report(workdir, [lesson])
    page = report.read_text()
    assert report.stat().st_size < 2 * MB
    assert page.count('<script src="plotly.min.js"') == 1 and page.count("Plotly.newPlot") == 2
    assert (workdir / "plotly.min.js").read_text() == get_plotlyjs()
    assert page.count("data:image/png;base64,") == 1
