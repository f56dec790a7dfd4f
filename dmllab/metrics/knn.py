"""Exact k-nearest-neighbour search under any geometry: the one search every retrieval metric reads.

    indices, scores = knn(query, ref=None, k=5, geometry=None)

- Nearest means smallest D(query || reference) under `geometry` (query first; default Euclidean).
- `ref=None` searches the query set itself and never returns a query as its own neighbour
  (excluded *by index*, so duplicates of a point still count as neighbours). `self_index` does the
  same for a query set that is a subset of `ref` (the position of each query inside `ref`; -1
  for a query that is not in it).
- A query never finds itself in a separate `ref` unnoticed: a reference row equal to a query
  (every value equal at the coarser of the two sets' precisions, so a float32, float16 or
  bfloat16 copy of float64 queries is theirs; -0.0 == 0.0; with the query's label where labels
  are given) is taken to be that query, which would be its own nearest neighbour at distance 0 in
  every geometry (D(x || x) = 0 for a Bregman divergence too). Such a reference is refused with
  the fix unless `query_in_ref` says what it is: True leaves each query's own row out (the
  lowest-index equal row; further equal rows are duplicates and count, as with `ref=None`), False
  says the equal rows are other samples and counts them (pytorch-metric-learning's
  `ref_includes_query=False`). `own_rows` finds the rows.
- Memory is bounded: the search runs over blocks of `chunk_size` queries; no [n, m] matrix is
  ever built.

How the search is done:

1. If the geometry has an inner-product form, `geometry.ranking_vectors(query, ref) -> (Q, G)`,
   the search is a maximum inner product search of Q against G: faiss `IndexFlatIP` when faiss
   is importable (`backend="auto"` or `"faiss"`; float32 only), else a torch GEMM + `topk` per
   block (`backend="torch"`). Scores are then Q.G (higher = nearer); they equal -D up to a
   constant per query row, not D itself.
2. Otherwise (`ranking_vectors` raises NotImplementedError) the search takes blocks of
   `geometry.pairwise` and the scores are exactly -D.

Tie rule: neighbours come in descending score; equal scores come in ascending reference index,
including at the k-th place (if items tied for the k-th place do not all fit, the ones with the
lowest indices are kept). Both backends apply it exactly to the scores they compute. faiss and
torch compute inner products with different summation orders, so on arbitrary floats they can
differ by a rounding error and order two items whose scores are within about 1e-7 (relative)
differently; on exactly representable products (small integers, as in the tests) they agree
item for item, ties included.

>>> import torch
>>> x = torch.tensor([[0.0], [1.0], [3.0], [4.0]])
>>> indices, scores = knn(x, k=2, backend="torch")
>>> indices.tolist()
[[1, 2], [0, 2], [3, 1], [2, 1]]
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from dmllab.arrays import as_class_ids, as_floats
from dmllab.geometry import resolve as resolve_geometry
from dmllab.geometry.base import Geometry, all_finite

Backend = Literal["auto", "torch", "faiss"]
BACKENDS = ("auto", "torch", "faiss")

# A torch block holds at most this many scores (2**23 float32 = 32 MiB).
_TORCH_BLOCK_ELEMENTS = 2**23
# faiss blocks its own distance computation; our query blocks only bound the [chunk, k] results.
_FAISS_QUERIES_PER_BLOCK = 4096


def knn(
    query: Tensor,
    ref: Tensor | None = None,
    k: int = 1,
    geometry: Geometry | str | None = None,
    *,
    chunk_size: int | None = None,
    backend: Backend = "auto",
    self_index: Tensor | None = None,
    query_in_ref: bool | None = None,
) -> tuple[Tensor, Tensor]:
    """The k nearest references of every query: (indices [n, k] long, scores [n, k]).

    query:      [n, d] embeddings (the queries come first in D(query || reference)).
    ref:        [m, d] reference (gallery) embeddings; None searches `query` itself, self excluded.
    k:          neighbours per query; at most m (m - 1 when each query's own entry is excluded).
    geometry:   a `Geometry` or a registered name (`"cosine"`, ...); None means Euclidean.
    chunk_size: queries per block (default: 32 MiB of scores for torch, 4096 queries for faiss).
    backend:    "auto" (faiss when importable and the ranking vectors are float32 on the CPU),
                "torch" or "faiss"; only used when the geometry has `ranking_vectors`.
    self_index: [n] position of each query inside `ref`, never returned as its neighbour (-1: the
                query is not in `ref`).
    query_in_ref: with a separate `ref` that has rows equal to queries (`own_rows`): None (the
                default) raises a ValueError naming the fix, True leaves each query's own row
                out, False counts the equal rows as other samples.

    Scores: higher = nearer, rows in descending score, ties in ascending index (module docstring).

    >>> import torch
    >>> query, ref = torch.tensor([[0.0], [2.0]]), torch.tensor([[1.9], [0.5], [5.0]])
    >>> indices, scores = knn(query, ref, k=2)
    >>> indices.tolist()
    [[1, 0], [0, 1]]
    """
    query = check_embeddings(query, "query")
    if ref is not None:
        ref = check_embeddings(ref, "ref")
    self_index = resolve_self_index(query, ref, self_index, query_in_ref, "knn")
    blocks = list(
        iter_knn(
            query, ref, k, geometry, chunk_size=chunk_size, backend=backend, self_index=self_index
        )
    )
    return torch.cat([b[1] for b in blocks]), torch.cat([b[2] for b in blocks])


def iter_knn(
    query: Tensor,
    ref: Tensor | None,
    k: int,
    geometry: Geometry | str | None = None,
    *,
    chunk_size: int | None = None,
    backend: Backend = "auto",
    self_index: Tensor | None = None,
) -> Iterator[tuple[int, Tensor, Tensor]]:
    """`knn` block by block: yields (start, indices [c, k], scores [c, k]) for the queries
    start..start+c.

    Metrics that reduce each block to per-query numbers keep memory at O(chunk x m). It searches
    `ref` as given: callers first settle which rows are the queries (`resolve_self_index`)."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}; got {backend!r}")
    query = check_embeddings(query, "query")
    reference = query if ref is None else check_embeddings(ref, "ref")
    if reference.shape[1] != query.shape[1]:
        raise ValueError(
            f"query has d={query.shape[1]} but ref has d={reference.shape[1]}; "
            "embed both with the same model"
        )
    if reference.dtype != query.dtype:  # float32 against float64: both in float64
        common = torch.promote_types(query.dtype, reference.dtype)
        query, reference = query.to(common), reference.to(common)
    geometry = resolve_geometry(geometry)
    n, m = len(query), len(reference)
    if ref is None and self_index is None:
        self_index = torch.arange(n)
    if self_index is not None:
        self_index = check_self_index(self_index, n, m)
    available = m - (self_index is not None)
    if not isinstance(k, int) or k < 1 or k > available:
        raise ValueError(
            f"k must be an integer in [1, {available}] (the reference has {m} items"
            f"{', minus the query itself' if self_index is not None else ''}); got {k!r}"
        )
    with torch.no_grad():
        try:
            q_vec, g_vec = geometry.ranking_vectors(query, reference)
        except NotImplementedError:
            yield from _pairwise_blocks(query, reference, k, geometry, chunk_size, self_index)
            return
        q_vec, g_vec = q_vec.detach(), g_vec.detach()
        if _use_faiss(backend, q_vec, g_vec):
            yield from _faiss_blocks(q_vec, g_vec, k, chunk_size, self_index)
        else:
            yield from _gemm_blocks(q_vec, g_vec, k, chunk_size, self_index)


