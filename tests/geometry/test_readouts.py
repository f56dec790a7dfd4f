"""Readouts of a divergence's geometry (level sets, asymmetry, curvature) on hand-checkable
cases."""

import numpy as np
import pytest
import torch
from torch import nn

from dmllab.geometry.base import Geometry
from dmllab.geometry.bregman import Bregman
from dmllab.geometry.readouts import (
    asymmetry_map,
    hessian_eigenvalues,
    level_set_grid,
    phi_minus_affine,
    relative_asymmetry,
)


class Generator(nn.Module):
    """Test-only generator from a closed-form phi."""

    def __init__(self, phi):
        super().__init__()
        self.phi = phi
        self.anchor = nn.Parameter(torch.zeros(()))

    def forward(self, x):
        return self.phi(x) + 0 * self.anchor


def bregman_from(phi):
    geometry = Bregman(2)
    geometry.generator = Generator(phi)
    return geometry


def quadratic(x):
    return (x * x).sum(dim=1)


def exponential(x):  # D(x, c) = sum_i e^{x_i} - e^{c_i} - e^{c_i} (x_i - c_i)
    return x.exp().sum(dim=1)


class SquaredEuclidean(Geometry):
    def _pairwise(self, a, b):
        return torch.cdist(a, b) ** 2


BOX = (-1.0, 2.0, -0.5, 1.5)


def grid_points(xs, ys):
    gx, gy = np.meshgrid(xs, ys)
    return gx, gy


def test_quadratic_phi_level_sets_are_circles_and_symmetric():
    geometry = bregman_from(quadratic)
    xs, ys, values = level_set_grid(geometry, (0.5, 0.25), BOX, resolution=7)
    gx, gy = grid_points(xs, ys)
    assert xs.shape == (7,) and ys.shape == (7,) and values.shape == (7, 7)
    np.testing.assert_allclose(xs[[0, -1]], BOX[:2])
    np.testing.assert_allclose(ys[[0, -1]], BOX[2:])
    np.testing.assert_allclose(values, (gx - 0.5) ** 2 + (gy - 0.25) ** 2, rtol=1e-5, atol=1e-5)
    second = level_set_grid(geometry, (0.5, 0.25), BOX, resolution=7, direction="second")[2]
    np.testing.assert_allclose(second, values, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(asymmetry_map(geometry, (0.5, 0.25), BOX, 7)[2], 0.0, atol=1e-5)


def test_level_set_directions_put_the_grid_point_in_the_named_slot():
    geometry = bregman_from(exponential)
    centre = np.array([0.3, -0.2])
    xs, ys, first = level_set_grid(geometry, centre, BOX, resolution=6, direction="first")
    second = level_set_grid(geometry, centre, BOX, resolution=6, direction="second")[2]
    gx, gy = grid_points(xs, ys)

    def divergence(x1, x2, c1, c2):
        return sum(np.exp(p) - np.exp(c) - np.exp(c) * (p - c) for p, c in ((x1, c1), (x2, c2)))

    np.testing.assert_allclose(first, divergence(gx, gy, *centre), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(
        second, divergence(centre[0], centre[1], gx, gy), rtol=1e-4, atol=1e-5
    )
    np.testing.assert_allclose(
        asymmetry_map(geometry, centre, BOX, 6)[2], first - second, atol=1e-6
    )


def test_relative_asymmetry_by_hand():
    x = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]])
    assert relative_asymmetry(SquaredEuclidean(), x) == pytest.approx(0.0, abs=1e-7)
    assert relative_asymmetry(bregman_from(quadratic), x) == pytest.approx(0.0, abs=1e-6)
    # phi = e^x1 + e^x2 on (0, 0) and (1, 0): only the first coordinate differs.
    geometry = bregman_from(exponential)
    points = torch.tensor([[0.0, 0.0], [1.0, 0.0]])
    forward = 1 - np.e - np.e * (0 - 1)  # D(0 || 1) = 1
    backward = np.e - 1 - 1 * (1 - 0)  # D(1 || 0) = e - 2
    expected = abs(forward - backward) / (forward + backward)  # D is 2x2 with a zero diagonal
    assert relative_asymmetry(geometry, points) == pytest.approx(expected, rel=1e-5)


def test_relative_asymmetry_rejects_degenerate_input():
    with pytest.raises(ValueError, match="at least 2"):
        relative_asymmetry(Bregman(2), torch.zeros(1, 2))
    with pytest.raises(ValueError, match="coincide"):
        relative_asymmetry(bregman_from(quadratic), torch.ones(3, 2))


def test_hessian_eigenvalues_of_known_generators():
    points = torch.randn(5, 2)
    np.testing.assert_allclose(hessian_eigenvalues(bregman_from(quadratic), points), 2.0, rtol=1e-6)
    exp_eigs = hessian_eigenvalues(bregman_from(exponential), points)
    np.testing.assert_allclose(exp_eigs, np.sort(points.exp().numpy(), axis=1), rtol=1e-5)
    maxaffine = hessian_eigenvalues(Bregman(2, "maxaffine", mu=0.0), points)
    np.testing.assert_allclose(maxaffine, 0.0)
    maxaffine = hessian_eigenvalues(Bregman(2, "maxaffine", mu=0.05), points)
    np.testing.assert_allclose(maxaffine, 0.05, rtol=1e-5)
    icnn = hessian_eigenvalues(Bregman(3, mu=0.5), torch.randn(4, 3))
    assert icnn.shape == (4, 3) and (icnn >= 0.5 - 1e-4).all()


def test_phi_minus_affine_removes_exactly_the_affine_part():
    xs, ys, curved = phi_minus_affine(bregman_from(quadratic), BOX, resolution=9)
    shifted = phi_minus_affine(
        bregman_from(lambda x: quadratic(x) + 3 * x[:, 0] - 2 * x[:, 1] + 10), BOX, 9
    )[2]
    assert curved.shape == (9, 9)
    np.testing.assert_allclose(shifted, curved, atol=1e-4)
    gx, gy = grid_points(xs, ys)
    for basis in (
        np.ones_like(gx),
        gx,
        gy,
    ):  # least squares: the residual is orthogonal to affine functions
        assert abs((curved * basis).sum()) < 1e-3
    np.testing.assert_allclose(
        phi_minus_affine(bregman_from(lambda x: 2 * x[:, 0] + 1), BOX, 5)[2], 0.0, atol=1e-5
    )


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda g: level_set_grid(g, (0, 0), direction="both"), "direction"),
        (lambda g: level_set_grid(g, (0, 0, 0)), "centre"),
        (lambda g: level_set_grid(g, (0, 0), box=(1, 0, 0, 1)), "xmin < xmax"),
        (lambda g: level_set_grid(g, (0, 0), box=(0, 1, 0)), "box"),
        (lambda g: level_set_grid(g, (0, 0), resolution=1), "resolution"),
        (lambda g: asymmetry_map(Bregman(3), (0, 0)), "2-D"),
        (lambda g: phi_minus_affine(Bregman(3)), "2-D"),
        (lambda g: hessian_eigenvalues(g, torch.zeros(2, 3)), "dim=2"),
        (lambda g: hessian_eigenvalues(g, torch.zeros(3)), r"\[n, d\]"),
    ],
)
def test_bad_readout_input_raises(call, match):
    with pytest.raises(ValueError, match=match):
        call(Bregman(2))


def test_generator_readouts_need_a_generator():
    with pytest.raises(TypeError, match="generator"):
        phi_minus_affine(SquaredEuclidean())
    with pytest.raises(TypeError, match="generator"):
        hessian_eigenvalues(SquaredEuclidean(), torch.zeros(2, 2))
