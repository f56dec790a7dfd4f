"""Metrics: exact chunked kNN under any geometry, retrieval, clustering and collapse diagnostics."""

from dmllab.metrics.knn import knn

__all__ = ["knn"]