def check_embeddings(x: Tensor, name: str) -> Tensor:
    """`x` as a detached 2-D floating tensor with at least one row and only finite values.

    Any array-like is accepted by the lab's one rule (`dmllab.arrays.as_floats`: float32 and
    float64 kept, every other real dtype, float16 included, becomes float32).
    Raises ValueError for other shapes, non-numeric values, NaN or inf."""
    x = as_floats(x, name)
    if x.dim() != 2 or len(x) == 0:
        raise ValueError(
            f"{name} must be a non-empty 2-D tensor [n, d]; got shape {tuple(x.shape)}"
        )
    if not all_finite(x):
        bad = int((~torch.isfinite(x)).any(dim=1).sum())
        raise ValueError(
            f"{name} contains NaN or inf in {bad} row(s); the model diverged or the "
            "inputs are broken: check the training loss and the data"
        )
    return x.detach()


def check_labels(labels: Tensor, n: int, name: str) -> Tensor:
    """`labels` as a 1-D long CPU tensor with one integer class id per embedding, else ValueError.

    Any container of integers is accepted (`dmllab.arrays.as_class_ids`)."""
    labels = as_class_ids(labels, name)
    if len(labels) != n:
        raise ValueError(
            f"{name} must be 1-D with one label per embedding ({n}); "
            f"got shape {tuple(labels.shape)}"
        )
    return labels


