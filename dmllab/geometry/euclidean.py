"""Squared Euclidean and Euclidean geometries.

    sqeuclidean:  D(a || b) = ||a - b||^2 = ||a||^2 + ||b||^2 - 2 a.b
    euclidean:    D(a || b) = ||a - b||

Both are computed with one GEMM (no [n, m, d] tensor). Rounding can make the GEMM form slightly
negative, so it is clamped at 0; when the same tensor is passed twice (`pairwise(z, z)`) the
diagonal is set to exactly 0. The Euclidean square root is taken only where the squared distance
exceeds `eps`; below it the distance is 0 with a zero gradient, so coincident points
(duplicates, self-pairs) never give a NaN gradient.

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

import torch
from torch import Tensor

from dmllab.geometry.base import Geometry


def squared_distances(a: Tensor, b: Tensor) -> Tensor:
    """||a_i - b_j||^2 for all pairs via one GEMM, clamped at 0; exact 0 diagonal when a is b."""
    a_sq = (a * a).sum(dim=1, keepdim=True)
    b_sq = (b * b).sum(dim=1)
    d2 = torch.addmm(a_sq + b_sq, a, b.T, alpha=-2.0).clamp_min(0.0)
    if a is b:
        d2 = d2.masked_fill(torch.eye(len(a), dtype=torch.bool, device=a.device), 0.0)
    return d2


def _mips_form(query: Tensor, gallery: Tensor) -> tuple[Tensor, Tensor]:
    # -||q - g||^2 = 2 q.g - ||g||^2 - ||q||^2, and ||q||^2 is constant per query row.
    ones = query.new_ones(len(query), 1)
    g_sq = (gallery * gallery).sum(dim=1, keepdim=True)
    return torch.cat([query, ones], dim=1), torch.cat([2.0 * gallery, -g_sq], dim=1)


class SquaredEuclidean(Geometry):
    """D(a || b) = ||a - b||^2 (symmetric; FaceNet's triplet distance)."""

    name = "sqeuclidean"
    symmetric = True

    def _pairwise(self, a: Tensor, b: Tensor) -> Tensor:
        return squared_distances(a, b)

    def ranking_vectors(self, query: Tensor, gallery: Tensor) -> tuple[Tensor, Tensor]:
        """Q = [q, 1], G = [2 g, -||g||^2]: Q.G = -||q - g||^2 + ||q||^2."""
        return _mips_form(query, gallery)


class Euclidean(Geometry):
    """D(a || b) = ||a - b||, with value and gradient 0 where ||a - b||^2 <= eps."""

    name = "euclidean"
    symmetric = True

    def __init__(self, eps: float = 1e-12) -> None:
        super().__init__()
        if not eps > 0:
            raise ValueError(f"Euclidean eps must be > 0 (it guards the square root at 0); got {eps!r}")
        self.eps = float(eps)

    def _pairwise(self, a: Tensor, b: Tensor) -> Tensor:
        d2 = squared_distances(a, b)
        above = d2 > self.eps
        return torch.where(above, d2.clamp_min(self.eps).sqrt(), torch.zeros_like(d2))

    def ranking_vectors(self, query: Tensor, gallery: Tensor) -> tuple[Tensor, Tensor]:
        """The squared-Euclidean form: the square root does not change the order."""
        return _mips_form(query, gallery)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, eps={self.eps:g}"
