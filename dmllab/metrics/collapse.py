"""Collapse, noise and geometry diagnostics: the numbers that show what a loss did to the classes.

- fine-label metrics: retrieval and NMI/AMI against the hidden sub-labels (does a class keep its
  modes, or is each class squeezed to one point?), prefixed `fine_`;
- `subcluster_ari`: per class, do its true sub-clusters come back out of k-means?
- `intra_inter_ratio`, `spectral_decay` (Roth, Milbich, Sinha, Gupta, Ommer, Cohen, "Revisiting
  Training Strategies and Generalization Performance in Deep Metric Learning", ICML 2020);
- `memorisation`: how many flipped training labels the embedding has learned;
- `prototype_accuracy`, `asymmetry`: readings of an asymmetric (Bregman) geometry.

All distances are D(a || b) of the given geometry (a Geometry or a registered name; default
Euclidean), query first. Embeddings and labels follow `dmllab.arrays` (any array-like).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from dmllab.geometry import resolve as resolve_geometry
from dmllab.geometry.base import Geometry
from dmllab.geometry.readouts import relative_asymmetry
from dmllab.metrics.clustering import ami, kmeans, nmi
from dmllab.metrics.knn import (
    check_embeddings,
    check_labels,
    check_self_index,
    knn,
    resolve_self_index,
)
from dmllab.metrics.retrieval import retrieval

# Rows of a pairwise block: bounds the memory of the class-by-class distance sums.
_ROWS_PER_BLOCK = 1024


def fine_label_metrics(
    embeddings: Tensor,
    sub: Tensor,
    geometry: Geometry | str | None = None,
    ks: Sequence[int] = (1, 2, 4, 8),
    *,
    max_queries: int | None = None,
    seed: int = 0,
) -> dict[str, float]:
    """`retrieval` and NMI/AMI against the fine labels `sub`, keys prefixed `fine_`.

    k-means uses k = number of distinct fine labels; `max_queries` and `seed` go to `retrieval`.

    >>> import torch
    >>> x = torch.tensor([[0.0], [0.1], [3.0], [3.1]])
    >>> m = fine_label_metrics(x, torch.tensor([0, 0, 1, 1]), ks=(1,))
    >>> m["fine_recall@1"], m["fine_nmi"]
    (1.0, 1.0)
    """
    embeddings = check_embeddings(embeddings, "embeddings")
    sub = check_labels(sub, len(embeddings), "sub")
    metrics = retrieval(
        embeddings, sub, geometry=geometry, ks=ks, max_queries=max_queries, seed=seed
    )
    clusters = kmeans(embeddings, int(torch.unique(sub).numel()), seed=seed)
    metrics["nmi"] = nmi(embeddings, sub, clusters=clusters)
    metrics["ami"] = ami(embeddings, sub, clusters=clusters)
    return {f"fine_{name}": value for name, value in metrics.items()}


def subcluster_ari(embeddings: Tensor, labels: Tensor, sub: Tensor, *, seed: int = 0) -> float:
    """Mean over classes with >= 2 sub-clusters of ARI(k-means clusters, sub-labels) in the class.

    Per class c with S_c distinct sub-labels: k-means with k = S_c on the embeddings of class c,
    then the adjusted Rand index against their sub-labels (1 = every mode recovered, about 0 =
    the class collapsed). NaN when no class has two sub-clusters.

    >>> import torch
    >>> x = torch.tensor([[0.0], [0.1], [4.0], [4.1], [9.0], [9.1]])
    >>> subcluster_ari(x, torch.tensor([0, 0, 0, 0, 1, 1]), torch.tensor([0, 0, 1, 1, 2, 2]))
    1.0
    """
    from sklearn.metrics import adjusted_rand_score

    embeddings = check_embeddings(embeddings, "embeddings")
    labels = check_labels(labels, len(embeddings), "labels")
    sub = check_labels(sub, len(embeddings), "sub")
    scores = []
    for c in torch.unique(labels):
        members = labels == c
        modes = int(torch.unique(sub[members]).numel())
        if modes >= 2:
            clusters = kmeans(embeddings[members], modes, seed=seed)
            scores.append(adjusted_rand_score(sub[members].numpy(), clusters.numpy()))
    return float(sum(scores) / len(scores)) if scores else float("nan")


def intra_inter_ratio(
    embeddings: Tensor, labels: Tensor, geometry: Geometry | str | None = None
) -> float:
    """Mean intra-class distance / mean inter-class-centre distance (Roth et al., ICML 2020).

    intra = mean over classes with >= 2 items of mean_{i != j in c} D(x_i || x_j)
    inter = mean_{a != b} D(mu_a || mu_b),  mu_c = arithmetic mean of class c
    Small values: tight classes far apart; a collapsed embedding gives about 0.

    >>> import torch
    >>> x = torch.tensor([[0.0], [2.0], [10.0], [12.0]])
    >>> intra_inter_ratio(x, torch.tensor([0, 0, 1, 1]))
    0.2
    """
    embeddings = check_embeddings(embeddings, "embeddings")
    geometry = resolve_geometry(geometry)
    labels = check_labels(labels, len(embeddings), "labels")
    classes = torch.unique(labels)
    if len(classes) < 2:
        raise ValueError(
            "intra_inter_ratio needs at least 2 classes (it divides by the distance between "
            f"class centres); got {len(classes)}"
        )
    intra: list[Tensor] = []
    class_means: list[Tensor] = []
    with torch.no_grad():
        for c in classes:
            members = embeddings[labels == c]
            class_means.append(members.mean(dim=0))
            if len(members) >= 2:
                intra.append(
                    _off_diagonal_sum(members, geometry) / (len(members) * (len(members) - 1))
                )
        if not intra:
            raise ValueError("intra_inter_ratio needs a class with at least 2 items")
        centres = torch.stack(class_means)
        inter = _off_diagonal_sum(centres, geometry) / (len(centres) * (len(centres) - 1))
    return float(torch.stack(intra).mean() / inter)


def spectral_decay(embeddings: Tensor, *, skip: int = 0) -> float:
    """KL(uniform || normalised singular-value spectrum) of the embedding matrix (Roth et al.,
    ICML 2020).

    s = singular values of X [n, d] (not centred), largest first, the `skip` largest dropped;
    p = s / sum(s);  rho = sum_i (1/m) log((1/m) / p_i) over the m remaining values.
    0 = a flat spectrum (every direction used); large = few directions carry the embedding.
    Roth et al.'s `rho_spectrum@k` is `skip = k - 1`. A zero singular value gives inf.

    >>> import torch
    >>> spectral_decay(torch.eye(2)), round(spectral_decay(torch.diag(torch.tensor([3.0, 1.0]))), 4)
    (0.0, 0.1438)
    """
    embeddings = check_embeddings(embeddings, "embeddings")
    s = torch.linalg.svdvals(embeddings.double())[skip:]
    if len(s) == 0 or not skip >= 0:
        raise ValueError(
            f"skip must be in [0, {min(embeddings.shape) - 1}] (fewer than the singular values); "
            f"got {skip}"
        )
    if (s <= 0).any():
        return float("inf")
    p = s / s.sum()
    uniform = 1.0 / len(s)
    return float((uniform * torch.log(uniform / p)).sum().clamp_min(0.0))


def memorisation(
    embeddings: Tensor, labels: Tensor, flipped: Tensor, geometry: Geometry | str | None = None
) -> float:
    """Fraction of flipped samples whose nearest neighbour (self excluded) has their noisy label.

    embeddings, labels: the training set and its (noisy) training labels; flipped: bool mask of
    the samples whose label the noise changed. A high value means the embedding has learned the
    wrong labels (memorised the noise) instead of placing the samples with their true class.

    >>> import torch
    >>> x = torch.tensor([[0.0], [0.1], [5.0], [5.1]])
    >>> memorisation(x, torch.tensor([1, 0, 1, 1]), torch.tensor([True, False, False, True]))
    0.5
    """
    embeddings = check_embeddings(embeddings, "embeddings")
    labels = check_labels(labels, len(embeddings), "labels")
    flipped = torch.as_tensor(flipped)
    if flipped.dtype != torch.bool or flipped.shape != labels.shape:
        raise ValueError(
            f"flipped must be a boolean mask with one entry per embedding ({len(labels)})"
        )
    positions = flipped.nonzero().flatten()
    if len(positions) == 0:
        raise ValueError(
            "memorisation needs at least one flipped sample; this set has no label noise"
        )
    if len(embeddings) < 2:
        raise ValueError(
            "memorisation needs at least 2 samples (a neighbour other than the sample itself)"
        )
    nearest, _ = knn(
        embeddings[positions], embeddings, k=1, geometry=geometry, self_index=positions
    )
    return float((labels[nearest[:, 0]] == labels[positions]).double().mean())


def prototype_accuracy(
    query: Tensor,
    q_labels: Tensor,
    ref: Tensor | None = None,
    r_labels: Tensor | None = None,
    geometry: Geometry | str | None = None,
    *,
    self_index: Tensor | None = None,
    query_in_ref: bool | None = None,
) -> float:
    """Nearest-class-mean accuracy: predict argmin_c D(x || mu_c), the mean in the SECOND argument.

    mu_c = arithmetic mean of the class-c items of `ref`, never counting the query itself: with
    ref=None the means come from the queries, each query left out of its own class mean; with a
    separate `ref` that holds the queries, `self_index` / `query_in_ref` say which rows they are,
    as in `retrieval` (a reference row equal to a query with its label is refused unless
    `query_in_ref` says what it is: True leaves the query's own row out of its class mean, False
    counts it as another sample). A query whose class has no item left has no class mean to find
    and is not counted; the accuracy is over the other queries (ValueError when none is left).
    For a Bregman divergence the arithmetic mean is the minimiser of sum_i D(x_i || mu) (Banerjee
    et al., JMLR 2005), hence its place. Equal distances go to the lowest class label.

    >>> import torch
    >>> ref, r_labels = torch.tensor([[0.0], [1.0], [10.0], [11.0]]), torch.tensor([0, 0, 1, 1])
    >>> prototype_accuracy(torch.tensor([[0.4], [6.0]]), torch.tensor([0, 0]), ref, r_labels)
    0.5
    >>> prototype_accuracy(ref, r_labels)  # each point left out of its own class mean
    1.0
    """
    query = check_embeddings(query, "query")
    geometry = resolve_geometry(geometry)
    q_labels = check_labels(q_labels, len(query), "q_labels")
    if (ref is None) != (r_labels is None):
        raise ValueError(
            "pass ref and r_labels together (or neither, to take the means of the queries)"
        )
    separate = ref is not None
    if ref is None or r_labels is None:  # both or neither, checked above
        resolve_self_index(query, None, None, query_in_ref, "prototype_accuracy")
        ref, r_labels = query, q_labels
        self_index = torch.arange(len(query)) if self_index is None else self_index
    else:
        ref = check_embeddings(ref, "ref")
        r_labels = check_labels(r_labels, len(ref), "r_labels")
    classes, r_class, counts = torch.unique(r_labels, return_inverse=True, return_counts=True)
    missing = sorted(set(torch.unique(q_labels).tolist()) - set(classes.tolist()))
    if missing:
        raise ValueError(
            f"query labels {missing[:10]} have no items in ref, so they have no class mean"
        )
    if ref.shape[1] != query.shape[1]:
        raise ValueError(
            f"query has d={query.shape[1]} but ref has d={ref.shape[1]}; embed both with the "
            "same model"
        )
    if separate:
        self_index = resolve_self_index(
            query, ref, self_index, query_in_ref, "prototype_accuracy", q_labels, r_labels
        )
    if ref.dtype != query.dtype:  # float32 against float64: both in float64, as knn does
        common = torch.promote_types(query.dtype, ref.dtype)
        query, ref = query.to(common), ref.to(common)
    centres = torch.stack([ref[r_labels == c].mean(dim=0) for c in classes])
    q_class = torch.searchsorted(classes, q_labels)
    own = (
        torch.full((len(query),), -1, dtype=torch.long)
        if self_index is None
        else check_self_index(self_index, len(query), len(ref))
    )
    # a query's own class mean without its own row: empty when that row was the class's only one
    own_class = r_class[own.clamp_min(0)]
    own_left = counts[own_class] - 1
    evaluated = ~((own >= 0) & (own_class == q_class) & (own_left == 0))
    if not evaluated.any():
        raise ValueError(
            "prototype_accuracy: no query's class has an item other than the query itself, so no "
            "query has a class mean to find; every class needs at least 2 items"
        )
    correct = 0
    with torch.no_grad():
        for start in range(0, len(query), _ROWS_PER_BLOCK):
            rows = torch.arange(start, min(start + _ROWS_PER_BLOCK, len(query)))
            D = geometry.pairwise(query[rows], centres).cpu().double()
            inside = (own[rows] >= 0).nonzero().flatten()
            if len(inside):
                own_block = own[rows][inside]
                left = own_left[rows][inside]
                c = own_class[rows][inside]
                total = centres[c] * counts[c, None].to(centres) - ref[own_block]
                loo = total / left.clamp_min(1)[:, None].to(centres)
                pick = torch.arange(len(inside), device=query.device)
                d_loo = geometry.entries(query[rows][inside], loo, pick, pick).cpu().double()
                D[inside, c] = torch.where(left > 0, d_loo, torch.inf)
            predicted = D.argmin(dim=1)
            kept = evaluated[rows]
            correct += int((predicted[kept] == q_class[rows][kept]).sum())
    return correct / int(evaluated.sum())


def asymmetry(
    embeddings: Tensor, geometry: Geometry | str, *, max_samples: int = 1000, seed: int = 0
) -> float:
    """Relative asymmetry sum|D - D^T| / sum(D + D^T) of D = geometry.pairwise(x, x)
    (`dmllab.geometry.readouts.relative_asymmetry`).

    On at most `max_samples` rows (a seeded random subset). Exactly 0 for a geometry flagged
    `symmetric` (a GEMM's rounding is not asymmetry); 0 when every entry of D is 0.

    >>> import torch
    >>> from dmllab.geometry.base import Geometry
    >>> class Gap(Geometry):  # D(a || b) = |a|^2 - a.b + 1
    ...     symmetric = False
    ...     def _pairwise(self, a, b):
    ...         return (a * a).sum(1, keepdim=True) - a @ b.T + 1
    >>> asymmetry(torch.tensor([[0.0], [1.0]]), Gap())  # D = [[1, 1], [2, 1]]
    0.2
    """
    embeddings = check_embeddings(embeddings, "embeddings")
    geometry = resolve_geometry(geometry)
    if geometry.symmetric:
        return 0.0
    if len(embeddings) > max_samples:
        pick = torch.randperm(len(embeddings), generator=torch.Generator().manual_seed(seed))[
            :max_samples
        ]
        embeddings = embeddings[pick]
    if len(embeddings) < 2:  # one point: no pair to compare
        return 0.0
    return relative_asymmetry(geometry, embeddings, if_all_zero=0.0)


def _off_diagonal_sum(x: Tensor, geometry: Geometry) -> Tensor:
    """sum_{i != j} D(x_i || x_j) in blocks of rows (the diagonal is left out, not assumed 0)."""
    total = torch.zeros((), dtype=torch.float64)
    for start in range(0, len(x), _ROWS_PER_BLOCK):
        block = geometry.pairwise(x[start : start + _ROWS_PER_BLOCK], x).double().cpu()
        rows = torch.arange(len(block))
        block[rows, rows + start] = 0.0
        total += block.sum()
    return total
