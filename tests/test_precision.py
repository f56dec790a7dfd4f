"""Precision as a fault kind: half / double through every geometry and loss, and points far from
the origin through every distance the lab computes (issue 15, cases 1 and 2)."""

import math

import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st
from torch.nn import functional as F

from dmllab.build import build_loss
from dmllab.config import Config
from dmllab.geometry import Cosine, Euclidean, SquaredEuclidean
from dmllab.geometry.bregman import Bregman
from dmllab.losses import LOSSES, TupleLoss
from dmllab.metrics import knn, retrieval
from dmllab.train import NonFiniteLossError

HALVES = (torch.float16, torch.bfloat16)
# the rounding of one half-precision input (unit-scale values), as a tolerance on float32 results
HALF_TOL = {torch.float16: dict(rtol=2e-3, atol=2e-3), torch.bfloat16: dict(rtol=2e-2, atol=2e-2)}


def _geometries():
    torch.manual_seed(0)
    icnn = Bregman(4)
    return [
        SquaredEuclidean(),
        Euclidean(),
        Cosine(),
        icnn,
        Bregman(4, "maxaffine"),
        icnn.reversed(),
        icnn.symmetrised(),
    ]


GEOMETRIES = _geometries()


def _unit(n, d=4, seed=0):
    return F.normalize(torch.randn(n, d, generator=torch.Generator().manual_seed(seed)), dim=1)


def _pairwise_and_grad(geometry, z):
    z = z.detach().requires_grad_(True)
    D = geometry.pairwise(z, z)
    (grad,) = torch.autograd.grad((D * torch.linspace(0.5, 1.5, D.numel()).view_as(D)).sum(), z)
    return D.detach(), grad


# ------------------------------------------------------------------ case 1: half and double
@pytest.mark.parametrize("dtype", HALVES, ids=str)
def test_eight_unit_vectors_in_half_precision_through_euclidean(dtype):
    """The issue's instance: float16 made every gradient entry NaN (eps rounded to 0)."""
    z32 = _unit(8)
    D, grad = _pairwise_and_grad(Euclidean(), z32.to(dtype))
    D32, grad32 = _pairwise_and_grad(Euclidean(), z32)
    assert torch.isfinite(grad).all() and grad.dtype == dtype
    assert bool((D.diagonal() == 0).all())
    torch.testing.assert_close(D, D32, **HALF_TOL[dtype])
    torch.testing.assert_close(grad.float(), grad32, **HALF_TOL[dtype])


@pytest.mark.parametrize("geometry", GEOMETRIES, ids=lambda g: g.name)
@pytest.mark.parametrize("dtype", [*HALVES, torch.float64], ids=str)
def test_every_geometry_in_half_and_double(geometry, dtype):
    """Finite gradients, an (about) zero diagonal and the float32 values within the dtype's
    tolerance."""
    z32 = _unit(8)
    D, grad = _pairwise_and_grad(geometry, z32.to(dtype))
    D32, grad32 = _pairwise_and_grad(geometry, z32)
    tol = HALF_TOL.get(dtype, dict(rtol=1e-5, atol=1e-5))
    assert torch.isfinite(grad).all() and grad.dtype == dtype
    if isinstance(geometry, (SquaredEuclidean, Euclidean)):
        assert bool((D.diagonal() == 0).all())
    else:  # the GEMM forms' documented round-off
        assert float(D.diagonal().abs().max()) <= 1e-6 * max(1.0, float(D.abs().max()))
    torch.testing.assert_close(D.float(), D32, **tol)
    torch.testing.assert_close(grad.float(), grad32, **tol)
    if not list(geometry.parameters()):
        assert D.dtype == (torch.float64 if dtype == torch.float64 else torch.float32)


