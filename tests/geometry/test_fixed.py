import pytest
import torch
from torch.nn import functional as F

from dmllab.geometry import GEOMETRIES, Cosine, Euclidean, Geometry, SquaredEuclidean, build


def _points(n, d=5, dtype=torch.float64, seed=0):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _loop(fn, a, b):
    return torch.stack([torch.stack([fn(x, y) for y in b]) for x in a])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fixed_geometries_match_a_loop_reference(dtype):
    a, b = _points(6, dtype=dtype), _points(4, dtype=dtype, seed=1) * 3.0
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == torch.float32 else dict(rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(
        SquaredEuclidean().pairwise(a, b), _loop(lambda x, y: ((x - y) ** 2).sum(), a, b), **tol
    )
    torch.testing.assert_close(
        Euclidean().pairwise(a, b), _loop(lambda x, y: (x - y).norm(), a, b), **tol
    )
    torch.testing.assert_close(
        Cosine().pairwise(a, b),
        _loop(lambda x, y: 1 - F.cosine_similarity(x, y, dim=0), a, b),
        **tol,
    )


def test_self_distances_are_zero_and_gradients_finite_with_duplicates():
    z = _points(5, dtype=torch.float32)
    z = torch.cat([z, z[:2]]).requires_grad_(True)  # rows 5, 6 duplicate rows 0, 1
    for geometry in (SquaredEuclidean(), Euclidean(), Cosine()):
        D = geometry.pairwise(z, z)
        assert torch.all(D.diagonal().abs() < 1e-6)
        assert D[0, 5].abs() < 1e-3 and D[1, 6].abs() < 1e-3
        (grad,) = torch.autograd.grad(D.sum(), z)
        assert torch.isfinite(grad).all(), geometry.name
    w = _points(3, dtype=torch.float32).requires_grad_(True)
    D = Euclidean().pairwise(w, w.detach().clone())  # equal rows, different tensors
    (grad,) = torch.autograd.grad(D.sum(), w)
    assert torch.isfinite(grad).all()


@pytest.mark.parametrize(
    "geometry", [SquaredEuclidean(), Euclidean(), Cosine()], ids=lambda g: g.name
)
def test_gradcheck(geometry):
    a = _points(4, d=3).requires_grad_(True)
    b = _points(3, d=3, seed=2).requires_grad_(True)
    assert torch.autograd.gradcheck(geometry.pairwise, (a, b))
    # pairwise(z, z) takes the one-GEMM backward path for the Euclidean family
    z = _points(5, d=3, seed=4).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: geometry.pairwise(x, x), (z,))
    only_b = torch.autograd.grad(geometry.pairwise(a.detach(), b).sum(), b)[0]
    reference = torch.autograd.grad(
        _loop(lambda x, y: geometry.pairwise(x[None], y[None])[0, 0], a.detach(), b).sum(), b
    )[0]
    torch.testing.assert_close(only_b, reference)


@pytest.mark.parametrize(
    "geometry", [SquaredEuclidean(), Euclidean(), Cosine()], ids=lambda g: g.name
)
def test_ranking_vectors_rank_like_the_distance(geometry):
    query, gallery = _points(7) * 2.0, _points(30, seed=3) + 0.5
    Q, G = geometry.ranking_vectors(query, gallery)
    by_score = torch.argsort(-(Q @ G.T), dim=1)
    by_distance = torch.argsort(geometry.pairwise(query, gallery), dim=1)
    assert torch.equal(by_score, by_distance)


def test_symmetry_flags_and_reversed_is_self():
    for geometry in (SquaredEuclidean(), Euclidean(), Cosine()):
        assert (
            geometry.symmetric
            and geometry.reversed() is geometry
            and isinstance(geometry, Geometry)
        )


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
    with pytest.raises(ValueError, match=r"no option.*temperature.*its options are: eps"):
        build("euclidean", dim=3, temperature=2.0)
    with pytest.raises(ValueError, match="its options are: none"):
        build("sqeuclidean", dim=3, eps=1e-6)
    with pytest.raises(ValueError, match="eps must be > 0"):
        Euclidean(eps=0.0)


def _entry_geometries():
    from dmllab.geometry.bregman import Bregman

    torch.manual_seed(0)
    icnn = Bregman(3).double()
    return [
        SquaredEuclidean(),
        Euclidean(),
        Cosine(),
        icnn,
        Bregman(3, "maxaffine").double(),
        icnn.reversed(),
        icnn.symmetrised(),
    ]


