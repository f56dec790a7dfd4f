"""Cosine geometry: D(a || b) = 1 - cos(a, b) = 1 - a.b / (||a|| ||b||).

Works for unnormalised inputs (each row is normalised first, with norms clamped at `eps`). The
values lie in [0, 2]; for unit vectors D = ||a - b||^2 / 2.

>>> import torch
>>> query = torch.tensor([[2.0, 0.0]])
>>> gallery = torch.tensor([[1.0, 0.0], [0.0, 3.0], [-1.0, 0.0]])
>>> Cosine().pairwise(query, gallery)
tensor([[0., 1., 2.]])
"""

from __future__ import annotations

from torch import Tensor
from torch.nn import functional as F

from dmllab.geometry.base import Geometry

__all__ = ["Cosine"]


class Cosine(Geometry):
    """D(a || b) = 1 - cos(a, b) (symmetric)."""

    name = "cosine"
    symmetric = True
    cheap_entries = True

    def __init__(self, eps: float = 1e-12) -> None:
        super().__init__()
        if not eps > 0:
            raise ValueError(
                f"Cosine eps must be > 0 (it guards the norm of zero vectors); got {eps!r}"
            )
        self.eps = float(eps)

    def _pairwise(self, a: Tensor, b: Tensor) -> Tensor:
        a_unit = F.normalize(a, dim=1, eps=self.eps)
        b_unit = a_unit if b is a else F.normalize(b, dim=1, eps=self.eps)
        return 1.0 - a_unit @ b_unit.T

    def _entries(self, a: Tensor, b: Tensor, rows: Tensor, cols: Tensor) -> Tensor:
        a_unit = F.normalize(a, dim=1, eps=self.eps)
        b_unit = a_unit if b is a else F.normalize(b, dim=1, eps=self.eps)
        return 1.0 - (a_unit.index_select(0, rows) * b_unit.index_select(0, cols)).sum(dim=1)

    def ranking_vectors(self, query: Tensor, gallery: Tensor) -> tuple[Tensor, Tensor]:
        """Q = q / ||q||, G = g / ||g||: Q.G = cos = 1 - D."""
        return F.normalize(query, dim=1, eps=self.eps), F.normalize(gallery, dim=1, eps=self.eps)

    def has_cosine(self, normalized: bool) -> bool:
        """D = 1 - cos whether or not the embeddings are normalised."""
        return True

    def _unit_sphere(self, D: Tensor) -> Tensor:
        """On the unit sphere 1 - cos(a, b) = ||a - b||^2 / 2, so ||a - b|| = sqrt(2 D)."""
        return (2.0 * D).sqrt()

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, eps={self.eps:g}"
