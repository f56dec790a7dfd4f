"""The `Geometry` contract: what "distance" means for every loss, strategy, regulariser and metric.

A geometry maps two sets of embeddings to a dissimilarity matrix, query (anchor) first:

    D = geometry.pairwise(a, b)      # a [n, d], b [m, d]  ->  D [n, m],  D[i, j] = D(a_i || b_j)

Larger means farther. Nothing downstream may assume D is symmetric (a learned Bregman divergence
is not) or that embeddings are normalised.

Inputs follow the lab's one rule for arrays (`dmllab.arrays.as_floats`): tensors or array-likes;
float32 and float64 are computed in their own dtype; float16, bfloat16 and integer inputs are
computed in float32 and D comes back in float32 (half precision's 10- and 7-bit mantissas round
the square root's guard constant to 0, which makes NaN gradients, and overflow at 65504); the
gradient reaches the half-precision inputs through the cast.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

from dmllab.arrays import as_floats

__all__ = ["Geometry", "Reversed", "Symmetrised", "all_finite", "check_pair"]


class Geometry(nn.Module):
    """Base class of every geometry. Subclasses set `name`, `symmetric` and implement `_pairwise`;
    `_entries` (one entry per index pair) and `_unit_sphere` (the view distance-weighted sampling
    reads) when they have a cheaper or exact form.

    A geometry class registered in `dmllab.geometry.GEOMETRIES` is made with its constructor's
    keyword arguments as options (`geometry_options`), plus `dim`, the embedding dimension, when
    the constructor names it (learned ones do). `learned` geometries (parameters trained with the
    model) are refused by name where a trained one is meant (`dmllab.geometry.resolve`).

    `ranking_vectors(query, gallery)` returns (Q, G) such that, for each query row, ranking the
    gallery by *descending* Q @ G.T gives the same order as ranking by *ascending*
    D(query || gallery). It turns every geometry's nearest-neighbour search into one
    maximum-inner-product search (a GEMM, or a faiss inner-product index).
    """

    name: str = "geometry"
    symmetric: bool = True
    #: True for geometries with parameters of their own, trained with the model: by name alone
    #: such a geometry is an untrained, random divergence.
    learned: bool = False
    #: True when `entries` costs only O(M d): losses then select on a gradient-free D and
    #: differentiate just the picked entries. False keeps one differentiable `pairwise` (the
    #: default, and Bregman, whose per-point phi and grad phi would be computed twice).
    cheap_entries: bool = False

    def pairwise(self, a: Tensor, b: Tensor) -> Tensor:
        """D[i, j] = D(a_i || b_j) for a [n, d] and b [m, d]; returns [n, m] (float32 for half
        inputs).

        Raises ValueError for other shapes, mismatched d, non-numeric values, or NaN / inf."""
        return self._pairwise(*_checked_pair(a, b, self.name))

    def entries(self, a: Tensor, b: Tensor, rows: Tensor, cols: Tensor) -> Tensor:
        """D(a_rows[i] || b_cols[i]) for index vectors rows, cols [M]: [M], equal to
        `pairwise(a, b)[rows, cols]` and differentiable like it.

        Losses that read only a few entries of the batch matrix use it so that their backward
        pass costs O(M d), not O(n m d). The fixed geometries compute the entries themselves;
        the default gathers them from `pairwise`."""
        return self.picker(a, b)(rows, cols)

    def picker(self, a: Tensor, b: Tensor) -> Callable[[Tensor, Tensor], Tensor]:
        """`pick(rows, cols) = entries(a, b, rows, cols)` with a and b checked once: for a loss
        that reads several index sets of the same matrix (positives, then negatives)."""
        a, b = _checked_pair(a, b, self.name)

        def pick(rows: Tensor, cols: Tensor) -> Tensor:
            return self._entries(a, b, rows, cols)

        return pick

    def unit_sphere_distance(self, D: Tensor) -> Tensor:
        """D (any [n, m] matrix of this geometry) read as the Euclidean distance ||a - b|| between
        unit vectors: detached, clamped at 0. Distance-weighted negative sampling weights by the
        density of that distance (Wu et al. 2017), so it reads this view; the loss still reads D.

        Raises NotImplementedError for a geometry without such a view."""
        return self._unit_sphere(D.detach().clamp_min(0.0))

    def _unit_sphere(self, D: Tensor) -> Tensor:
        raise NotImplementedError(
            f"geometry {self.name!r} has no unit-sphere view of its distances, "
            "which distance-weighted negatives need; "
            "choose another negatives strategy or implement Geometry._unit_sphere"
        )

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        return self.pairwise(a, b)

    def has_cosine(self, normalized: bool) -> bool:
        """Whether D is a decreasing function of the cosine between the embeddings (given whether
        they are L2-normalised), so that LSD can list the cosine similarities as the official
        code does. False by default: learned geometries have no cosine."""
        return False

    def _entries(self, a: Tensor, b: Tensor, rows: Tensor, cols: Tensor) -> Tensor:
        return self._pairwise(a, b)[rows, cols]

    def _pairwise(self, a: Tensor, b: Tensor) -> Tensor:
        raise NotImplementedError

    def ranking_vectors(self, query: Tensor, gallery: Tensor) -> tuple[Tensor, Tensor]:
        """(Q, G) with argsort(-Q @ G.T) == argsort(D(query || gallery)) row by row.

        Geometries without such a form raise NotImplementedError; searches then fall back to
        chunks of `pairwise`."""
        raise NotImplementedError(f"geometry {self.name!r} has no inner-product ranking form")

    def reversed(self) -> Geometry:
        """The geometry with its arguments swapped: D'(a || b) = D(b || a) (self when symmetric)."""
        return self if self.symmetric else Reversed(self)

    def symmetrised(self) -> Geometry:
        """D_s(a, b) = D(a || b) + D(b || a) (self when already symmetric)."""
        return self if self.symmetric else Symmetrised(self)

    def extra_repr(self) -> str:
        return f"name={self.name!r}, symmetric={self.symmetric}"