@pytest.mark.parametrize("geometry", _entry_geometries(), ids=lambda g: g.name)
def test_entries_equal_the_gathered_matrix_in_value_and_gradient(geometry):
    a = _points(6, d=3).requires_grad_(True)
    b = _points(5, d=3, seed=5).requires_grad_(True)
    rows, cols = torch.tensor([0, 0, 3, 5, 2, 3]), torch.tensor([1, 4, 4, 0, 2, 1])
    for second in (a, b):  # the self matrix pairwise(z, z) and a cross matrix
        direct = geometry.entries(a, second, rows, cols)
        gathered = geometry.pairwise(a, second)[rows, cols]
        torch.testing.assert_close(direct, gathered)
        weights = torch.linspace(0.5, 2.0, len(rows), dtype=a.dtype)
        inputs = (a, b) if second is b else (a,)
        inputs = inputs + tuple(p for p in geometry.parameters())
        unused = dict(allow_unused=True, materialize_grads=True)  # max-affine: b only picks a piece
        torch.testing.assert_close(
            torch.autograd.grad((direct * weights).sum(), inputs, **unused),
            torch.autograd.grad((gathered * weights).sum(), inputs, **unused),
        )
    assert geometry.cheap_entries == (geometry.name in ("sqeuclidean", "euclidean", "cosine"))


def test_euclidean_entries_are_zero_with_a_finite_gradient_at_coincident_points():
    z = torch.tensor([[1.0, 2.0], [1.0, 2.0], [0.0, 0.0]], requires_grad=True)
    d = Euclidean().entries(z, z, torch.tensor([0, 0, 2]), torch.tensor([1, 0, 0]))
    assert d[:2].tolist() == [0.0, 0.0]
    (grad,) = torch.autograd.grad(d.sum(), z)
    assert torch.isfinite(grad).all()


def test_the_registry_holds_every_name_and_marks_the_learned_ones():
    import dmllab.geometry as geometry

    # the geometry names of the public contract (Config and the lessons name them); Config reads
    # the registry itself
    assert set(geometry.GEOMETRIES) >= {
        "sqeuclidean",
        "euclidean",
        "cosine",
        "bregman",
        "bregman-maxaffine",
    }
    assert {name for name, cls in geometry.GEOMETRIES.items() if cls.learned} == {
        "bregman",
        "bregman-maxaffine",
    }
    for name, generator in (("bregman", "icnn"), ("bregman-maxaffine", "maxaffine")):
        assert issubclass(geometry.GEOMETRIES[name], geometry.Bregman)  # one class per generator
        built = geometry.build(name, dim=3)
        assert built.name == name and built.generator_name == generator and built.dim == 3
        with pytest.raises(TypeError, match="is learned"):
            geometry.resolve(name)


def test_unit_sphere_views_are_the_euclidean_distance_between_unit_vectors():
    """For unit vectors every fixed geometry's view is ||a - b||; learned ones read sqrt(2 D)."""
    from dmllab.geometry import Bregman

    z = F.normalize(_points(7, d=4), dim=1)
    chord = torch.cdist(z, z)
    for geometry in (SquaredEuclidean(), Euclidean(), Cosine()):
        D = geometry.pairwise(z, z).requires_grad_(True)
        view = geometry.unit_sphere_distance(D)
        assert not view.requires_grad
        torch.testing.assert_close(view, chord, rtol=1e-6, atol=1e-6)
    torch.manual_seed(0)
    bregman = Bregman(4).double()
    for divergence in (bregman, bregman.reversed(), bregman.symmetrised()):
        D = divergence.pairwise(z, z)
        torch.testing.assert_close(
            divergence.unit_sphere_distance(D), (2.0 * D.detach().clamp_min(0.0)).sqrt()
        )
    assert Euclidean().unit_sphere_distance(torch.tensor([[-1e-9, 1.0]])).tolist() == [
        [0.0, 1.0]
    ]  # clamped


def test_a_geometry_without_a_unit_sphere_view_says_so():
    class Taxicab(Geometry):
        name = "taxicab"

        def _pairwise(self, a, b):
            return torch.cdist(a, b, p=1)

    with pytest.raises(NotImplementedError, match=r"unit-sphere view.*distance-weighted"):
        Taxicab().unit_sphere_distance(torch.ones(2, 2))


def test_picker_reads_entries_like_pairwise():
    a = _points(5, d=3)
    for geometry in (SquaredEuclidean(), Euclidean(), Cosine()):
        pick = geometry.picker(a, a)
        rows, cols = torch.tensor([0, 4, 2]), torch.tensor([3, 1, 2])
        torch.testing.assert_close(pick(rows, cols), geometry.pairwise(a, a)[rows, cols])
        torch.testing.assert_close(pick(cols, rows), geometry.entries(a, a, cols, rows))
