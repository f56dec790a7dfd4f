"""Exact kNN: loop references with ties, faiss vs torch, the pairwise fallback, directions,
errors."""

import importlib.util

import pytest
import torch

from dmllab.geometry.base import Geometry
from dmllab.geometry.euclidean import Euclidean
from dmllab.metrics.knn import knn

HAS_FAISS = importlib.util.find_spec("faiss") is not None
BACKENDS = ["torch", "faiss"] if HAS_FAISS else ["torch"]  # faiss: the `fast` extra
needs_faiss = pytest.mark.skipif(
    not HAS_FAISS, reason="faiss-cpu is not installed (the `fast` extra)"
)


class InnerGap(Geometry):
    """D(a || b) = ||a||^2 - a.b: asymmetric, ranked by a.b for a query a."""

    name = "inner-gap"
    symmetric = False

    def _pairwise(self, a, b):
        return (a * a).sum(dim=1, keepdim=True) - a @ b.T

    def ranking_vectors(self, query, gallery):
        return query, gallery


class InnerGapNoRanking(InnerGap):
    """The same divergence without an inner-product form: forces the chunked pairwise path."""

    def ranking_vectors(self, query, gallery):
        raise NotImplementedError


def loop_knn(query, ref, k, geometry, exclude_self):
    """Sort each query's references by (D ascending, index ascending), one query at a time."""
    rows = []
    for i in range(len(query)):
        d = geometry.pairwise(query[i : i + 1], ref)[0].tolist()
        order = sorted((value, j) for j, value in enumerate(d) if not (exclude_self and j == i))
        rows.append([j for _, j in order[:k]])
    return rows


