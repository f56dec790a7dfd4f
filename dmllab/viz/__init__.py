"""Figures: 2-D maps of embeddings, their evolution over training, training curves, comparisons
over seeds, retrieval grids and the read-outs of a learned Bregman geometry.

    from dmllab import viz
    viz.embedding_map(run, color_by="sub")
    viz.evolution(run)
    viz.training_curves(run)

Plotly figures use the default renderer (in JupyterLab the plotly mime renderer, so plotly.js
is loaded once by the extension, never embedded per figure); matplotlib is used where a static
picture reads better (the retrieval grid). Projections (PCA / UMAP / t-SNE) are cached on disk.
"""

from dmllab.viz.bregman import asymmetry_heatmap, level_sets, phi_surface
from dmllab.viz.curves import compare_runs, training_curves, update_curves
from dmllab.viz.export import save_figure
from dmllab.viz.maps import angle_histogram, compare_maps, embedding_map, evolution
from dmllab.viz.projection import aligned_projections, project
from dmllab.viz.retrieval import retrieval_grid

__all__ = [
    "aligned_projections", "angle_histogram", "asymmetry_heatmap", "compare_maps", "compare_runs",
    "embedding_map", "evolution", "level_sets", "phi_surface", "project", "retrieval_grid",
    "save_figure", "training_curves", "update_curves",
]
