"""Retrieval metrics from one exact kNN search: Recall@K, Precision@K, MAP@R, R-precision, MRR.

For a query q with label y_q, let R_q be the number of reference items with label y_q (q itself
excluded) and rel_i = 1 when the i-th nearest reference item (query first, D(q || r)) has
label y_q:

    recall@K     = 1 if rel_i = 1 for some i <= K else 0      (DML convention: a hit in the K
                                                              nearest, not IR recall)
    precision@K  = (1 / K') sum_{i <= K'} rel_i,   K' = min(K, number of candidates)
    r_precision  = (1 / R_q) sum_{i <= R_q} rel_i
    map@r        = (1 / R_q) sum_{i <= R_q} rel_i * P(i),   P(i) = (1 / i) sum_{j <= i} rel_j
    mrr          = 1 / (rank of the first relevant item), 0 when none is among the k searched

Each metric is the mean over queries (`class_averaged_*`: the mean over classes of the per-class
means). MAP@R and R-precision follow Musgrave, Belongie, Lim, "A Metric Learning Reality Check",
ECCV 2020; the search depth is k = max(max(ks), max_q R_q), so MAP@R is never truncated, and the
MRR is truncated at that depth (as in pytorch-metric-learning with k="max_bin_count").

Queries with R_q = 0 (their class has no other item in the reference, or their label is absent
from a separate gallery) have no defined MAP@R and are excluded from every metric; their number
is reported as `excluded_queries`.

>>> import torch
>>> x = torch.tensor([[0.0], [1.0], [5.0], [6.0], [2.0]])
>>> y = torch.tensor([0, 0, 1, 1, 1])
>>> m = retrieval(x, y, ks=(1, 2))
>>> m["recall@1"], m["precision@2"], m["map@r"], m["excluded_queries"]
(0.8, 0.6, 0.8, 0.0)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, overload

import pandas as pd
import torch
from torch import Tensor

from dmllab.geometry import resolve as resolve_geometry
from dmllab.geometry.base import Geometry
from dmllab.metrics.knn import (
    Backend,
    check_embeddings,
    check_labels,
    iter_knn,
    resolve_self_index,
)


@overload
def retrieval(
    query: Tensor,
    q_labels: Tensor,
    ref: Tensor | None = ...,
    r_labels: Tensor | None = ...,
    geometry: Geometry | str | None = ...,
    ks: Sequence[int] = ...,
    *,
    class_averaged: bool = ...,
    per_class: Literal[False] = ...,
    max_queries: int | None = ...,
    seed: int = ...,
    chunk_size: int | None = ...,
    backend: Backend = ...,
    self_index: Tensor | None = ...,
    query_in_ref: bool | None = ...,
) -> dict[str, float]: ...


@overload
def retrieval(
    query: Tensor,
    q_labels: Tensor,
    ref: Tensor | None = ...,
    r_labels: Tensor | None = ...,
    geometry: Geometry | str | None = ...,
    ks: Sequence[int] = ...,
    *,
    class_averaged: bool = ...,
    per_class: Literal[True],
    max_queries: int | None = ...,
    seed: int = ...,
    chunk_size: int | None = ...,
    backend: Backend = ...,
    self_index: Tensor | None = ...,
    query_in_ref: bool | None = ...,
) -> pd.DataFrame: ...


@overload
def retrieval(
    query: Tensor,
    q_labels: Tensor,
    ref: Tensor | None = ...,
    r_labels: Tensor | None = ...,
    geometry: Geometry | str | None = ...,
    ks: Sequence[int] = ...,
    *,
    class_averaged: bool = ...,
    per_class: bool,
    max_queries: int | None = ...,
    seed: int = ...,
    chunk_size: int | None = ...,
    backend: Backend = ...,
    self_index: Tensor | None = ...,
    query_in_ref: bool | None = ...,
) -> dict[str, float] | pd.DataFrame: ...


def retrieval(
    query: Tensor,
    q_labels: Tensor,
    ref: Tensor | None = None,
    r_labels: Tensor | None = None,
    geometry: Geometry | str | None = None,
    ks: Sequence[int] = (1, 2, 4, 8),
    *,
    class_averaged: bool = False,
    per_class: bool = False,
    max_queries: int | None = None,
    seed: int = 0,
    chunk_size: int | None = None,
    backend: Backend = "auto",
    self_index: Tensor | None = None,
    query_in_ref: bool | None = None,
) -> dict[str, float] | pd.DataFrame:
    """Recall@K, Precision@K, MAP@R, R-precision and MRR of `query` against `ref` (see the module
    docstring).

    ref=None: every query searches all other queries (its own entry excluded by index).
    query, ref: [n, d] and [m, d] embeddings: tensors, numpy arrays, lists or pandas frames
              (`dmllab.arrays.as_floats`: float32 / float64 kept, other dtypes -> float32).
    q_labels, r_labels: [n] and [m] integer class ids, in any container.
    geometry: a Geometry or a registered name ("euclidean", "cosine", ...); ranks by
              D(query || reference) (default Euclidean); for an asymmetric geometry pass
              `geometry.reversed()` for the gallery-first direction.
    class_averaged: also return `class_averaged_<metric>` (mean of per-class means).
    per_class: return a DataFrame instead, one row per query label with every metric and the
               number of evaluated (`queries`) and `excluded_queries`.
    max_queries: with ref=None, a seeded random subset of at most this many queries searches
               the whole set (faster estimates on large sets; `seed` picks the subset).
    self_index: [n] position of each query inside `ref` (a query subset of the reference; -1 for
               a query that is not in it): that row is left out of the query's search.
    query_in_ref: what a separate `ref` holding rows equal to queries, with their labels, means
               (`dmllab.metrics.knn.own_rows`); each would be the query's own perfect hit at
               distance 0, in any geometry. None (the default) raises a ValueError naming the
               fix; True: they are the queries themselves, and each query's own row (the first
               equal one) is left out as with ref=None (pytorch-metric-learning's
               `ref_includes_query=True`, without its rule that the queries come first); False:
               they are other samples that happen to be equal, and count.

    Keys: recall@K and precision@K for K in ks, map@r, r_precision, mrr, excluded_queries.

    >>> import torch
    >>> gallery = torch.tensor([[0.0], [10.0]])
    >>> m = retrieval(torch.tensor([[1.0], [9.0], [4.0]]), torch.tensor([0, 1, 1]), gallery,
    ...               torch.tensor([0, 1]), ks=(1, 2))
    >>> round(m["recall@1"], 4), m["mrr"]
    (0.6667, 0.8333333333333334)
    """
    ks = _check_ks(ks)
    query = check_embeddings(query, "query")
    geometry = resolve_geometry(geometry)
    q_labels = check_labels(q_labels, len(query), "q_labels")
    if (ref is None) != (r_labels is None):
        raise ValueError(
            "pass ref and r_labels together (or neither, to search the queries themselves)"
        )
    if ref is None:
        resolve_self_index(query, None, None, query_in_ref, "retrieval")  # refuses query_in_ref
    if max_queries is not None:
        query, q_labels, ref, r_labels, self_index = _subsample_queries(
            query, q_labels, ref, max_queries, seed
        )
    if ref is None or r_labels is None:  # both or neither, checked above
        if len(query) < 2:
            raise ValueError(
                "retrieval needs at least 2 items when the queries are the reference; got 1"
            )
        r_labels = q_labels
        if self_index is None:
            self_index = torch.arange(len(query))
    else:
        ref = check_embeddings(ref, "ref")
        r_labels = check_labels(r_labels, len(ref), "r_labels")
        self_index = resolve_self_index(
            query, ref, self_index, query_in_ref, "retrieval", q_labels, r_labels
        )
    q_class, r_class, classes = _class_ids(q_labels, r_labels)

    relevant_count = torch.bincount(r_class, minlength=len(classes))[q_class]
    has_self = torch.zeros(len(query), dtype=torch.bool)
    if self_index is not None:
        self_index = torch.as_tensor(self_index).long()
        has_self = self_index >= 0  # -1: the query is not in the reference
        own_class = r_class[self_index.clamp_min(0)]
        relevant_count -= (has_self & (own_class == q_class)).long()
    evaluated = relevant_count > 0
    if not evaluated.any():
        raise ValueError(
            "no query has a same-class item in the reference, so no retrieval metric is "
            "defined; every class needs at least 2 items (or a gallery item)"
        )
    candidates = len(r_labels) - has_self.long()  # per query: the reference less its own row
    depth = max(max(ks), int(relevant_count.max()))  # each search: at most its candidates

    if self_index is None or ref is None or bool(has_self.all()) or not bool(has_self.any()):
        per_query = _per_query_metrics(
            query,
            ref,
            geometry,
            min(depth, int(candidates.min())),
            ks,
            q_class,
            r_class,
            relevant_count,
            candidates,
            chunk_size,
            backend,
            self_index if bool(has_self.any()) else None,
        )
    else:  # some queries are in ref, some not: the latter have one candidate more
        per_query = {}
        for inside, selves in ((has_self, self_index), (~has_self, None)):
            rows = inside.nonzero().flatten()
            part = _per_query_metrics(
                query[rows],
                ref,
                geometry,
                min(depth, int(candidates[rows].min())),
                ks,
                q_class[rows],
                r_class,
                relevant_count[rows],
                candidates[rows],
                chunk_size,
                backend,
                None if selves is None else selves[rows],
            )
            for name, values in part.items():
                per_query.setdefault(name, torch.zeros(len(query), dtype=torch.float64))[rows] = (
                    values
                )
    if per_class:
        return _per_class_frame(per_query, evaluated, q_class, classes)
    metrics = {name: float(values[evaluated].mean()) for name, values in per_query.items()}
    if class_averaged:
        for name, values in per_query.items():
            metrics[f"class_averaged_{name}"] = _class_average(values, evaluated, q_class)
    metrics["excluded_queries"] = float((~evaluated).sum())
    return metrics


def _per_query_metrics(
    query: Tensor,
    ref: Tensor | None,
    geometry: Geometry | None,
    depth: int,
    ks: tuple[int, ...],
    q_class: Tensor,
    r_class: Tensor,
    relevant_count: Tensor,
    candidates: Tensor,
    chunk_size: int | None,
    backend: Backend,
    self_index: Tensor | None,
) -> dict[str, Tensor]:
    n = len(query)
    out = {f"recall@{k}": torch.zeros(n, dtype=torch.float64) for k in ks}
    out |= {f"precision@{k}": torch.zeros(n, dtype=torch.float64) for k in ks}
    out |= {name: torch.zeros(n, dtype=torch.float64) for name in ("map@r", "r_precision", "mrr")}
    rank = torch.arange(1, depth + 1, dtype=torch.float64)
    for start, indices, _ in iter_knn(
        query, ref, depth, geometry, chunk_size=chunk_size, backend=backend, self_index=self_index
    ):
        rows = slice(start, start + len(indices))
        rel = r_class[indices] == q_class[rows, None]
        r = relevant_count[rows].clamp_min(1).double()
        for k in ks:
            out[f"recall@{k}"][rows] = rel[:, :k].any(dim=1).double()
            out[f"precision@{k}"][rows] = rel[:, :k].sum(dim=1).double() / candidates[
                rows
            ].clamp_max(k)
        within_r = rank[None, :] <= r[:, None]
        hits = (rel & within_r).double()
        out["r_precision"][rows] = hits.sum(dim=1) / r
        out["map@r"][rows] = (hits * rel.cumsum(dim=1) / rank).sum(dim=1) / r
        first = rel.double().argmax(dim=1).double()
        out["mrr"][rows] = torch.where(rel.any(dim=1), 1.0 / (first + 1.0), 0.0)
    return out


def _subsample_queries(
    query: Tensor, q_labels: Tensor, ref: Tensor | None, max_queries: int, seed: int
) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None, Tensor | None]:
    """A seeded subset of the queries searching the full set: (query, labels, ref, r_labels,
    self_index)."""
    if ref is not None:
        raise ValueError(
            "max_queries subsamples a search of a set against itself (ref=None); with a "
            "separate gallery, pass fewer queries instead"
        )
    if not isinstance(max_queries, int) or max_queries < 1:
        raise ValueError(f"max_queries must be a positive integer or None; got {max_queries!r}")
    if max_queries >= len(query):
        return query, q_labels, None, None, None
    generator = torch.Generator().manual_seed(seed)
    pick = torch.randperm(len(query), generator=generator)[:max_queries].sort().values
    return query[pick], q_labels[pick], query, q_labels, pick


def _class_average(values: Tensor, evaluated: Tensor, q_class: Tensor) -> float:
    classes = q_class[evaluated]
    sums = torch.zeros(int(q_class.max()) + 1, dtype=torch.float64).index_add_(
        0, classes, values[evaluated]
    )
    counts = torch.bincount(classes, minlength=len(sums))
    present = counts > 0
    return float((sums[present] / counts[present]).mean())


def _per_class_frame(
    per_query: dict[str, Tensor], evaluated: Tensor, q_class: Tensor, classes: Tensor
) -> pd.DataFrame:
    rows = []
    for c in torch.unique(q_class).tolist():
        members = q_class == c
        kept = members & evaluated
        row: dict[str, float] = {"label": int(classes[c])}
        row |= {
            name: float(values[kept].mean()) if kept.any() else float("nan")
            for name, values in per_query.items()
        }
        row["queries"] = int(kept.sum())
        row["excluded_queries"] = int((members & ~evaluated).sum())
        rows.append(row)
    return pd.DataFrame(rows).set_index("label")


def _class_ids(q_labels: Tensor, r_labels: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Labels mapped to 0..C-1 over the union of query and reference labels."""
    classes, inverse = torch.unique(torch.cat([q_labels, r_labels]), return_inverse=True)
    return inverse[: len(q_labels)], inverse[len(q_labels) :], classes


def _check_ks(ks: Sequence[int]) -> tuple[int, ...]:
    ks = tuple(ks)
    if not ks or any(not isinstance(k, int) or k < 1 for k in ks):
        raise ValueError(f"ks must be a non-empty sequence of positive integers; got {ks!r}")
    return ks
