"""Figures: 2-D maps of embeddings, their evolution over training, training curves, comparisons
over seeds, retrieval grids, the read-outs of a learned Bregman geometry, and the lab's widgets.

    from dmllab import viz
    viz.embedding_map(run, color_by="sub")
    viz.evolution(run)
    viz.training_curves(run)
    viz.LabPanel(dataset="digits")      # controls -> training -> live figures (ipywidgets)

Plotly figures use the default renderer (in JupyterLab the plotly mime renderer, so plotly.js
is loaded once by the extension, never embedded per figure); matplotlib is used where a static
picture reads better (the retrieval grid). Projections (PCA / UMAP / t-SNE) are cached on disk.

Each name is imported from its module on first use, so `import dmllab.viz.widgets` (or any one
figure module) loads only what that module needs.
"""

from __future__ import annotations

import importlib
from typing import Any

_NAMES = {
    "asymmetry_heatmap": "bregman",
    "level_sets": "bregman",
    "phi_surface": "bregman",
    "compare_runs": "curves",
    "training_curves": "curves",
    "update_curves": "curves",
    "save_figure": "export",
    "angle_histogram": "maps",
    "compare_maps": "maps",
    "embedding_map": "maps",
    "evolution": "maps",
    "aligned_projections": "projection",
    "project": "projection",
    "retrieval_grid": "retrieval",
    "LabPanel": "widgets",
    "MapExplorer": "widgets",
}
_MODULES = {
    "bregman",
    "curves",
    "distillation",
    "export",
    "maps",
    "projection",
    "retrieval",
    "widgets",
}

# Spelled out so that static tools (IDEs, type checkers) see it; the names of _NAMES, sorted.
__all__ = [
    "LabPanel",
    "MapExplorer",
    "aligned_projections",
    "angle_histogram",
    "asymmetry_heatmap",
    "compare_maps",
    "compare_runs",
    "embedding_map",
    "evolution",
    "level_sets",
    "phi_surface",
    "project",
    "retrieval_grid",
    "save_figure",
    "training_curves",
    "update_curves",
]


def __getattr__(name: str) -> Any:
    if name in _NAMES:
        value = getattr(importlib.import_module(f"dmllab.viz.{_NAMES[name]}"), name)
    elif name in _MODULES:
        value = importlib.import_module(f"dmllab.viz.{name}")
    else:
        raise AttributeError(f"module 'dmllab.viz' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__) | _MODULES)