@pytest.mark.parametrize("name", sorted(LOSSES))
@pytest.mark.parametrize("dtype", [*HALVES, torch.float64], ids=str)
def test_every_loss_in_half_and_double(name, dtype):
    """Equal to float32 on the same (rounded) inputs, within the dtype's tolerance."""
    tuples = issubclass(LOSSES[name], TupleLoss)  # the others take no selection strategy
    config = Config(loss=name, **(dict(positives="nearest", negatives="hardest") if tuples else {}))
    labels = torch.arange(4).repeat_interleave(3)
    rounded = _unit(12, seed=1).to(dtype)
    values = []
    for z in (rounded, rounded.float()):
        torch.manual_seed(0)  # the same learned class vectors (proxies) for both precisions
        loss_fn = build_loss(
            config, Euclidean(), classes=torch.arange(4), embedding_dim=rounded.shape[1]
        )
        z = z.detach().requires_grad_(True)
        loss = loss_fn(z, labels)
        (grad,) = torch.autograd.grad(loss, z)
        assert torch.isfinite(loss) and torch.isfinite(grad).all() and grad.dtype == z.dtype
        values.append((loss.detach().float(), grad.float()))
    tol = HALF_TOL.get(dtype, dict(rtol=1e-5, atol=1e-5))
    torch.testing.assert_close(values[0][0], values[1][0], **tol)
    torch.testing.assert_close(values[0][1], values[1][1], **tol)


@settings(max_examples=15, deadline=None)
@example(dtype=torch.float16, n=7, d=5, scale=1e-2, seed=42, geometry=GEOMETRIES[1])
@given(
    dtype=st.sampled_from([*HALVES, torch.float32, torch.float64]),
    n=st.integers(1, 9),
    d=st.integers(1, 6),
    scale=st.sampled_from([1e-2, 1.0, 30.0]),
    seed=st.integers(0, 2**16),
    geometry=st.sampled_from(GEOMETRIES[:3]),
)
def test_property_fixed_geometries_are_finite_in_any_dtype(dtype, n, d, scale, seed, geometry):
    z = (torch.randn(n, d, generator=torch.Generator().manual_seed(seed)) * scale).to(dtype)
    z = torch.cat([z, z[:1]])  # a duplicate: a zero distance off the diagonal
    D, grad = _pairwise_and_grad(geometry, z)
    D_ref = geometry.pairwise(z.double(), z.double())  # the same (rounded) inputs, in double
    assert torch.isfinite(grad).all() and bool(
        (D.diagonal().abs() <= 1e-6 * max(scale, 1) ** 2).all()
    )
    # The square root turns the GEMM's float32 rounding of a zero distance (a few
    # eps32 * d * scale^2, d terms summed) into sqrt(eps32 * d) * scale: 1.5e-3 * scale measured
    # at d=5 (float16, n=7, scale=0.01, seed=42, the duplicate row); the bound allows
    # 2e-3 * sqrt(d) * scale.
    atol = (
        2e-3 * math.sqrt(d) * scale if isinstance(geometry, Euclidean) else 1e-4 * scale**2 + 1e-6
    )
    # D is returned in the input's dtype, so a half-precision result carries its own rounding
    rtol = max(1e-4, torch.finfo(dtype).eps)
    torch.testing.assert_close(D.double(), D_ref, rtol=rtol, atol=atol)


def test_fit_stops_at_a_non_finite_gradient_and_names_it(monkeypatch):
    """A loss can be finite while its gradient is NaN (case 1): fit stops before the weights are
    hit."""
    plain = Euclidean._entries

    def nan_gradient(self, a, b, rows, cols):
        d = plain(self, a, b, rows, cols)
        return d + torch.sqrt(d * 0.0)  # the same value; d sqrt(u) / du at u = 0 is inf, times 0

    monkeypatch.setattr(Euclidean, "_entries", nan_gradient)
    config = Config(
        dataset="mixture",
        geometry="euclidean",
        negatives="hardest",
        epochs=1,
        batches_per_epoch=2,
        classes_per_batch=2,
        samples_per_class=4,
        embedding_dim=4,
        split="stratified",
    )
    from dmllab.train import fit

    with pytest.raises(
        NonFiniteLossError, match=r"gradient became NaN or inf in epoch 0 .*loss was finite"
    ):
        fit(config, progress=False)


# ------------------------------------------------------------------ case 2: far from the origin
def _tight_classes(d=512, per_class=10, seed=1):
    """Ten tight classes (spread 0.05, class means 0.5 apart), overlapping in d = 512:
    Recall@1 0.85."""
    generator = torch.Generator().manual_seed(seed)
    means = torch.zeros(10, d)
    means[torch.arange(10), torch.arange(10)] = 0.5 / 2**0.5
    x = means.repeat_interleave(per_class, 0) + 0.05 * torch.randn(
        10 * per_class, d, generator=generator
    )
    return x, torch.arange(10).repeat_interleave(per_class)


