import pytest
import torch
from torch.nn import functional as F

from dmllab.config import GEOMETRIES
from dmllab.geometry import Cosine, Euclidean, Geometry, SquaredEuclidean, build


def _points(n, d=5, dtype=torch.float64, seed=0):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _loop(fn, a, b):
    return torch.stack([torch.stack([fn(x, y) for y in b]) for x in a])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fixed_geometries_match_a_loop_reference(dtype):
    a, b = _points(6, dtype=dtype), _points(4, dtype=dtype, seed=1) * 3.0
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == torch.float32 else dict(rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(SquaredEuclidean().pairwise(a, b), _loop(lambda x, y: ((x - y) ** 2).sum(), a, b), **tol)
    torch.testing.assert_close(Euclidean().pairwise(a, b), _loop(lambda x, y: (x - y).norm(), a, b), **tol)
    torch.testing.assert_close(Cosine().pairwise(a, b), _loop(lambda x, y: 1 - F.cosine_similarity(x, y, dim=0), a, b), **tol)


def test_self_distances_are_zero_and_gradients_finite_with_duplicates():
    z = _points(5, dtype=torch.float32)
    z = torch.cat([z, z[:2]]).requires_grad_(True)          # rows 5, 6 duplicate rows 0, 1
    for geometry in (SquaredEuclidean(), Euclidean(), Cosine()):
        D = geometry.pairwise(z, z)
        assert torch.all(D.diagonal().abs() < 1e-6)
        assert D[0, 5].abs() < 1e-3 and D[1, 6].abs() < 1e-3
        (grad,) = torch.autograd.grad(D.sum(), z)
        assert torch.isfinite(grad).all(), geometry.name
    w = _points(3, dtype=torch.float32).requires_grad_(True)
    D = Euclidean().pairwise(w, w.detach().clone())         # equal rows, different tensors
    (grad,) = torch.autograd.grad(D.sum(), w)
    assert torch.isfinite(grad).all()


@pytest.mark.parametrize("geometry", [SquaredEuclidean(), Euclidean(), Cosine()], ids=lambda g: g.name)
def test_gradcheck(geometry):
    a = _points(4, d=3).requires_grad_(True)
    b = _points(3, d=3, seed=2).requires_grad_(True)
    assert torch.autograd.gradcheck(geometry.pairwise, (a, b))


@pytest.mark.parametrize("geometry", [SquaredEuclidean(), Euclidean(), Cosine()], ids=lambda g: g.name)
def test_ranking_vectors_rank_like_the_distance(geometry):
    query, gallery = _points(7) * 2.0, _points(30, seed=3) + 0.5
    Q, G = geometry.ranking_vectors(query, gallery)
    by_score = torch.argsort(-(Q @ G.T), dim=1)
    by_distance = torch.argsort(geometry.pairwise(query, gallery), dim=1)
    assert torch.equal(by_score, by_distance)


def test_symmetry_flags_and_reversed_is_self():
    for geometry in (SquaredEuclidean(), Euclidean(), Cosine()):
        assert geometry.symmetric and geometry.reversed() is geometry and isinstance(geometry, Geometry)


@pytest.mark.parametrize("name", ["sqeuclidean", "euclidean", "cosine"])
def test_build_fixed(name):
    geometry = build(name, dim=4)
    assert geometry.name == name


def test_build_covers_every_configured_name():
    bregman = pytest.importorskip("dmllab.geometry.bregman")
    for name in GEOMETRIES:
        geometry = build(name, dim=3)
        assert isinstance(geometry, Geometry)
        if name.startswith("bregman"):
            assert isinstance(geometry, bregman.Bregman)


def test_build_rejects_unknown_names_and_options():
    with pytest.raises(ValueError, match="choose one of: bregman, bregman-maxaffine, cosine"):
        build("hyperbolic", dim=3)
    with pytest.raises(ValueError, match="no option.*temperature.*allowed: eps"):
        build("euclidean", dim=3, temperature=2.0)
    with pytest.raises(ValueError, match="allowed: none"):
        build("sqeuclidean", dim=3, eps=1e-6)
    with pytest.raises(ValueError, match="eps must be > 0"):
        Euclidean(eps=0.0)
