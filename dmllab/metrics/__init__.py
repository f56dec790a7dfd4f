"""Metrics: exact chunked kNN under any geometry, retrieval, clustering and collapse diagnostics.

    metrics = dl.evaluate(run)                                   # one flat dict of floats
    dl.metrics.retrieval(query, q_labels, ref=None, r_labels=None, geometry=None, ks=(1, 2, 4, 8))
    indices, scores = dl.metrics.knn(query, k=5, geometry=geometry)

One exact kNN search (faiss or torch, chunked, self excluded by index) feeds every retrieval
metric; every distance is D(query || reference) of the run's geometry. A query never counts
itself: a separate reference holding rows equal to the queries is refused unless `query_in_ref`
(or `self_index`) says which rows they are (`dmllab.metrics.knn`).
"""

from dmllab.metrics.clustering import ami, kmeans, nmi
from dmllab.metrics.collapse import (
    asymmetry,
    fine_label_metrics,
    intra_inter_ratio,
    memorisation,
    prototype_accuracy,
    spectral_decay,
    subcluster_ari,
)
from dmllab.metrics.evaluate import evaluate
from dmllab.metrics.knn import knn
from dmllab.metrics.retrieval import retrieval

__all__ = [
    "ami",
    "asymmetry",
    "evaluate",
    "fine_label_metrics",
    "intra_inter_ratio",
    "kmeans",
    "knn",
    "memorisation",
    "nmi",
    "prototype_accuracy",
    "retrieval",
    "spectral_decay",
    "subcluster_ari",
]