def resolve_self_index(
    query: Tensor,
    ref: Tensor | None,
    self_index: Tensor | None,
    query_in_ref: bool | None,
    caller: str,
    q_labels: Tensor | None = None,
    r_labels: Tensor | None = None,
) -> Tensor | None:
    """The [n] positions of the queries in `ref` that a search leaves out (-1: not in ref), or
    None: what `self_index` and `query_in_ref` say (see `knn`), checked against the rows.

    query, ref: checked embeddings (`check_embeddings`); ref=None is the query set itself.
    Raises ValueError when `ref` has rows equal to queries (with their labels, when given) and
    `query_in_ref` is None, or when the two options contradict each other; the message, headed
    by `caller`, names ref=None, query_in_ref and self_index."""
    if query_in_ref not in (None, True, False):
        raise ValueError(f"query_in_ref must be None, True or False; got {query_in_ref!r}")
    if ref is None:
        if query_in_ref is not None:
            raise ValueError(
                f"{caller}: query_in_ref is about a separate ref; with ref=None the queries are "
                "the reference and each query's own row is always left out"
            )
        return self_index
    if self_index is not None:
        if query_in_ref is False:
            raise ValueError(
                f"{caller}: self_index gives the queries' positions in ref but query_in_ref=False "
                "says ref holds none of them; pass one of the two"
            )
        return self_index
    if query_in_ref is False or query.shape[1] != ref.shape[1]:
        return None
    own = own_rows(query, ref, q_labels, r_labels)
    found = own >= 0
    if not found.any():
        return None
    if query_in_ref:
        return own
    first = int(found.nonzero()[0, 0])
    labelled = ", with its label" if q_labels is not None else ""
    raise ValueError(
        f"{caller}: ref holds {int(found.sum())} of the {len(query)} queries themselves (a row "
        f"equal to the query{labelled}; e.g. query {first} is ref row {int(own[first])}), and "
        "each would match itself at distance 0: a perfect score that measures nothing. If ref is "
        "the query set, pass ref=None (each query's own row is left out); if the queries are "
        "rows of ref, pass query_in_ref=True (or self_index=their positions in ref) to leave each "
        "one's own row out; if the equal rows are other samples that happen to be equal, pass "
        "query_in_ref=False to count them"
    )