@pytest.mark.parametrize("backend", ["torch", "faiss"])
def test_retrieval_of_tight_classes_shifted_by_1000(backend):
    """The issue's instance: the expanded ||a||^2 + ||b||^2 - 2ab lost every digit of the class gaps
    (Recall@1 0.05 here before centring); float64, centred data and pytorch-metric-learning give
    0.85."""
    if backend == "faiss":
        pytest.importorskip("faiss")
    x, y = _tight_classes()
    far = retrieval(x + 1000.0, y, ks=(1,), backend=backend)["recall@1"]
    near = retrieval(x, y, ks=(1,), backend=backend)["recall@1"]
    double = retrieval((x + 1000.0).double(), y, ks=(1,))["recall@1"]
    assert far == near == double == pytest.approx(0.85)


def test_retrieval_far_from_the_origin_matches_pytorch_metric_learning():
    from pml_compat import AccuracyCalculator  # the cross-checks skip without PML

    x, y = _tight_classes()
    pml = AccuracyCalculator(include=("precision_at_1",), k=1).get_accuracy(
        x + 1000.0, y, ref_includes_query=True
    )["precision_at_1"]
    assert (
        retrieval(x + 1000.0, y, ks=(1,))["recall@1"] == pytest.approx(pml) == pytest.approx(0.85)
    )


@pytest.mark.parametrize("geometry", [SquaredEuclidean(), Euclidean()], ids=lambda g: g.name)
def test_pairwise_distances_and_gradients_far_from_the_origin(geometry):
    """pairwise (and its hand-written backward) and the knn ranking vectors are shift-invariant."""
    x, _ = _tight_classes(d=32, per_class=4)
    near = x.double().requires_grad_(True)
    far = (x + 1000.0).requires_grad_(True)
    weights = torch.rand(40, 40, generator=torch.Generator().manual_seed(0))
    D_near = geometry.pairwise(near, near)
    D_far = geometry.pairwise(far, far[:20].detach().clone())
    (grad_near,) = torch.autograd.grad((D_near * weights.double()).sum(), near)
    (grad_far,) = torch.autograd.grad((geometry.pairwise(far, far) * weights).sum(), far)
    # float32 holds 1000 + x to within 6e-5 per coordinate: that, not the GEMM, bounds the error
    torch.testing.assert_close(D_far.double(), D_near[:, :20].detach(), rtol=0, atol=2e-3)
    torch.testing.assert_close(grad_far.double(), grad_near, rtol=0, atol=2e-2)
    indices, _ = knn(x + 1000.0, k=3, geometry=geometry, backend="torch")
    assert indices.tolist() == knn(x.double(), k=3, geometry=geometry)[0].tolist()


def test_retrieval_grid_neighbours_far_from_the_origin():
    """The viz search (formerly torch.cdist's expanded form) is the exact kNN search too: the grid
    calls `knn` with the queries' own rows excluded, as here."""
    x, _ = _tight_classes(d=512, per_class=3)
    queries = torch.tensor([0, 7, 15])

    def nearest(points):
        return knn(points[queries], points, 4, None, self_index=queries)[0]

    far = nearest(x + 1000.0)
    assert far.tolist() == nearest(x.double()).tolist()


@settings(max_examples=12, deadline=None)
@given(
    offset=st.sampled_from([0.0, 1.0, -37.5, 1e3, -1e4]),
    d=st.integers(6, 64),
    spread=st.sampled_from([0.01, 0.2]),
    seed=st.integers(0, 2**16),
    backend=st.sampled_from(["torch", "faiss"]),
)
def test_property_float32_retrieval_is_shift_invariant(offset, d, spread, seed, backend):
    """At any common offset, float32 retrieval equals double retrieval of the same (rounded)
    points."""
    if backend == "faiss":
        pytest.importorskip("faiss")
    generator = torch.Generator().manual_seed(seed)
    means = 0.5 * torch.eye(d)[:6]
    x = means.repeat_interleave(5, 0) + spread * torch.randn(30, d, generator=generator) + offset
    y = torch.arange(6).repeat_interleave(5)
    assert retrieval(x, y, ks=(1, 4), backend=backend) == retrieval(x.double(), y, ks=(1, 4))
