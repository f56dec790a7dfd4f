"""`evaluate(run)`: every metric of a trained run as one flat dict of floats (`dl.evaluate`)."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from dmllab.data.registry import resolve as resolve_dataset
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
from dmllab.metrics.knn import own_rows
from dmllab.metrics.retrieval import retrieval

if TYPE_CHECKING:
    from dmllab.data.dataset import Dataset
    from dmllab.data.splits import Splits
    from dmllab.geometry.base import Geometry
    from dmllab.runs import Run

_DIRECTION_KEYS = ("recall@", "precision@", "map@r", "r_precision", "mrr")


def evaluate(
    run: Run,
    dataset: Dataset | str | None = None,
    split: str = "test",
    *,
    ks: Sequence[int] = (1, 2, 4, 8),
    max_queries: int | None = None,
    seed: int | None = None,
) -> dict[str, float]:
    """Measure `run` on `dataset` (default: the run's `split`, "test"); a flat dict of floats.

    dataset: a Dataset or a registered name (loaded with the run's seed); its inputs follow the
    lab's one rule for arrays (`dmllab.arrays`), so numpy or float64 data works like float32.

    The split is embedded with `run.embed` and every distance is the run's geometry, query first:
    retrieval ranks the other items g of the split by D(query || g). Every item queries all the
    others (`max_queries`: a seeded random subset of queries against the whole split).

    Keys (absent when not applicable):
      recall@K, precision@K (K in ks), map@r, r_precision, mrr, excluded_queries  (`retrieval`)
      nmi, ami               k-means with k = number of classes in the split
      fine_*                 the same against the fine labels `sub`, when the dataset has them,
      subcluster_ari         and the per-class ARI of the sub-clusters
      intra_inter_ratio, spectral_decay
      prototype_accuracy     nearest class mean D(x || mean_c); the means come from the run's
                             training split when every evaluated class appears there (a
                             stratified split), else from the evaluated split itself (zero-shot:
                             class-disjoint). A sample is never part of the mean it is measured
                             against: evaluated on the training split, or on data holding its
                             rows (the same inputs and label), each is left out of its own
                             class mean, as it is within the evaluated split
      memorisation           on the run's training split, when its labels carry injected noise
      bad_images             under on_bad_image="skip": the evaluated rows whose image files
                             failed to decode; they are left out of every metric (as queries,
                             gallery items and class means), never scored as black images
      asymmetry              for an asymmetric geometry, with the retrieval metrics in the two
                             other directions: gallery_first_* (D(g || query),
                             `geometry.reversed()`) and symmetrised_* (D(q || g) + D(g || q),
                             `geometry.symmetrised()`)

    seed (default: run.config.seed) drives k-means and the query subset.

    >>> import torch
    >>> from torch import nn
    >>> from dmllab.config import Config
    >>> from dmllab.data.dataset import Dataset
    >>> from dmllab.data import Splits
    >>> from dmllab.geometry.euclidean import Euclidean
    >>> from dmllab.runs import Run
    >>> points = Dataset(x=torch.tensor([[0.0], [0.1], [5.0], [5.2]]), y=torch.tensor([0, 0, 1, 1]))
    >>> run = Run(
    ...     model=nn.Identity(), geometry=Euclidean(), config=Config(), data=Splits(points, points)
    ... )
    >>> metrics = evaluate(run, ks=(1,))
    >>> metrics["recall@1"], metrics["map@r"], metrics["nmi"], metrics["prototype_accuracy"]
    (1.0, 1.0, 1.0, 1.0)
    """
    seed = getattr(run.config, "seed", 0) if seed is None else seed
    data = resolve_dataset(dataset, seed=seed) if dataset is not None else _splits(run).get(split)
    geometry = _on_cpu(run.geometry)
    train = run.data.train if run.data is not None else None
    is_train = data is train
    embeddings, data, bad_images = _decoded(run, data)
    labels = data.y

    metrics = retrieval(
        embeddings, labels, geometry=geometry, ks=ks, max_queries=max_queries, seed=seed
    )
    clusters = kmeans(embeddings, int(torch.unique(labels).numel()), seed=seed)
    metrics["nmi"] = nmi(embeddings, labels, clusters=clusters)
    metrics["ami"] = ami(embeddings, labels, clusters=clusters)
    if data.sub is not None:
        metrics |= fine_label_metrics(
            embeddings, data.sub, geometry, ks, max_queries=max_queries, seed=seed
        )
        metrics["subcluster_ari"] = subcluster_ari(embeddings, labels, data.sub, seed=seed)
    if int(torch.unique(labels).numel()) >= 2:
        metrics["intra_inter_ratio"] = intra_inter_ratio(embeddings, labels, geometry)
    metrics["spectral_decay"] = spectral_decay(embeddings)

    train_embeddings = None
    if is_train:
        train_embeddings, train = embeddings, data
    elif train is not None:
        train_embeddings, train, _ = _decoded(run, train)
    if (
        train is not None
        and train_embeddings is not None
        and not is_train
        and _covers(train.y, labels)
    ):
        own = _training_rows(data, train)  # None: lazy rows, taken to be other samples
        metrics["prototype_accuracy"] = prototype_accuracy(
            embeddings,
            labels,
            train_embeddings,
            train.y,
            geometry,
            self_index=own,
            query_in_ref=None if own is not None else False,
        )
    else:
        metrics["prototype_accuracy"] = prototype_accuracy(embeddings, labels, geometry=geometry)
    if train is not None and train_embeddings is not None:
        flipped = train.flipped
        if flipped is not None and bool(flipped.any()):
            metrics["memorisation"] = memorisation(train_embeddings, train.y, flipped, geometry)

    if not geometry.symmetric:
        metrics["asymmetry"] = asymmetry(embeddings, geometry, seed=seed)
        for prefix, other in (
            ("gallery_first_", geometry.reversed()),
            ("symmetrised_", geometry.symmetrised()),
        ):
            scores = retrieval(
                embeddings, labels, geometry=other, ks=ks, max_queries=max_queries, seed=seed
            )
            metrics |= {
                prefix + name: value
                for name, value in scores.items()
                if name.startswith(_DIRECTION_KEYS)
            }
    if getattr(run.config, "on_bad_image", "raise") == "skip":
        metrics["bad_images"] = float(bad_images)
    return metrics


def _decoded(run: Run, data: Dataset) -> tuple[Tensor, Dataset, int]:
    """(embeddings, data, count) of the rows of `data` whose images decoded: a file that failed
    under `on_bad_image="skip"` embeds as a black image (`Run.embed_with_failures`), which would
    be scored as a real query and gallery item, so its row is left out and counted."""
    embeddings, failed = run.embed_with_failures(data)
    count = int(failed.sum())
    if count == len(failed):
        raise ValueError(
            f"evaluate: none of the {count} images of {data.name!r} could be decoded "
            "(on_bad_image='skip' left them all out); check the folder's files"
        )
    if count:
        keep = (~failed).nonzero().flatten()
        return embeddings[keep], data.subset(keep), count
    return embeddings, data, 0


def _splits(run: Run) -> Splits:
    if run.data is None:
        raise ValueError(
            "this run carries no data splits; pass the data to evaluate: evaluate(run, dataset)"
        )
    return run.data


def _training_rows(data: Dataset, train: Dataset) -> Tensor | None:
    """For each row of `data`, the training row with the same inputs and label (the same sample,
    e.g. when the whole data set is evaluated), else -1; None for lazy inputs (image folders),
    whose rows are taken to be other samples."""
    if not (isinstance(data.x, Tensor) and isinstance(train.x, Tensor)):
        return None
    if data.x.shape[1:] != train.x.shape[1:]:
        return None
    return own_rows(data.x.reshape(len(data), -1), train.x.reshape(len(train), -1), data.y, train.y)


def _covers(train_labels: Tensor, labels: Tensor) -> bool:
    return set(torch.unique(labels).tolist()) <= set(torch.unique(train_labels).tolist())


def _on_cpu(geometry: Geometry) -> Geometry:
    """The geometry itself, or a CPU copy when its parameters live on an accelerator."""
    if all(p.device.type == "cpu" for p in geometry.parameters()):
        return geometry
    return copy.deepcopy(geometry).cpu()