class _Derived(Geometry):
    """A geometry built from another one (`inner`); its name carries the inner name and `suffix`."""

    suffix = ""

    def __init__(self, inner: Geometry) -> None:
        super().__init__()
        self.inner = inner
        self.name = f"{inner.name}[{self.suffix}]"
        self.cheap_entries = inner.cheap_entries

    def _unit_sphere(self, D: Tensor) -> Tensor:
        # the inner geometry's reading, entry by entry (for a Bregman divergence: sqrt(2 D))
        return self.inner.unit_sphere_distance(D)


class Reversed(_Derived):
    """D'(a || b) = D(b || a): rank a gallery by D(gallery || query)."""

    symmetric = False
    suffix = "reversed"

    def _pairwise(self, a: Tensor, b: Tensor) -> Tensor:
        return self.inner.pairwise(b, a).T

    def _entries(self, a: Tensor, b: Tensor, rows: Tensor, cols: Tensor) -> Tensor:
        return self.inner.entries(b, a, cols, rows)


class Symmetrised(_Derived):
    """D_s(a, b) = D(a || b) + D(b || a)."""

    symmetric = True
    suffix = "symmetrised"

    def _pairwise(self, a: Tensor, b: Tensor) -> Tensor:
        return self.inner.pairwise(a, b) + self.inner.pairwise(b, a).T

    def _entries(self, a: Tensor, b: Tensor, rows: Tensor, cols: Tensor) -> Tensor:
        return self.inner.entries(a, b, rows, cols) + self.inner.entries(b, a, cols, rows)


def check_pair(a: Tensor, b: Tensor, name: str) -> None:
    """ValueError unless a [n, d] and b [m, d] are 2-D with the same d (the message names the
    geometry `name`): the shape check of every `pairwise`-like entry point."""
    if a.dim() != 2 or b.dim() != 2:
        raise ValueError(
            f"{name}.pairwise expects two 2-D tensors [n, d] and [m, d]; got shapes "
            f"{tuple(a.shape)} and {tuple(b.shape)}"
        )
    if a.shape[1] != b.shape[1]:
        raise ValueError(
            f"{name}.pairwise: dimension mismatch, a has d={a.shape[1]} but b has d={b.shape[1]}"
        )
    if not (all_finite(a) and (b is a or all_finite(b))):
        raise ValueError(f"{name}.pairwise: embeddings contain NaN or inf")


def _checked_pair(a: Tensor, b: Tensor, name: str) -> tuple[Tensor, Tensor]:
    """Both inputs by the arrays rule (half -> float32, differentiably), then checked; `b is a`
    stays true (the symmetric fast paths rely on it)."""
    a_work = as_floats(a, f"{name}.pairwise: a")
    b_work = a_work if b is a else as_floats(b, f"{name}.pairwise: b")
    check_pair(a_work, b_work, name)
    return a_work, b_work


def all_finite(x: Tensor) -> bool:
    """No NaN or inf in x. One reduction first (a NaN or inf makes the sum non-finite); the
    element-wise test runs only when the sum is not finite, which also overflow can cause."""
    return math.isfinite(float(x.detach().sum())) or bool(torch.isfinite(x).all())