def tied_points(n=40, seed=0):
    """Small-integer points: many exactly tied distances, exactly representable inner products."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 3, (n, 2), generator=g).float()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("k", [1, 3, 7])
def test_self_search_matches_loop_reference_with_ties(backend, k):
    x = tied_points()
    indices, _ = knn(x, k=k, backend=backend, chunk_size=9)
    assert indices.tolist() == loop_knn(x, x, k, Euclidean(), exclude_self=True)


@pytest.mark.parametrize("backend", BACKENDS)
def test_separate_gallery_matches_loop_reference_with_ties(backend):
    query, gallery = tied_points(15, seed=1), tied_points(30, seed=2)
    # small integer points: some gallery rows equal a query, and count as the other samples they are
    indices, _ = knn(query, gallery, k=5, backend=backend, chunk_size=4, query_in_ref=False)
    assert indices.tolist() == loop_knn(query, gallery, 5, Euclidean(), exclude_self=False)


@needs_faiss
def test_faiss_and_torch_agree_on_random_floats():
    x = torch.randn(300, 16, generator=torch.Generator().manual_seed(0))
    i_torch, s_torch = knn(x, k=10, backend="torch")
    i_faiss, s_faiss = knn(x, k=10, backend="faiss")
    assert torch.equal(i_torch, i_faiss)
    torch.testing.assert_close(s_torch, s_faiss, rtol=1e-5, atol=1e-4)


def test_faiss_and_torch_agree_on_every_point_tied():
    x = torch.zeros(12, 3)
    expected = [[j for j in range(12) if j != i][:4] for i in range(12)]
    for backend in BACKENDS:
        assert knn(x, k=4, backend=backend)[0].tolist() == expected


def test_self_is_excluded_by_index_not_by_value():
    x = torch.tensor([[0.0], [0.0], [5.0]])
    for backend in BACKENDS:
        indices, _ = knn(x, k=2, backend=backend)
        assert indices.tolist() == [[1, 2], [0, 2], [0, 1]]


def test_scores_are_monotone_in_distance_and_sorted():
    x = torch.randn(50, 4, generator=torch.Generator().manual_seed(3))
    indices, scores = knn(x, k=6, backend="torch")
    assert (scores[:, :-1] >= scores[:, 1:]).all()
    d = Euclidean().pairwise(x, x).gather(1, indices)
    assert (d[:, :-1] <= d[:, 1:] + 1e-5).all()


@pytest.mark.parametrize("geometry", [InnerGap(), InnerGapNoRanking()], ids=["mips", "pairwise"])
def test_asymmetric_geometry_both_directions(geometry):
    x = tied_points(25, seed=4) - 1.0
    for g in (geometry, geometry.reversed()):
        indices, _ = knn(x, k=4, geometry=g, chunk_size=6, backend="torch")
        assert indices.tolist() == loop_knn(x, x, 4, g, exclude_self=True)


def test_direction_changes_the_neighbour_on_a_known_example():
    # D(a || b) = a^2 - a b.  Query 1: D(1 || 2) = -1, D(1 || 3) = -2, so the nearest is 3
    # (index 2).
    # Reversed, D(b || 1) = b^2 - b: b = 2 gives 2, b = 3 gives 6, so the nearest is 2 (index 1).
    x = torch.tensor([[1.0], [2.0], [3.0]])
    assert knn(x, k=1, geometry=InnerGap())[0][0].item() == 2
    assert knn(x, k=1, geometry=InnerGap().reversed())[0][0].item() == 1


def test_pairwise_fallback_scores_are_minus_distance():
    x = torch.randn(20, 3, generator=torch.Generator().manual_seed(5))
    indices, scores = knn(x, k=3, geometry=InnerGapNoRanking())
    torch.testing.assert_close(scores, -InnerGap().pairwise(x, x).gather(1, indices))


def test_self_index_excludes_each_query_inside_the_reference():
    ref = tied_points(30, seed=6)
    positions = torch.tensor([3, 17, 29, 0])
    for backend in BACKENDS:
        indices, _ = knn(ref[positions], ref, k=5, backend=backend, self_index=positions)
        full = loop_knn(ref, ref, 5, Euclidean(), exclude_self=True)
        assert indices.tolist() == [full[p] for p in positions.tolist()]


def test_k_equal_to_all_candidates():
    x = torch.randn(6, 2, generator=torch.Generator().manual_seed(7))
    for backend in BACKENDS:
        indices, _ = knn(x, k=5, backend=backend)
        assert indices.tolist() == loop_knn(x, x, 5, Euclidean(), exclude_self=True)


def test_float64_uses_torch_and_matches():
    x = torch.randn(40, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(8))
    indices, scores = knn(x, k=3)
    assert scores.dtype == torch.float64
    assert indices.tolist() == loop_knn(x, x, 3, Euclidean(), exclude_self=True)


@pytest.mark.parametrize(
    "bad, message",
    [
        (dict(query=torch.tensor([[0.0], [float("nan")]])), "NaN"),
        (dict(query=torch.zeros(3, 2), k=3), "k must be"),
        (dict(query=torch.zeros(1, 2)), "k must be"),
        (dict(query=torch.zeros(3, 2), backend="gpu"), "backend"),
        (dict(query=torch.zeros(3, 2), ref=torch.zeros(3, 4)), "d=2"),
        (dict(query=torch.zeros(3)), "2-D"),
        (
            dict(query=torch.zeros(3, 2), ref=torch.zeros(4, 2), self_index=torch.tensor([0, 1])),
            "self_index",
        ),
    ],
)
def test_invalid_inputs_raise_value_error(bad, message):
    args = dict(k=1) | bad
    with pytest.raises(ValueError, match=message):
        knn(**args)


@pytest.mark.parametrize("direction", ["query_first", "gallery_first", "symmetrised"])
def test_learned_bregman_ranking_form_agrees_with_its_divergence(direction):
    from dmllab.geometry.bregman import Bregman

    torch.manual_seed(0)
    bregman = Bregman(3)
    geometry = {
        "query_first": bregman,
        "gallery_first": bregman.reversed(),
        "symmetrised": bregman.symmetrised(),
    }[direction]
    x = torch.randn(40, 3, generator=torch.Generator().manual_seed(9))
    indices, _ = knn(x, k=5, geometry=geometry, backend="torch")
    d = geometry.pairwise(x, x).fill_diagonal_(float("inf"))
    nearest = d.sort(dim=1).values[:, :5]
    torch.testing.assert_close(d.gather(1, indices), nearest, rtol=1e-5, atol=1e-5)