def own_rows(
    query: Tensor,
    ref: Tensor,
    q_labels: Tensor | None = None,
    r_labels: Tensor | None = None,
) -> Tensor:
    """[n] long: for each query the lowest index of a row of `ref` equal to it, -1 where none is.

    Equal: every value equal once both sets are rounded to the coarser of their precisions (a
    set's precision is the coarsest of bfloat16, float16, float32 and float64 that holds all its
    values exactly, whatever dtype it arrives in: `check_embeddings` stores float16 and bfloat16
    as float32), so a lower-precision copy of the queries is found, and -0.0 equals 0.0; and the
    same label when labels are given (a sample has one label, so a row with another label is
    another sample). query [n, d], ref [m, d]: checked embeddings; q_labels [n], r_labels [m]:
    class ids or None.

    One pass over each set: a 64-bit hash of every rounded row (its float64 bit patterns, and its
    label, weighted and summed modulo 2**64), then an exact comparison of the rows whose hashes
    agree.

    >>> import torch
    >>> own_rows(torch.tensor([[1.0, 2.0], [5.0, 5.0]]), torch.tensor([[0.0, 0.0], [1.0, 2.0]]))
    tensor([ 1, -1])
    """
    dtype = min(_precision(query), _precision(ref), key=_PRECISIONS.index)
    q_hash = _row_hashes(query, q_labels, dtype)
    r_hash = _row_hashes(ref, r_labels, dtype)
    order = np.argsort(r_hash, kind="stable")  # equal hashes in ascending row index
    sorted_hash = r_hash[order]
    low = np.searchsorted(sorted_hash, q_hash, side="left")
    high = np.searchsorted(sorted_hash, q_hash, side="right")
    own = np.full(len(query), -1, dtype=np.int64)
    rows = np.flatnonzero(high > low)
    candidates = order[low[rows]]
    equal = _rows_equal(query, ref, q_labels, r_labels, rows, candidates, dtype)
    own[rows[equal]] = candidates[equal]
    for i in rows[~equal]:  # a hash collision: look at every row with this hash
        for j in order[low[i] : high[i]]:
            if _rows_equal(query, ref, q_labels, r_labels, np.array([i]), np.array([j]), dtype)[0]:
                own[i] = j
                break
    return torch.from_numpy(own)


# Rows per block when rows are hashed or compared: bounds the float64 copies (~32 MiB at d = 512).
_ROWS_PER_BLOCK = 8192
# An odd 64-bit weight per column (and one for the label): a fixed, seeded draw.
_HASH_SEED = 2023


#: The float dtypes rows are compared in, coarsest first (bfloat16 keeps 8 significant bits,
#: float16 11, float32 24, float64 53).
_PRECISIONS = (torch.bfloat16, torch.float16, torch.float32, torch.float64)


def _precision(x: Tensor) -> torch.dtype:
    """The coarsest of `_PRECISIONS` that holds every value of the finite `x` exactly."""
    for dtype in _PRECISIONS[:-1]:
        if all(
            torch.equal(block.to(dtype).to(block.dtype), block)
            for block in x.detach().cpu().split(_ROWS_PER_BLOCK)
        ):
            return dtype
    return torch.float64


def _rounded(x: Tensor, dtype: torch.dtype) -> Tensor:
    """`x` rounded to `dtype`, as float64 with -0.0 made 0.0."""
    return x.detach().cpu().to(dtype).double() + 0.0


def _row_hashes(x: Tensor, labels: Tensor | None, dtype: torch.dtype) -> np.ndarray:
    """sum_j bits(x_ij) * w_j (+ label_i * w_label) modulo 2**64, per row (uint64 [n]), of `x`
    rounded to `dtype`."""
    weights = np.random.default_rng(_HASH_SEED).integers(
        1, 2**63, size=x.shape[1] + 1, dtype=np.uint64
    ) | np.uint64(1)
    hashes = np.empty(len(x), dtype=np.uint64)
    for start in range(0, len(x), _ROWS_PER_BLOCK):
        block = _rounded(x[start : start + _ROWS_PER_BLOCK], dtype)
        bits = block.numpy().view(np.uint64)
        hashes[start : start + len(block)] = (bits * weights[:-1]).sum(axis=1)  # wraps mod 2**64
    if labels is not None:
        hashes += labels.numpy().astype(np.uint64) * weights[-1]
    return hashes


def _rows_equal(
    query: Tensor,
    ref: Tensor,
    q_labels: Tensor | None,
    r_labels: Tensor | None,
    rows: np.ndarray,
    candidates: np.ndarray,
    dtype: torch.dtype,
) -> np.ndarray:
    """Whether query[rows[i]] equals ref[candidates[i]] (values rounded to `dtype`, and labels),
    block by block."""
    equal = np.zeros(len(rows), dtype=bool)
    for start in range(0, len(rows), _ROWS_PER_BLOCK):
        i = torch.from_numpy(rows[start : start + _ROWS_PER_BLOCK])
        j = torch.from_numpy(candidates[start : start + _ROWS_PER_BLOCK])
        same = (_rounded(query[i], dtype) == _rounded(ref[j], dtype)).all(dim=1)
        if q_labels is not None and r_labels is not None:
            same &= q_labels[i] == r_labels[j]
        equal[start : start + len(i)] = same.numpy()
    return equal


