"""Figures: 2-D maps of embeddings, their evolution over training, training curves, comparisons
over seeds, retrieval grids, augmented samples of an image, the read-outs of a learned Bregman
geometry, and the lab's widgets.

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

from dmllab import lazy

_NAMES = {
    "augmented_samples": "augment",
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
    "augment",
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
    "augmented_samples",
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


__getattr__, __dir__ = lazy.attach(__name__, _NAMES, _MODULES)
