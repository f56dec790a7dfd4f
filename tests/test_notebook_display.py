"""Every figure the lab draws shows as a picture in a fresh kernel: a lesson-like notebook calls
each figure function of `dmllab.viz` and every such cell must have an image/png or plotly output,
never only a text repr such as `<Figure size 840x930 with 36 Axes>`.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

import dmllab.viz
from dmllab.viz import distillation

TESTS = Path(__file__).resolve().parent
PICTURES = ("image/png", "application/vnd.plotly.v1+json")
SETUP = (f"import sys; sys.path.insert(0, {str(TESTS)!r})\n"
         "import numpy as np\nfrom dmllab import viz\nfrom dmllab.runs import aggregate\n"
         "from dmllab.viz import distillation\nfrom viz_fixtures import ExpBregman, hand_run\n"
         "run = hand_run()\npoints = np.random.default_rng(0).normal(size=(30, 2))\n"
         "table = aggregate([{'v': v, 'seed': s, 'm': 0.1 * s + v} for v in (0, 1) for s in range(3)], "
         "by=['v'], metrics=['m'])")
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
    "list_bars": "distillation.list_bars(distillation.anchor_lists(run, epoch=2, anchor=0, size=8))",
    "epoch_curves": "distillation.epoch_curves({('a', 0): run, ('a', 1): run}, 'val_recall@1')",
}
NOT_FIGURES = {"aligned_projections", "project", "save_figure", "update_curves"}


def lesson_like(cells: list[str]) -> nbformat.NotebookNode:
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source) for source in cells])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return notebook


def execute(notebook: nbformat.NotebookNode, cwd: Path) -> nbformat.NotebookNode:
    NotebookClient(notebook, timeout=180, kernel_name="python3", extra_arguments=["--log-level=ERROR"],
                   resources={"metadata": {"path": str(cwd)}}).execute()
    return notebook


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    return execute(lesson_like([SETUP, *FIGURE_CELLS.values()]), tmp_path_factory.mktemp("display"))


def test_every_figure_function_is_called_by_the_notebook():
    public = set(dmllab.viz.__all__) | {"list_bars", "epoch_curves"}
    assert public - NOT_FIGURES == set(FIGURE_CELLS)
    assert {"list_bars", "epoch_curves"} <= set(distillation.__all__)


def test_every_figure_cell_shows_a_picture_in_a_fresh_kernel(executed):
    for name, cell in zip(FIGURE_CELLS, executed.cells[1:]):
        kinds = [kind for output in cell.outputs for kind in output.get("data", {})]
        assert any(kind in PICTURES for kind in kinds), f"{name} shows only {kinds}"
    grid = executed.cells[1 + list(FIGURE_CELLS).index("retrieval_grid")].outputs[0]
    assert grid.data["image/png"][:10] == "iVBORw0KGg"  # base64 of the PNG signature