def check_self_index(self_index: Tensor, n: int, m: int) -> Tensor:
    """`self_index` as a [n] long CPU tensor of positions in a reference of m rows (-1: none)."""
    self_index = torch.as_tensor(self_index)
    if self_index.shape != (n,) or torch.is_floating_point(self_index):
        raise ValueError(
            f"self_index must be an integer tensor of shape [{n}] (one reference position "
            f"per query); got shape {tuple(self_index.shape)} and dtype {self_index.dtype}"
        )
    if n and (self_index.min() < -1 or self_index.max() >= m):
        raise ValueError(
            f"self_index values must lie in [0, {m}) (positions in ref), or be -1 for a query "
            "that is not in ref"
        )
    return self_index.long().cpu()


def _use_faiss(backend: Backend, q_vec: Tensor, g_vec: Tensor) -> bool:
    if backend == "torch":
        return False
    try:
        import faiss  # noqa: F401  (optional: the `fast` extra)
    except ImportError as error:
        if backend == "faiss":
            raise ValueError(
                "backend='faiss' needs faiss: pip install faiss-cpu (or use backend='torch')"
            ) from error
        return False
    on_cpu = q_vec.device.type == "cpu" and g_vec.device.type == "cpu"
    if backend == "faiss":
        if not on_cpu:
            raise ValueError(
                "backend='faiss' searches CPU tensors; move the embeddings to the CPU "
                "or use backend='torch'"
            )
        return True
    return on_cpu and q_vec.dtype == torch.float32 and g_vec.dtype == torch.float32


