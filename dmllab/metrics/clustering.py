"""Clustering quality: k-means on the embeddings, then NMI and AMI against the labels.

    clusters = kmeans(embeddings, n_clusters=number of classes in the evaluated set)
    NMI = I(clusters; labels) / mean(H(clusters), H(labels))                (arithmetic mean)
    AMI = (I - E[I]) / (mean(H(clusters), H(labels)) - E[I])                (Vinh et al., JMLR 2010)

k-means is scikit-learn's (Lloyd, k-means++ init, `n_init` fixed, seeded), Euclidean in the
embedding space whatever geometry the model trained, as in Roth et al. (ICML 2020) and
pytorch-metric-learning. Fit once with `kmeans` and pass `clusters=` to score NMI and AMI on
the same clustering.

>>> import torch
>>> x = torch.tensor([[0.0], [0.1], [5.0], [5.1]])
>>> y = torch.tensor([3, 3, 7, 7])
>>> nmi(x, y), ami(x, y)
(1.0, 1.0)
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from dmllab.metrics.knn import check_embeddings, check_labels

N_INIT = 3


def kmeans(embeddings: Tensor, n_clusters: int, *, seed: int = 0, n_init: int = N_INIT) -> Tensor:
    """Cluster ids [n] (long) from scikit-learn KMeans with `n_clusters`, `n_init` and `seed`.

    >>> import torch
    >>> kmeans(torch.tensor([[0.0], [0.2], [9.0]]), 2).tolist() in ([0, 0, 1], [1, 1, 0])
    True
    """
    from sklearn.cluster import KMeans

    x = check_embeddings(embeddings, "embeddings").cpu().double().numpy()
    if not isinstance(n_clusters, int) or not 1 <= n_clusters <= len(x):
        raise ValueError(
            f"n_clusters must be an integer in [1, {len(x)}] (the number of embeddings); "
            f"got {n_clusters!r}"
        )
    model = KMeans(n_clusters=n_clusters, n_init=n_init, random_state=seed)
    return torch.from_numpy(model.fit_predict(x).astype(np.int64))


def nmi(
    embeddings: Tensor, labels: Tensor, *, clusters: Tensor | None = None, seed: int = 0
) -> float:
    """Normalised mutual information between k-means clusters (k = number of labels) and `labels`.

    >>> import torch
    >>> labels, clusters = torch.tensor([0, 0, 1, 1]), torch.tensor([0, 0, 0, 1])
    >>> round(nmi(torch.zeros(4, 1), labels, clusters=clusters), 4)
    0.3437
    """
    from sklearn.metrics import normalized_mutual_info_score

    label_ids, cluster_ids = _labels_and_clusters(embeddings, labels, clusters, seed)
    return float(normalized_mutual_info_score(label_ids, cluster_ids))


def ami(
    embeddings: Tensor, labels: Tensor, *, clusters: Tensor | None = None, seed: int = 0
) -> float:
    """Adjusted (for chance) mutual information between k-means clusters and `labels`.

    >>> import torch
    >>> labels, clusters = torch.tensor([0, 0, 1, 1]), torch.tensor([0, 1, 0, 1])
    >>> round(ami(torch.zeros(4, 1), labels, clusters=clusters), 4)
    -0.5
    """
    from sklearn.metrics import adjusted_mutual_info_score

    label_ids, cluster_ids = _labels_and_clusters(embeddings, labels, clusters, seed)
    return float(adjusted_mutual_info_score(label_ids, cluster_ids))


def _labels_and_clusters(
    embeddings: Tensor, labels: Tensor, clusters: Tensor | None, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    labels = check_labels(labels, len(embeddings), "labels")
    if clusters is None:
        clusters = kmeans(embeddings, int(torch.unique(labels).numel()), seed=seed)
    clusters = torch.as_tensor(clusters)
    if clusters.shape != labels.shape:
        raise ValueError(
            f"clusters must have one id per embedding ({len(labels)}); "
            f"got shape {tuple(clusters.shape)}"
        )
    return labels.cpu().numpy(), clusters.cpu().numpy()
