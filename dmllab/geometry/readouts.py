"""Numbers and grids that show what a (learned) divergence looks like; the viz layer draws them.

Pure functions returning numpy arrays or floats, no plotting. Each takes a Geometry or a
registered name (`dmllab.geometry.resolve`) and points in any array-like (`dmllab.arrays`).
Grids follow the convention of matplotlib's `contour(xs, ys, values)` and plotly's
`Contour(x=xs, y=ys, z=values)`: `values[i, j]` is the value at the point (xs[j], ys[i]).

>>> import torch
>>> from dmllab.geometry.bregman import Bregman
>>> geometry = Bregman(2)
>>> xs, ys, values = level_set_grid(geometry, (1.0, 1.0), box=(0, 2, 0, 2), resolution=5)
>>> round_off = 1e-6 * float(geometry.phi(torch.ones(1, 2)).detach().abs())
>>> values.shape, bool((values >= 0).all()), float(values[2, 2]) <= round_off  # the centre (1, 1)
((5, 5), True, True)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from dmllab.arrays import as_floats
from dmllab.geometry import resolve
from dmllab.geometry.base import Geometry, all_finite

DIRECTIONS = ("first", "second")


def relative_asymmetry(
    geometry: Geometry | str, x: Tensor, *, if_all_zero: float | None = None
) -> float:
    """sum_ij |D_ij - D_ji| / sum_ij (D_ij + D_ji) on D = geometry.pairwise(x, x) [n, n] (float64).

    0 for a symmetric geometry (up to the rounding of its pairwise matrix); at most 1. The learned
    2-D Bregman divergence of the loggrid lesson reaches about 0.4. `dmllab.metrics.asymmetry`
    (the evaluated number) is this on a subset of the embeddings.
    x: [n, d] points, n >= 2 (ValueError otherwise).
    if_all_zero: returned when every divergence is 0 (all points coincide); None raises ValueError.
    """
    x = _as_points(x, "relative_asymmetry")
    geometry = resolve(geometry)
    if x.shape[0] < 2:
        raise ValueError(f"relative_asymmetry needs at least 2 points; got {x.shape[0]}")
    with torch.no_grad():
        D = geometry.pairwise(x, x).double()
    total = (D + D.T).sum()
    if total == 0 and if_all_zero is not None:
        return if_all_zero
    if total <= 0:
        raise ValueError(
            "relative_asymmetry: every divergence is 0 (all points coincide?); pass distinct points"
        )
    return float((D - D.T).abs().sum() / total)


def level_set_grid(
    geometry: Geometry | str,
    centre: Sequence[float] | Tensor,
    box: Sequence[float] = (0.0, 1.0, 0.0, 1.0),
    resolution: int = 100,
    direction: str = "first",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """D between every grid point p and a fixed centre c, for contour plots of its level sets.

    direction names the slot of the grid point p:
      "first":  values = D(p || c), level sets {x : D(x, c) = r} (c in the second argument,
                like a prototype);
      "second": values = D(c || p), level sets {x : D(c, x) = r}.
    box = (xmin, xmax, ymin, ymax); returns (xs [R], ys [R], values [R, R]) with
    values[i, j] at (xs[j], ys[i]). 2-D geometries only.
    """
    if direction not in DIRECTIONS:
        raise ValueError(
            f"level_set_grid: direction must be one of {DIRECTIONS} (the slot of the grid "
            f"point: 'first' -> D(x, centre), 'second' -> D(centre, x)); got {direction!r}"
        )
    xs, ys, points = _grid(box, resolution, "level_set_grid")
    c = _centre(centre, "level_set_grid")
    geometry = resolve(geometry)
    _check_2d(geometry, "level_set_grid")
    with torch.no_grad():
        D = (
            geometry.pairwise(points, c)[:, 0]
            if direction == "first"
            else geometry.pairwise(c, points)[0]
        )
    return xs, ys, _as_grid(D, resolution)


def asymmetry_map(
    geometry: Geometry | str,
    centre: Sequence[float] | Tensor,
    box: Sequence[float] = (0.0, 1.0, 0.0, 1.0),
    resolution: int = 100,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """D(p || c) - D(c || p) on a grid of points p around the centre c (0 where D is symmetric).

    Returns (xs, ys, values) like `level_set_grid`."""
    xs, ys, first = level_set_grid(geometry, centre, box, resolution, "first")
    second = level_set_grid(geometry, centre, box, resolution, "second")[2]
    return xs, ys, first - second


def phi_minus_affine(
    geometry: Geometry | str, box: Sequence[float] = (0.0, 1.0, 0.0, 1.0), resolution: int = 100
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """phi on a grid minus its least-squares affine fit alpha + <beta, p> over the same grid.

    A Bregman divergence ignores affine terms of phi, and a learned phi is usually dominated by
    one; what is left shows the curvature that makes the geometry. Needs a geometry with a
    generator (`geometry.phi`), e.g. `Bregman`. Returns (xs, ys, values) like `level_set_grid`.
    """
    geometry = resolve(geometry)
    # duck-typed: any geometry with a generator (Bregman and the user's own) has phi(x) -> [n]
    generator: Callable[[Tensor], Tensor] | None = getattr(geometry, "phi", None)
    if not callable(generator):
        raise TypeError(
            f"phi_minus_affine needs a geometry with a generator phi (a Bregman geometry); "
            f"got {type(geometry).__name__}"
        )
    xs, ys, points = _grid(box, resolution, "phi_minus_affine")
    _check_2d(geometry, "phi_minus_affine")
    with torch.no_grad():
        phi = generator(points).double().numpy()
    design = np.column_stack([np.ones(len(phi)), points.double().numpy()])
    coefficients = np.linalg.lstsq(design, phi, rcond=None)[0]
    return xs, ys, (phi - design @ coefficients).reshape(resolution, resolution)


def hessian_eigenvalues(geometry: Geometry | str, points: Tensor) -> np.ndarray:
    """Eigenvalues (ascending) of the Hessian of phi at each point: [n, d].

    Non-negative for a convex phi; all >= mu for the ICNN generator; mu * I exactly for a
    quadratic phi; 0 for a max-affine phi (piecewise linear). Needs `geometry.grad_phi`.
    """
    points = _as_points(points, "hessian_eigenvalues")
    geometry = resolve(geometry)
    # duck-typed like phi_minus_affine: grad_phi(x, create_graph) -> [n, d]
    grad_phi: Callable[..., Tensor] | None = getattr(geometry, "grad_phi", None)
    if not callable(grad_phi):
        raise TypeError(
            f"hessian_eigenvalues needs a geometry with a generator phi (a Bregman geometry); "
            f"got {type(geometry).__name__}"
        )
    dim = getattr(geometry, "dim", points.shape[1])
    if points.shape[1] != dim:
        raise ValueError(
            f"hessian_eigenvalues: points have d={points.shape[1]} but the geometry has dim={dim}"
        )
    with torch.enable_grad():
        x = points.detach().requires_grad_(True)
        grad = grad_phi(x, create_graph=True)
        rows = []
        for k in range(grad.shape[1]):
            row = None
            if grad.requires_grad:
                (row,) = torch.autograd.grad(
                    grad[:, k].sum(), x, retain_graph=True, allow_unused=True
                )
            rows.append(torch.zeros_like(x) if row is None else row)
    hessians = torch.stack(rows, dim=1).detach().double()
    hessians = 0.5 * (hessians + hessians.transpose(1, 2))
    return torch.linalg.eigvalsh(hessians).numpy()


def _as_points(x: Tensor, where: str) -> Tensor:
    x = as_floats(x, f"{where}: points")
    if x.dim() != 2:
        raise ValueError(f"{where}: expected points of shape [n, d]; got {tuple(x.shape)}")
    if not all_finite(x):
        bad = (~torch.isfinite(x)).any(dim=1).nonzero().flatten()
        raise ValueError(
            f"{where}: points hold NaN or inf in {len(bad)} row(s) {bad[:5].tolist()}; "
            "pass finite points (did training diverge?)"
        )
    return x.detach()


def _centre(centre: Sequence[float] | Tensor, where: str) -> Tensor:
    c = torch.as_tensor(np.asarray(centre, dtype=np.float32)).reshape(-1)
    if c.shape != (2,):
        raise ValueError(
            f"{where}: centre must be a 2-D point (x, y); got shape {tuple(np.shape(centre))}"
        )
    if not torch.isfinite(c).all():
        raise ValueError(f"{where}: centre must be a finite 2-D point (x, y); got {c.tolist()}")
    return c[None, :]


def _grid(
    box: Sequence[float], resolution: int, where: str
) -> tuple[np.ndarray, np.ndarray, Tensor]:
    if len(box) != 4:
        raise ValueError(f"{where}: box must be (xmin, xmax, ymin, ymax); got {box!r}")
    xmin, xmax, ymin, ymax = (float(v) for v in box)
    if not all(math.isfinite(v) for v in (xmin, xmax, ymin, ymax)):
        raise ValueError(
            f"{where}: box must be finite numbers (xmin, xmax, ymin, ymax); got {box!r}"
        )
    if not (xmin < xmax and ymin < ymax):
        raise ValueError(f"{where}: box must satisfy xmin < xmax and ymin < ymax; got {box!r}")
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 2:
        raise ValueError(
            f"{where}: resolution must be an integer >= 2 (grid points per axis); "
            f"got {resolution!r}"
        )
    xs = np.linspace(xmin, xmax, resolution)
    ys = np.linspace(ymin, ymax, resolution)
    gx, gy = np.meshgrid(xs, ys)  # gx[i, j] = xs[j], gy[i, j] = ys[i]
    points = torch.as_tensor(np.column_stack([gx.ravel(), gy.ravel()]), dtype=torch.float32)
    return xs, ys, points


def _check_2d(geometry: Geometry, where: str) -> None:
    dim = getattr(geometry, "dim", getattr(getattr(geometry, "inner", None), "dim", 2))
    if dim != 2:
        raise ValueError(
            f"{where}: grids are drawn for 2-D geometries; this one has dim={dim} "
            "(use hessian_eigenvalues or relative_asymmetry in higher dimensions)"
        )


def _as_grid(values: Tensor, resolution: int) -> np.ndarray:
    return values.detach().double().numpy().reshape(resolution, resolution)