def _gemm_blocks(
    q_vec: Tensor, g_vec: Tensor, k: int, chunk_size: int | None, self_index: Tensor | None
) -> Iterator[tuple[int, Tensor, Tensor]]:
    step = chunk_size or max(1, _TORCH_BLOCK_ELEMENTS // len(g_vec))
    g_t = g_vec.T.contiguous()
    for start in range(0, len(q_vec), step):
        scores = q_vec[start : start + step] @ g_t
        yield (start, *_top_k(scores, k, _self_block(self_index, start, len(scores))))


def _pairwise_blocks(
    query: Tensor,
    reference: Tensor,
    k: int,
    geometry: Geometry,
    chunk_size: int | None,
    self_index: Tensor | None,
) -> Iterator[tuple[int, Tensor, Tensor]]:
    step = chunk_size or max(1, _TORCH_BLOCK_ELEMENTS // len(reference))
    for start in range(0, len(query), step):
        scores = -geometry.pairwise(query[start : start + step], reference).detach()
        yield (start, *_top_k(scores, k, _self_block(self_index, start, len(scores))))


def _faiss_blocks(
    q_vec: Tensor, g_vec: Tensor, k: int, chunk_size: int | None, self_index: Tensor | None
) -> Iterator[tuple[int, Tensor, Tensor]]:
    import faiss

    q_np = np.ascontiguousarray(q_vec.numpy(), dtype=np.float32)
    g_np = np.ascontiguousarray(g_vec.numpy(), dtype=np.float32)
    index = faiss.IndexFlatIP(g_np.shape[1])
    index.add(g_np)
    has_self = self_index is not None
    # One extra neighbour shows whether the k-th place is tied; one more makes room for the query.
    depth = min(k + 1 + has_self, len(g_np))
    step = chunk_size or _FAISS_QUERIES_PER_BLOCK
    for start in range(0, len(q_np), step):
        found_scores, found_indices = index.search(q_np[start : start + step], depth)
        scores, indices = torch.from_numpy(found_scores), torch.from_numpy(found_indices)
        selves = _self_block(self_index, start, len(scores))
        if selves is not None:
            scores, indices = _drop_self(scores, indices, selves)
        tied = _tied_at_k(scores, k)
        scores, indices = _ascending_index_within_ties(scores[:, :k], indices[:, :k])
        if tied.any():
            # faiss keeps an arbitrary subset of items tied for the k-th place: redo those rows.
            rows = tied.nonzero().flatten()
            exact = torch.from_numpy(q_np[start + rows.numpy()]) @ torch.from_numpy(g_np).T
            indices[rows], scores[rows] = _top_k(exact, k, None if selves is None else selves[rows])
        yield start, indices, scores


def _self_block(self_index: Tensor | None, start: int, size: int) -> Tensor | None:
    return None if self_index is None else self_index[start : start + size]


def _drop_self(scores: Tensor, indices: Tensor, selves: Tensor) -> tuple[Tensor, Tensor]:
    """Remove each row's own entry, or its last entry when the own entry was not returned (or the
    query is not in the reference, -1)."""
    is_self = indices == selves[:, None]
    width = scores.shape[1] - 1
    position = torch.where(is_self.any(dim=1), is_self.int().argmax(dim=1), width)
    columns = torch.arange(width)[None, :]
    columns = columns + (columns >= position[:, None]).long()
    return scores.gather(1, columns), indices.gather(1, columns)


def _tied_at_k(sorted_scores: Tensor, k: int) -> Tensor:
    """Rows whose k-th and (k+1)-th best scores are equal (the k-th place is shared)."""
    if sorted_scores.shape[1] <= k:
        return torch.zeros(len(sorted_scores), dtype=torch.bool)
    return sorted_scores[:, k - 1] == sorted_scores[:, k]


def _top_k(scores: Tensor, k: int, selves: Tensor | None) -> tuple[Tensor, Tensor]:
    """(indices, scores) of the k highest scores per row, by the tie rule; overwrites `scores`."""
    if selves is not None:
        inside = selves >= 0  # -1: the query is not in the reference
        rows = torch.arange(len(scores))[inside]
        scores[rows.to(scores.device), selves[inside].to(scores.device)] = -torch.inf
    depth = min(k + 1, scores.shape[1])
    values, indices = scores.topk(depth, dim=1)
    tied = _tied_at_k(values, k)
    values, indices = values[:, :k], indices[:, :k]
    if tied.any():
        rows = tied.nonzero().flatten()
        indices[rows] = _lowest_index_top_k(scores[rows], values[rows, k - 1], k)
        values[rows] = scores[rows].gather(1, indices[rows])
    values, indices = _ascending_index_within_ties(values, indices)
    return indices.cpu(), values.cpu()


def _lowest_index_top_k(scores: Tensor, kth: Tensor, k: int) -> Tensor:
    """Indices of the k best per row: all above the k-th value, then the lowest-index ties."""
    above = scores > kth[:, None]
    tied = scores == kth[:, None]
    room = k - above.sum(dim=1, keepdim=True)
    chosen = above | (tied & (tied.cumsum(dim=1) <= room))
    return chosen.nonzero()[:, 1].view(len(scores), k)


def _ascending_index_within_ties(scores: Tensor, indices: Tensor) -> tuple[Tensor, Tensor]:
    """Sort each row by descending score, equal scores by ascending index.

    Only rows with equal neighbours or out of order are sorted (search results rarely are)."""
    rows = (scores[:, 1:] >= scores[:, :-1]).any(dim=1).nonzero().flatten()
    if len(rows) == 0:
        return scores, indices
    sub_scores, sub_indices = scores[rows], indices[rows]
    order = sub_indices.argsort(dim=1)
    sub_scores, sub_indices = sub_scores.gather(1, order), sub_indices.gather(1, order)
    order = sub_scores.argsort(dim=1, descending=True, stable=True)
    scores, indices = scores.clone(), indices.clone()
    scores[rows], indices[rows] = sub_scores.gather(1, order), sub_indices.gather(1, order)
    return scores, indices
