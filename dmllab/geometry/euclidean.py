"""Squared Euclidean and Euclidean geometries.

    sqeuclidean:  D(a || b) = ||a - b||^2 = ||a||^2 + ||b||^2 - 2 a.b
    euclidean:    D(a || b) = sqrt(max(||a - b||^2 - eps, 0))      (eps = 1e-12 by default)

Both are computed with one GEMM (no [n, m, d] tensor), on inputs centred by the mean of b
rounded to integers. The distance does not change under a common shift, but the GEMM form
does: ||a||^2 + ||b||^2 and 2 a.b cancel catastrophically far from the origin (points near 1000
with class gaps of 0.5 lose every digit of the gaps in float32; centred, they keep them).
Rounding can still make the GEMM form slightly negative, so it is clamped at 0; when the same
tensor is passed twice (`pairwise(z, z)`) the diagonal is set to exactly 0. The Euclidean `eps`
keeps the square root away from 0: coincident points (duplicates, self-pairs) get distance 0
with a zero gradient, never a NaN, and any distance above ~1e-5 moves by less than float32
rounding.

The gradient is written by hand (`_PairwiseDistance`): with C = dL/d(||a_i - b_j||^2),

    dL/da = 2 (rowsum(C) * a - C b),   dL/db = 2 (colsum(C) * b - C^T a),

and for `pairwise(z, z)` the two collapse into one GEMM with C + C^T. `entries(a, b, rows, cols)`
(a loss's few selected pairs) subtracts the vectors directly. That is a third fewer
matrix products than autograd's route and a handful of [n, m] passes instead of a dozen, which is
most of a loss's cost on a CPU.

>>> import torch
>>> z = torch.tensor([[0.0, 0.0], [3.0, 4.0]])
>>> SquaredEuclidean().pairwise(z, z)
tensor([[ 0., 25.],
        [25.,  0.]])
>>> Euclidean().pairwise(z, z)
tensor([[0., 5.],
        [5., 0.]])
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from dmllab.arrays import as_floats
from dmllab.geometry.base import Geometry

__all__ = ["SquaredEuclidean", "Euclidean", "squared_distances", "euclidean_distances"]


def squared_distances(a: Tensor, b: Tensor) -> Tensor:
    """||a_i - b_j||^2 for all pairs via one GEMM, clamped at 0; exact 0 diagonal when a is b."""
    return _PairwiseDistance.apply(a, a if a is b else b, a is b, None)


def euclidean_distances(a: Tensor, b: Tensor, eps: float = 1e-12) -> Tensor:
    """sqrt(max(||a_i - b_j||^2 - eps, 0)) for all pairs; 0 (and zero gradient) where coincident."""
    return _PairwiseDistance.apply(a, a if a is b else b, a is b, eps)


class _PairwiseDistance(torch.autograd.Function):
    """Forward: the GEMM form of ||a_i - b_j||^2 (then the shifted square root when eps is set).
    Backward: the closed-form gradient in the module docstring."""

    @staticmethod
    def forward(ctx: Any, a: Tensor, b: Tensor, same: bool, eps: float | None) -> Tensor:
        # saved for backward too: the same gradient, without the cancellation
        a, b = _centred(a, b, same)
        # ||a||^2 + ||b||^2 first, so that pairwise(z, z) comes out exactly symmetric
        d2 = torch.addmm((a * a).sum(dim=1, keepdim=True) + (b * b).sum(dim=1), a, b.T, alpha=-2.0)
        d2.clamp_min_(0.0)
        if same:
            d2.fill_diagonal_(0.0)
        ctx.same, ctx.squared = same, eps is None
        if eps is None:
            ctx.save_for_backward(a, b)
            return d2
        shifted = d2.sub_(eps).clamp_min_(0.0)
        out = shifted.sqrt()
        if any(ctx.needs_input_grad):
            # d sqrt(x) / dx = 1 / (2 sqrt(x)); sqrt(x) / (x + tiny) is 1 / sqrt(x), except
            # exactly 0 at coincident points (x >= ~1e-19 wherever it is non-zero, so tiny
            # changes nothing).
            half_inverse = torch.div(out, shifted.add_(1e-30), out=shifted).mul_(0.5)
            ctx.save_for_backward(a, b, half_inverse)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, Tensor | None, None, None]:
        a, b, *rest = ctx.saved_tensors
        coef = grad if ctx.squared else grad * rest[0]  # dL / d||a_i - b_j||^2
        if ctx.same:
            both = coef + coef.T
            return 2.0 * (both.sum(dim=1, keepdim=True) * a - both @ a), None, None, None
        grad_a = (
            2.0 * (coef.sum(dim=1, keepdim=True) * a - coef @ b)
            if ctx.needs_input_grad[0]
            else None
        )
        grad_b = (
            2.0 * (coef.sum(dim=0).unsqueeze(1) * b - coef.T @ a)
            if ctx.needs_input_grad[1]
            else None
        )
        return grad_a, grad_b, None, None


def _centred(a: Tensor, b: Tensor, same: bool) -> tuple[Tensor, Tensor]:
    """a - c and b - c for c = the mean of b rounded to integers: a shift that leaves every
    ||a_i - b_j|| unchanged, removes any common offset beyond half a unit, and keeps integer data
    integer (so exactly representable products, and exact ties, stay exact)."""
    centre = b.mean(dim=0).round()
    if not bool(centre.any()):  # near the origin (e.g. normalised embeddings): nothing to remove
        return a, b
    a = a - centre
    return a, a if same else b - centre


def _mips_form(query: Tensor, gallery: Tensor) -> tuple[Tensor, Tensor]:
    # -||q - g||^2 = 2 q.g - ||g||^2 - ||q||^2, and ||q||^2 is constant per query row; centred by
    # the gallery mean so that far from the origin the GEMM does not cancel (module docstring).
    query, gallery = _centred(as_floats(query, "query"), as_floats(gallery, "gallery"), False)
    ones = query.new_ones(len(query), 1)
    g_sq = (gallery * gallery).sum(dim=1, keepdim=True)
    return torch.cat([query, ones], dim=1), torch.cat([2.0 * gallery, -g_sq], dim=1)


class SquaredEuclidean(Geometry):
    """D(a || b) = ||a - b||^2 (symmetric; FaceNet's triplet distance)."""

    name = "sqeuclidean"
    symmetric = True
    cheap_entries = True

    def _pairwise(self, a: Tensor, b: Tensor) -> Tensor:
        return squared_distances(a, b)

    def _entries(self, a: Tensor, b: Tensor, rows: Tensor, cols: Tensor) -> Tensor:
        difference = a.index_select(0, rows) - b.index_select(0, cols)
        return (difference * difference).sum(dim=1)

    def ranking_vectors(self, query: Tensor, gallery: Tensor) -> tuple[Tensor, Tensor]:
        """Q = [q - c, 1], G = [2 (g - c), -||g - c||^2], c = the rounded gallery mean:
        Q.G = -||q - g||^2 + ||q - c||^2."""
        return _mips_form(query, gallery)

    def has_cosine(self, normalized: bool) -> bool:
        """On unit vectors ||a - b||^2 = 2 - 2 cos(a, b)."""
        return normalized

    def _unit_sphere(self, D: Tensor) -> Tensor:
        """||a - b|| = sqrt(D)."""
        return D.sqrt()


class Euclidean(Geometry):
    """D(a || b) = sqrt(max(||a - b||^2 - eps, 0)): 0, with a zero gradient, where coincident."""

    name = "euclidean"
    symmetric = True
    cheap_entries = True

    def __init__(self, eps: float = 1e-12) -> None:
        super().__init__()
        if not eps > 0:
            raise ValueError(
                f"Euclidean eps must be > 0 (it guards the square root at 0); got {eps!r}"
            )
        self.eps = float(eps)

    def _pairwise(self, a: Tensor, b: Tensor) -> Tensor:
        return euclidean_distances(a, b, self.eps)

    def _entries(self, a: Tensor, b: Tensor, rows: Tensor, cols: Tensor) -> Tensor:
        difference = a.index_select(0, rows) - b.index_select(0, cols)
        shifted = (difference * difference).sum(dim=1) - self.eps
        above = shifted > 0
        # the inner where keeps sqrt away from 0, so the unused branch has a finite gradient
        return torch.where(above, torch.where(above, shifted, 1.0).sqrt(), 0.0)

    def ranking_vectors(self, query: Tensor, gallery: Tensor) -> tuple[Tensor, Tensor]:
        """The squared-Euclidean form: the square root does not change the order."""
        return _mips_form(query, gallery)

    def has_cosine(self, normalized: bool) -> bool:
        """On unit vectors ||a - b|| = sqrt(2 - 2 cos(a, b))."""
        return normalized

    def _unit_sphere(self, D: Tensor) -> Tensor:
        """D is ||a - b|| itself."""
        return D

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, eps={self.eps:g}"
