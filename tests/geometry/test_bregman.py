"""The learned Bregman geometry: definition, special cases, second-order gradients, ranking
forms."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from dmllab.geometry.base import Reversed, Symmetrised
from dmllab.geometry.bregman import Bregman
from dmllab.geometry.generators import ICNN, MaxAffine


class Quadratic(nn.Module):
    """Test-only generator phi(x) = x^T M x (+ an affine term), M symmetric positive definite."""

    def __init__(self, matrix, slope=None, offset=0.0):
        super().__init__()
        self.matrix = nn.Parameter(matrix)
        dim = matrix.shape[0]
        self.slope = nn.Parameter(torch.zeros(dim, dtype=matrix.dtype) if slope is None else slope)
        self.offset = offset

    def forward(self, x):
        return ((x @ self.matrix) * x).sum(dim=1) + x @ self.slope + self.offset


def with_generator(generator, dim):
    geometry = Bregman(dim)
    geometry.generator = generator
    return geometry


def naive_divergence(geometry, x, y):
    """D(x, y) = phi(x) - phi(y) - <grad phi(y), x - y> for one pair, grad by autograd."""
    y = y.detach().requires_grad_(True)
    phi_y = geometry.generator(y[None])[0]
    (grad_y,) = torch.autograd.grad(phi_y, y)
    with torch.no_grad():
        return geometry.generator(x[None])[0] - phi_y - grad_y @ (x - y)


def naive_matrix(geometry, a, b):
    return torch.stack([torch.stack([naive_divergence(geometry, x, y) for y in b]) for x in a])


def small_icnn(dim=3, seed=0, **options):
    torch.manual_seed(seed)
    geometry = Bregman(dim, hidden=(8, 8), **options).double()
    with torch.no_grad():  # move away from the constant init so the test sees a generic phi
        for p in geometry.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return geometry


# -- definition and properties -------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    generator=st.sampled_from(["icnn", "maxaffine"]),
    scale=st.sampled_from([0.1, 1.0, 3.0]),
)
def test_divergence_is_non_negative_and_zero_on_the_diagonal(seed, generator, scale):
    torch.manual_seed(seed)
    geometry = Bregman(4, generator)
    x = scale * torch.randn(7, 4)
    D = geometry.pairwise(x, x)
    tolerance = 1e-6 * geometry.phi(x).abs().max().item() + 1e-6
    assert (D >= 0).all()
    assert D.diagonal().abs().max() <= tolerance


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_icnn_generator_is_convex_along_segments(seed):
    geometry = small_icnn(seed=seed)
    x, y = torch.randn(2, 10, 3, dtype=torch.float64)
    t = torch.rand(10, 1, dtype=torch.float64)
    with torch.no_grad():
        middle = geometry.phi(t * x + (1 - t) * y)
        chord = t[:, 0] * geometry.phi(x) + (1 - t[:, 0]) * geometry.phi(y)
    assert (middle <= chord + 1e-9).all()


def test_strong_convexity_bound_holds():
    geometry = small_icnn(mu=0.5)
    a, b = torch.randn(6, 3, dtype=torch.float64), torch.randn(5, 3, dtype=torch.float64)
    assert (geometry.pairwise(a, b) >= 0.25 * torch.cdist(a, b) ** 2 - 1e-9).all()


def test_icnn_with_zero_output_weights_is_squared_euclidean_scaled_by_mu():
    geometry = Bregman(3, mu=2.0).double()
    with torch.no_grad():
        geometry.generator.output_raw.fill_(-800.0)  # softplus(-800) == 0 in float64
    a, b = torch.randn(6, 3, dtype=torch.float64), torch.randn(4, 3, dtype=torch.float64)
    torch.testing.assert_close(
        geometry.pairwise(a, b), torch.cdist(a, b) ** 2, rtol=1e-10, atol=1e-10
    )


def test_quadratic_generator_gives_mahalanobis_and_ignores_affine_terms():
    torch.manual_seed(1)
    root = torch.randn(3, 3, dtype=torch.float64)
    matrix = root @ root.T + 0.1 * torch.eye(3, dtype=torch.float64)
    a, b = torch.randn(5, 3, dtype=torch.float64), torch.randn(4, 3, dtype=torch.float64)
    expected = torch.einsum("ijd,de,ije->ij", a[:, None] - b[None], matrix, a[:, None] - b[None])
    plain = with_generator(Quadratic(matrix), 3)
    shifted = with_generator(Quadratic(matrix, torch.randn(3, dtype=torch.float64), 7.0), 3)
    torch.testing.assert_close(plain.pairwise(a, b), expected, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(shifted.pairwise(a, b), expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("generator", ["icnn", "maxaffine"])
def test_pairwise_gemm_form_matches_the_definition(generator):
    torch.manual_seed(2)
    geometry = Bregman(3, generator).double()
    a, b = torch.randn(5, 3, dtype=torch.float64), torch.randn(4, 3, dtype=torch.float64)
    expected = naive_matrix(geometry, a, b).clamp_min(0)
    torch.testing.assert_close(geometry.pairwise(a, b), expected, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(
        geometry.reversed().pairwise(a, b),
        naive_matrix(geometry, b, a).T.clamp_min(0),
        rtol=1e-9,
        atol=1e-9,
    )
    symmetric = naive_matrix(geometry, a, b) + naive_matrix(geometry, b, a).T
    torch.testing.assert_close(
        geometry.symmetrised().pairwise(a, b), symmetric.clamp_min(0), rtol=1e-9, atol=1e-9
    )


@pytest.mark.parametrize("mu", [0.0, 0.05, 1.5])
def test_maxaffine_closed_form(mu):
    torch.manual_seed(3)
    geometry = Bregman(2, "maxaffine", pieces=5, mu=mu).double()
    generator = geometry.generator  # the weights as they act are the stored ones x lr_multiplier
    weight, bias = (
        generator.lr_multiplier * p.detach() for p in (generator.weight, generator.bias)
    )
    a, b = torch.randn(9, 2, dtype=torch.float64), torch.randn(7, 2, dtype=torch.float64)
    scores = a @ weight.T + bias
    active = (b @ weight.T + bias).argmax(dim=1)
    expected = torch.tensor(
        [
            [
                scores[i].max() - scores[i, active[j]] + mu / 2 * ((a[i] - b[j]) ** 2).sum()
                for j in range(7)
            ]
            for i in range(9)
        ],
        dtype=torch.float64,
    )
    torch.testing.assert_close(geometry.pairwise(a, b), expected)
    torch.testing.assert_close(geometry.pairwise(a, b), naive_matrix(geometry, a, b))
    if mu == 0:  # the plain max-affine divergence: D(x, .) takes at most K values
        assert geometry.pairwise(a, b)[0].unique().numel() <= 5


def test_maxaffine_without_mu_sends_no_gradient_to_the_second_argument():
    geometry = Bregman(2, "maxaffine", mu=0.0)
    a, b = torch.randn(4, 2, requires_grad=True), torch.randn(3, 2, requires_grad=True)
    geometry.pairwise(a, b).sum().backward()
    assert a.grad.abs().sum() > 0
    assert b.grad is None or b.grad.abs().sum() == 0


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    mu=st.sampled_from([0.01, 0.05, 1.0]),
    scale=st.sampled_from([0.1, 1.0, 5.0]),
)
def test_maxaffine_with_mu_is_strongly_convex_so_only_equal_points_tie_at_zero(seed, mu, scale):
    """Points that share a piece are at D = 0 under the plain max-affine divergence; the
    quadratic keeps D(x, y) >= (mu / 2) ||x - y||^2, so they are ranked by distance instead."""
    torch.manual_seed(seed)
    geometry = Bregman(3, "maxaffine", pieces=2, mu=mu).double()
    x = scale * torch.randn(12, 3, dtype=torch.float64)
    with torch.no_grad():
        D = geometry.pairwise(x, x)
    bound = mu / 2 * torch.cdist(x, x) ** 2
    assert (D - bound >= -1e-9 * (1 + bound)).all()
    assert (D.diagonal() == 0).all()
    off_diagonal = ~torch.eye(12, dtype=torch.bool)
    assert (D[off_diagonal] > 0).all()
    plain = Bregman(3, "maxaffine", pieces=2, mu=0.0).double()
    plain.generator.load_state_dict(geometry.generator.state_dict())
    with torch.no_grad():
        assert (plain.pairwise(x, x)[off_diagonal] == 0).any()  # 12 points, 2 pieces: ties


def test_maxaffine_mu_is_checked_like_the_icnn_one():
    for bad in (-0.1, float("nan"), True):
        with pytest.raises(ValueError, match=r"Bregman\(generator='maxaffine'\): mu must be"):
            Bregman(2, "maxaffine", mu=bad)


# -- gradients -----------------------------------------------------------------------------


def loss_of(geometry, a, b, weights):
    return (geometry.pairwise(a, b) * weights).sum()


def test_parameter_gradient_is_second_order_and_matches_finite_differences():
    geometry = small_icnn(seed=4)
    a, b = torch.randn(4, 3, dtype=torch.float64), torch.randn(5, 3, dtype=torch.float64)
    weights = torch.rand(4, 5, dtype=torch.float64)
    parameter = geometry.generator.input_layers[0].weight
    (analytic,) = torch.autograd.grad(loss_of(geometry, a, b, weights), parameter)

    picked = [(0, 0), (3, 1), (7, 2)]
    numeric = torch.zeros_like(parameter)
    eps = 1e-6
    with torch.no_grad():
        for index in picked:
            original = parameter[index].item()
            parameter[index] = original + eps
            up = loss_of(geometry, a, b, weights)
            parameter[index] = original - eps
            down = loss_of(geometry, a, b, weights)
            parameter[index] = original
            numeric[index] = (up - down) / (2 * eps)
    for index in picked:
        assert analytic[index].item() == pytest.approx(numeric[index].item(), rel=1e-5, abs=1e-7)

    # The first-order-only gradient (grad phi treated as a constant) is a different objective.
    phi_b = geometry.phi(b)
    u_b = geometry.grad_phi(b, create_graph=False)
    D_first = geometry.phi(a)[:, None] - phi_b[None] - a @ u_b.T + (u_b * b).sum(dim=1)[None]
    (detached,) = torch.autograd.grad((D_first * weights).sum(), parameter)
    assert not torch.allclose(detached, analytic, rtol=1e-3, atol=1e-6)


def test_input_gradient_through_both_arguments_matches_finite_differences():
    geometry = small_icnn(seed=5)
    z = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    weights = torch.rand(4, 4, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda t: (geometry.pairwise(t, t) * weights).sum(), (z,))
    assert torch.autograd.gradcheck(lambda t: geometry.symmetrised().pairwise(t, t).sum(), (z,))


def test_evaluation_under_no_grad_is_detached_and_equal():
    geometry = small_icnn(seed=6)
    a, b = torch.randn(4, 3, dtype=torch.float64), torch.randn(5, 3, dtype=torch.float64)
    training = geometry.pairwise(a, b)
    assert training.requires_grad
    geometry.eval()
    with torch.no_grad():
        evaluation = geometry.pairwise(a, b)
        u = geometry.grad_phi(b)
    assert not evaluation.requires_grad and not u.requires_grad
    torch.testing.assert_close(evaluation, training.detach())


# -- ranking forms -------------------------------------------------------------------------


@pytest.mark.parametrize("generator", ["icnn", "maxaffine"])
@pytest.mark.parametrize("direction", ["query-first", "gallery-first", "symmetrised"])
def test_ranking_vectors_reproduce_the_pairwise_order(generator, direction):
    torch.manual_seed(7)
    base = Bregman(3, generator).double()
    geometry = {
        "query-first": base,
        "gallery-first": base.reversed(),
        "symmetrised": base.symmetrised(),
    }[direction]
    query, gallery = (
        torch.randn(6, 3, dtype=torch.float64),
        2 * torch.randn(20, 3, dtype=torch.float64),
    )
    with torch.no_grad():
        D = geometry.pairwise(query, gallery)
        Q, G = geometry.ranking_vectors(query, gallery)
    offset = D + Q @ G.T  # D = const(query) - score, so this is constant along each row
    torch.testing.assert_close(offset, offset[:, :1].expand_as(offset), rtol=1e-9, atol=1e-8)
    if generator == "icnn":  # max-affine query-first has ties; the row offset check covers it
        assert torch.equal(torch.argsort(-(Q @ G.T), dim=1), torch.argsort(D, dim=1))


def test_wrappers_keep_the_generic_types_and_round_trip():
    geometry = Bregman(2)
    assert isinstance(geometry.reversed(), Reversed)
    assert isinstance(geometry.symmetrised(), Symmetrised)
    assert geometry.reversed().reversed() is geometry
    symmetrised = geometry.symmetrised()
    assert symmetrised.symmetric and not geometry.symmetric
    assert symmetrised.reversed() is symmetrised and symmetrised.symmetrised() is symmetrised


def test_names_and_generators():
    assert Bregman(2).name == "bregman" and isinstance(Bregman(2).generator, ICNN)
    maxaffine = Bregman(2, "maxaffine", pieces=3)
    assert maxaffine.name == "bregman-maxaffine" and isinstance(maxaffine.generator, MaxAffine)
    assert maxaffine.generator.weight.shape == (3, 2)
    assert [layer.out_features for layer in Bregman(2, hidden=(4, 5)).generator.input_layers] == [
        4,
        5,
    ]


def test_nonnegative_weights_start_at_the_documented_value():
    generator = Bregman(2).generator
    for raw in [*generator.z_weights_raw, generator.output_raw]:
        acting = nn.functional.softplus(generator.lr_multiplier * raw)
        torch.testing.assert_close(acting, torch.full_like(raw, 0.3))


# -- the learning-rate multiplier ----------------------------------------------------------


@pytest.mark.parametrize("generator", ["icnn", "maxaffine"])
@given(rate=st.floats(0.1, 100.0), other=st.floats(0.1, 100.0))
@settings(max_examples=10, deadline=None)
def test_a_state_dict_is_the_same_phi_under_any_multiplier(generator, rate, other):
    torch.manual_seed(8)
    saved = Bregman(3, generator, lr_multiplier=rate).double()
    loaded = Bregman(3, generator, lr_multiplier=other).double()
    loaded.load_state_dict(saved.state_dict())
    x = torch.randn(6, 3, dtype=torch.float64)
    # the stored weights were divided in float32 before .double(): equal to float32 round-off
    torch.testing.assert_close(loaded.phi(x), saved.phi(x), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(loaded.pairwise(x, x), saved.pairwise(x, x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("generator", ["icnn", "maxaffine"])
def test_a_state_dict_from_before_the_multiplier_loads_as_the_same_phi(generator):
    torch.manual_seed(9)
    plain = Bregman(3, generator, lr_multiplier=1.0)
    old = {  # saved before `parameter_scale`: the weights as they act, no record of a factor
        key: value for key, value in plain.state_dict().items() if "parameter_scale" not in key
    }
    geometry = Bregman(3, generator)
    geometry.load_state_dict(old)
    x = torch.randn(5, 3)
    torch.testing.assert_close(geometry.phi(x), plain.phi(x))


@pytest.mark.parametrize("generator", ["icnn", "maxaffine"])
def test_adam_moves_the_generator_lr_multiplier_times_as_far(generator):
    """One Adam step on the same phi: every acting weight moves `lr_multiplier` times as far (Adam's
    first step is lr * sign(grad) in the stored value)."""
    x = torch.rand(12, 2) + 0.1

    def acting_weights_after_one_step(rate):
        torch.manual_seed(10)
        geometry = Bregman(2, generator, lr_multiplier=rate)
        before = [rate * p.detach().clone() for p in geometry.parameters()]
        optimiser = torch.optim.Adam(geometry.parameters(), lr=1e-3, eps=1e-30)
        geometry.pairwise(x, x[:4]).sum().backward()
        optimiser.step()
        return before, [rate * p.detach() for p in geometry.parameters()]

    (start_1, end_1), (start_10, end_10) = (acting_weights_after_one_step(r) for r in (1.0, 10.0))
    for a1, b1, a10, b10 in zip(start_1, end_1, start_10, end_10, strict=True):
        torch.testing.assert_close(a10, a1)  # the same phi at the start
        torch.testing.assert_close(b10 - a10, 10 * (b1 - a1), rtol=1e-4, atol=1e-7)


# -- bad input -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, options, match",
    [
        ((2,), {"lr_multiplier": 0}, "lr_multiplier"),
        ((2, "maxaffine"), {"lr_multiplier": float("nan")}, "lr_multiplier"),
        ((0,), {}, "dim"),
        ((2.5,), {}, "dim"),
        ((2, "mlp"), {}, "unknown generator"),
        ((2,), {"mu": -0.1}, "mu"),
        ((2,), {"hidden": ()}, "hidden"),
        ((2,), {"hidden": (8, 0)}, "hidden"),
        ((2,), {"pieces": 4}, "unknown option"),
        ((2, "maxaffine"), {"hidden": (4,)}, "unknown option"),
        ((2, "maxaffine"), {"pieces": 1}, "pieces"),
        ((2,), {"widths": (8,)}, "widths"),
    ],
)
def test_bad_construction_raises(args, options, match):
    with pytest.raises(ValueError, match=match):
        Bregman(*args, **options)


def test_zero_mu_is_allowed():
    assert Bregman(2, mu=0.0).generator.mu == 0.0


def test_dimension_mismatch_and_non_finite_generator_output_raise():
    geometry = Bregman(3)
    with pytest.raises(ValueError, match=r"\[n, 3\]"):
        geometry.pairwise(torch.randn(2, 2), torch.randn(2, 2))
    with pytest.raises(ValueError, match="dimension mismatch"):
        geometry.pairwise(torch.randn(2, 3), torch.randn(2, 4))
    with pytest.raises(ValueError, match="learning rate"):
        geometry.pairwise(torch.full((2, 3), 1e20), torch.randn(2, 3))
