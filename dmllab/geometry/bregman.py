"""A learned Bregman divergence: an asymmetric geometry with parameters of its own.

    D_phi(x, y) = phi(x) - phi(y) - <grad phi(y), x - y>

for a convex generator phi (`generators.ICNN` by default, or `generators.MaxAffine`).
D >= 0, D(x, x) = 0, D is invariant to adding an affine function to phi, and it is not
symmetric. phi = ||x||^2 gives the squared Euclidean distance.

References: Li, Liu, Zou, Ralescu, "Learning Empirical Bregman Divergence for Uncertain Distance
Representation", FUSION 2023 (arXiv 2304.07689); Cilingir, Manzelli, Kulis, "Deep Divergence
Learning", ICML 2020; Lu, Raff, Ferraro, "Neural Bregman Divergences for Distance Learning",
ICLR 2023; Amos, Xu, Kolter, "Input Convex Neural Networks", ICML 2017.

The pairwise matrix is one GEMM, never an [n, m, d] tensor: with u_j = grad phi(b_j) and
c_j = phi(b_j) - <u_j, b_j>,

    D[i, j] = phi(a_i) - c_j - <u_j, a_i>.

The loss depends on grad phi, so its parameter gradient needs second derivatives: grad phi is
taken with `create_graph=True` whenever autograd is recording and anything D depends on (the
inputs or the generator's parameters) requires grad; otherwise (evaluation, `torch.no_grad()`)
it is computed under a local `torch.enable_grad()` and detached.

Dtype: the generator computes in its parameters' dtype (float32 unless `.double()` was called),
so inputs of any other floating dtype (float64 embeddings, float16) are cast to it and D comes back
in it; the gradient reaches the inputs through the cast.

Round-off: the GEMM form subtracts numbers of the size of phi, so float32 can return about
-1e-6 * |phi| where D is mathematically 0 (e.g. on the diagonal of pairwise(z, z)). Every
pairwise matrix is therefore clamped at 0. This changes no gradient that matters: D(x, x) is 0
for every phi, so its true gradient is 0 too.

>>> import torch
>>> geometry = Bregman(2)
>>> x = torch.tensor([[0.0, 1.0], [2.0, -1.0]])
>>> D = geometry.pairwise(x, x)
>>> round_off = 1e-6 * geometry.phi(x).abs().max()
>>> D.shape, bool((D >= 0).all()), bool((D.diagonal() <= round_off).all())
(torch.Size([2, 2]), True, True)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, cast

import torch
from torch import Tensor

from dmllab.geometry.base import Geometry, Reversed, Symmetrised, check_pair
from dmllab.geometry.euclidean import squared_distances
from dmllab.geometry.generators import ICNN, LR_MULTIPLIER, MaxAffine

__all__ = [
    "Bregman",
    "BregmanReversed",
    "BregmanSymmetrised",
    "GENERATORS",
    "ICNNBregman",
    "MaxAffineBregman",
]

#: generator -> the registered name of the geometry it makes
GENERATORS = {"icnn": "bregman", "maxaffine": "bregman-maxaffine"}
_OPTIONS = {
    "icnn": ("hidden", "mu", "lr_multiplier"),
    "maxaffine": ("pieces", "mu", "lr_multiplier"),
}
_DEFAULTS = {"hidden": (32, 32, 32), "mu": 0.05, "pieces": 8, "lr_multiplier": LR_MULTIPLIER}


class Bregman(Geometry):
    """D_phi(x || y) = phi(x) - phi(y) - <grad phi(y), x - y> with a learned convex phi.

    Bregman(dim, generator="icnn", *, hidden=(32, 32, 32), mu=0.05, lr_multiplier=10)
    Bregman(dim, generator="maxaffine", *, pieces=8, mu=0.05, lr_multiplier=10)

    - "icnn" (name "bregman"): `generators.ICNN` with layer widths `hidden` and the strong
      convexity term (mu / 2) ||x||^2. mu >= 0; mu = 0 is allowed, but then phi is only convex
      and D(x, y) = 0 no longer implies x = y. A large mu pulls D towards (mu / 2) ||x - y||^2.
    - "maxaffine" (name "bregman-maxaffine"): `generators.MaxAffine` with K = `pieces` >= 2,
      D(x, y) = max_k f_k(x) - f_{k*(y)}(x) + (mu / 2) ||x - y||^2 in closed form. mu >= 0 as for
      "icnn"; with mu = 0, D is 0 between all points that select the same piece (ties in
      retrieval, and training at the defaults collapses onto few pieces), hence mu = 0.05.
    - lr_multiplier > 0 (both): the generator's weights learn that many times faster than the
      optimiser's learning rate (`Config.loss_lr`, else `lr`) says, under Adam; the default 10
      makes a learned geometry train at the lab's default learning rate of 1e-3 as it would at
      1e-2, which it needs to learn a shape in a few hundred steps (the embedding network keeps
      its own rate). 1 is the plain rate. See `dmllab.geometry.generators`.

    The divergence is asymmetric: `pairwise(a, b)[i, j] = D(a_i || b_j)`, query / anchor first,
    prototypes in the second argument (the arithmetic mean minimises sum_i D(x_i, c)).
    """

    symmetric = False
    learned = True
    generator: ICNN | MaxAffine

    def __init__(self, dim: int, generator: str = "icnn", **options: Any) -> None:
        super().__init__()
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            raise ValueError(
                f"Bregman: dim must be an integer >= 1 (the embedding dimension); got {dim!r}"
            )
        if generator not in GENERATORS:
            raise ValueError(
                f"Bregman: unknown generator {generator!r}; allowed: {', '.join(GENERATORS)}"
            )
        allowed = _OPTIONS[generator]
        unknown = sorted(set(options) - set(allowed))
        if unknown:
            raise ValueError(
                f"Bregman(generator={generator!r}): "
                f"unknown option(s) {', '.join(map(repr, unknown))}; "
                f"allowed: {', '.join(allowed)}"
            )
        settings = {key: options.get(key, _DEFAULTS[key]) for key in allowed}
        self.dim = dim
        self.generator_name = generator
        self.name = GENERATORS[generator]
        rate = _check_lr_multiplier(generator, settings["lr_multiplier"])
        if generator == "icnn":
            self.generator = ICNN(
                dim, _check_hidden(settings["hidden"]), _check_mu(generator, settings["mu"]), rate
            )
        else:
            self.generator = MaxAffine(
                dim, _check_pieces(settings["pieces"]), _check_mu(generator, settings["mu"]), rate
            )

    # -- phi and its gradient ---------------------------------------------------------------

    def phi(self, x: Tensor) -> Tensor:
        """phi(x) for x [n, d]: [n] (keeps the autograd graph of the current grad mode)."""
        x = self._points(x, "phi")
        return self._checked(self.generator(x), "phi")

    def grad_phi(self, x: Tensor, create_graph: bool = False) -> Tensor:
        """grad phi(x) for x [n, d]: [n, d].

        create_graph=False returns a detached tensor (works under `torch.no_grad()`);
        create_graph=True keeps the graph so that a loss on it can be differentiated with respect
        to the generator's parameters (and x, when x requires grad)."""
        return self.value_and_grad(self._points(x, "grad_phi"), create_graph)[1]

    def value_and_grad(self, x: Tensor, create_graph: bool) -> tuple[Tensor, Tensor]:
        """(phi(x), grad phi(x)) for points x [n, d] from `points`: [n] and [n, d], both detached
        unless create_graph (see `needs_graph`). `phi` and `grad_phi` check their inputs; this
        is the step the derived geometries (`reversed`, `symmetrised`) share."""
        if isinstance(self.generator, MaxAffine):
            with torch.set_grad_enabled(create_graph):
                value, grad = self.generator(x), self.generator.gradient(x)
        else:
            with torch.enable_grad():
                leaf = x if (create_graph and x.requires_grad) else x.detach().requires_grad_(True)
                value = self.generator(leaf)
                (grad,) = torch.autograd.grad(value.sum(), leaf, create_graph=create_graph)
        if not create_graph:
            value, grad = value.detach(), grad.detach()
        return self._checked(value, "phi"), self._checked(grad, "grad phi")

    def _value(self, x: Tensor, graph: bool) -> Tensor:
        """phi(x), detached unless graph."""
        with torch.set_grad_enabled(graph):
            return self._checked(self.generator(x), "phi")

    def needs_graph(self, *tensors: Tensor) -> bool:
        """True when autograd records and D depends on something that requires grad.

        Then grad phi must be taken with create_graph=True, else the parameter gradient of a loss
        silently loses the grad phi(y) dependence (a different objective)."""
        return torch.is_grad_enabled() and (
            any(t.requires_grad for t in tensors) or any(p.requires_grad for p in self.parameters())
        )

    # -- the divergence ---------------------------------------------------------------------

    def _pairwise(self, a: Tensor, b: Tensor) -> Tensor:
        a, b = self.points(a, b, "pairwise")
        if isinstance(self.generator, MaxAffine):
            return self._maxaffine_pairwise(self.generator, a, b)
        graph = self.needs_graph(a, b)
        phi_b, u_b = self.value_and_grad(b, graph)
        phi_a = phi_b if a is b else self._value(a, graph)
        c_b = phi_b - (u_b * b).sum(dim=1)
        return (phi_a[:, None] - c_b[None, :] - a @ u_b.T).clamp_min(0.0)

    def _maxaffine_pairwise(self, generator: MaxAffine, a: Tensor, b: Tensor) -> Tensor:
        """D(a_i, b_j) = max_k f_k(a_i) - f_{k*(b_j)}(a_i) + (mu / 2) ||a_i - b_j||^2: a gather
        from the [n, K] scores plus the squared distances (exactly 0 on the diagonal when a is
        b)."""
        scores = self._checked(generator.scores(a), "phi")
        active = generator.active_piece(b)
        D = (scores.max(dim=1).values[:, None] - scores[:, active]).clamp_min(0.0)
        return D + 0.5 * generator.mu * squared_distances(a, b) if generator.mu else D

    def _unit_sphere(self, D: Tensor) -> Tensor:
        """sqrt(2 D): locally D is half a squared Mahalanobis distance (exactly ||a - b||^2 / 2 for
        phi = ||x||^2 / 2), so sqrt(2 D) reads it as a distance between unit vectors; a sampling
        weight only."""
        return (2.0 * D).sqrt()

    def ranking_vectors(self, query: Tensor, gallery: Tensor) -> tuple[Tensor, Tensor]:
        """Rank the gallery by D(query || gallery): Q = [q, 1], G = [u_g, c_g] (detached).

        D(q, g) = phi(q) - c_g - <u_g, q> with u_g = grad phi(g), c_g = phi(g) - <u_g, g>;
        phi(q) is constant per query, so ascending D == descending <[q, 1], [u_g, c_g]>."""
        check_pair(query, gallery, self.name)
        query, gallery = self.points(query, gallery, "ranking_vectors")
        phi_g, u_g = self.value_and_grad(gallery, False)
        c_g = phi_g - (u_g * gallery).sum(dim=1)
        return _append(query.detach(), 1.0), torch.cat([u_g, c_g[:, None]], dim=1)

    def reversed(self) -> BregmanReversed:
        """D'(a || b) = D(b || a): rank the gallery by D(gallery || query)."""
        return BregmanReversed(self)

    def symmetrised(self) -> BregmanSymmetrised:
        """D_s(a, b) = D(a || b) + D(b || a) = <a - b, grad phi(a) - grad phi(b)>."""
        return BregmanSymmetrised(self)

    # -- checks -----------------------------------------------------------------------------

    def _points(self, x: Tensor, where: str) -> Tensor:
        """x [n, dim] in the generator's dtype; ValueError for another shape."""
        if x.dim() != 2 or x.shape[1] != self.dim:
            raise ValueError(
                f"{self.name}.{where}: expected points of shape [n, {self.dim}] "
                "(the geometry's dim); "
                f"got {tuple(x.shape)}"
            )
        dtype = next(self.generator.parameters()).dtype
        return x if x.dtype == dtype else x.to(dtype)

    def points(self, a: Tensor, b: Tensor, where: str) -> tuple[Tensor, Tensor]:
        """a [n, dim] and b [m, dim] in the generator's dtype, for `value_and_grad`; ValueError
        naming `{name}.{where}` for another shape. `b is a` stays true (the symmetric fast paths
        rely on it)."""
        a_own = self._points(a, where)
        return a_own, a_own if b is a else self._points(b, where)

    def _checked(self, values: Tensor, what: str) -> Tensor:
        if not torch.isfinite(values).all():
            raise ValueError(
                f"{self.name}: the generator produced non-finite {what} (NaN or inf); "
                "the embeddings are too large for phi or training diverged: "
                "lower the learning rate, or normalise / "
                "rescale the inputs"
            )
        return values

    def extra_repr(self) -> str:
        return f"name={self.name!r}, dim={self.dim}, symmetric={self.symmetric}"


class ICNNBregman(Bregman):
    """The learned Bregman divergence registered as `bregman`: `Bregman(dim, "icnn", ...)`, phi an
    ICNN with layer widths `hidden` plus (mu / 2) ||x||^2; its weights learn `lr_multiplier` times
    faster than the optimiser's rate (see `Bregman`)."""

    def __init__(
        self,
        dim: int,
        *,
        hidden: Sequence[int] = cast(Sequence[int], _DEFAULTS["hidden"]),
        mu: float = cast(float, _DEFAULTS["mu"]),
        lr_multiplier: float = LR_MULTIPLIER,
    ) -> None:
        super().__init__(dim, "icnn", hidden=hidden, mu=mu, lr_multiplier=lr_multiplier)


class MaxAffineBregman(Bregman):
    """The learned Bregman divergence registered as `bregman-maxaffine`: `Bregman(dim,
    "maxaffine", pieces=K, mu=mu)`, phi the maximum of K affine functions plus (mu / 2) ||x||^2,
    which keeps D(x, y) = 0 only for x = y (weights learning `lr_multiplier` times faster, as for
    `bregman`; see `generators.MaxAffine` for why mu > 0)."""

    def __init__(
        self,
        dim: int,
        *,
        pieces: int = cast(int, _DEFAULTS["pieces"]),
        mu: float = cast(float, _DEFAULTS["mu"]),
        lr_multiplier: float = LR_MULTIPLIER,
    ) -> None:
        super().__init__(dim, "maxaffine", pieces=pieces, mu=mu, lr_multiplier=lr_multiplier)


class BregmanReversed(Reversed):
    """D'(a || b) = D(b || a), with its inner-product ranking form.

    Ranking the gallery by D(g || q) = phi(g) - phi(q) - <grad phi(q), g - q>: ascending D ==
    descending <[g, phi(g)], [grad phi(q), -1]>."""

    inner: Bregman

    def __init__(self, inner: Bregman) -> None:
        super().__init__(inner)

    def ranking_vectors(self, query: Tensor, gallery: Tensor) -> tuple[Tensor, Tensor]:
        """Q = [grad phi(q), -1], G = [g, phi(g)] (detached)."""
        inner = self.inner
        check_pair(query, gallery, self.name)
        query, gallery = inner.points(query, gallery, "ranking_vectors")
        u_q = inner.value_and_grad(query, False)[1]
        phi_g = inner.value_and_grad(gallery, False)[0]
        return _append(u_q, -1.0), torch.cat([gallery.detach(), phi_g[:, None]], dim=1)

    def reversed(self) -> Bregman:
        return self.inner


class BregmanSymmetrised(Symmetrised):
    """D_s(a, b) = D(a || b) + D(b || a) = <a - b, grad phi(a) - grad phi(b)>.

    Computed as s_a + s_b - <a, u_b> - <u_a, b> with u = grad phi, s = <x, u>: two GEMMs."""

    inner: Bregman

    def __init__(self, inner: Bregman) -> None:
        super().__init__(inner)

    def _pairwise(self, a: Tensor, b: Tensor) -> Tensor:
        inner = self.inner
        a, b = inner.points(a, b, "pairwise")
        graph = inner.needs_graph(a, b)
        u_b = inner.value_and_grad(b, graph)[1]
        u_a = u_b if a is b else inner.value_and_grad(a, graph)[1]
        s_a, s_b = (a * u_a).sum(dim=1), (b * u_b).sum(dim=1)
        return (s_a[:, None] + s_b[None, :] - a @ u_b.T - u_a @ b.T).clamp_min(0.0)

    def ranking_vectors(self, query: Tensor, gallery: Tensor) -> tuple[Tensor, Tensor]:
        """Q = [q, grad phi(q), 1], G = [grad phi(g), g, -<g, grad phi(g)>] (detached).

        D_s(q, g) = <q, u_q> - (<q, u_g> + <u_q, g> - <g, u_g>), and <q, u_q> is constant per
        query."""
        inner = self.inner
        check_pair(query, gallery, self.name)
        query, gallery = inner.points(query, gallery, "ranking_vectors")
        u_q = inner.value_and_grad(query, False)[1]
        u_g = inner.value_and_grad(gallery, False)[1]
        g = gallery.detach()
        return (
            _append(torch.cat([query.detach(), u_q], dim=1), 1.0),
            torch.cat([u_g, g, -(g * u_g).sum(dim=1, keepdim=True)], dim=1),
        )


def _append(x: Tensor, value: float) -> Tensor:
    return torch.cat([x, x.new_full((x.shape[0], 1), value)], dim=1)


def _check_hidden(hidden: Sequence[int]) -> tuple[int, ...]:
    ok = (
        isinstance(hidden, Sequence)
        and len(hidden) > 0
        and all(isinstance(w, int) and not isinstance(w, bool) and w >= 1 for w in hidden)
    )
    if not ok:
        raise ValueError(
            f"Bregman(generator='icnn'): hidden must be a non-empty sequence of positive integers "
            f"(the ICNN layer widths, e.g. (32, 32, 32)); got {hidden!r}"
        )
    return tuple(hidden)


def _check_mu(generator: str, mu: float) -> float:
    if isinstance(mu, bool) or not isinstance(mu, (int, float)) or not math.isfinite(mu) or mu < 0:
        raise ValueError(
            f"Bregman(generator={generator!r}): mu must be a finite number >= 0 "
            "(the strong-convexity weight; "
            f"mu > 0 keeps D(x, y) = 0 only for x = y); got {mu!r}"
        )
    return float(mu)


def _check_pieces(pieces: int) -> int:
    if isinstance(pieces, bool) or not isinstance(pieces, int) or pieces < 2:
        raise ValueError(
            "Bregman(generator='maxaffine'): pieces must be an integer >= 2 "
            "(the number K of affine "
            f"pieces; K = 1 makes D identically 0); got {pieces!r}"
        )
    return pieces


def _check_lr_multiplier(generator: str, rate: float) -> float:
    ok = isinstance(rate, (int, float)) and not isinstance(rate, bool)
    if not ok or not math.isfinite(rate) or rate <= 0:
        raise ValueError(
            f"Bregman(generator={generator!r}): lr_multiplier must be a finite number > 0 "
            "(how many times faster than the learning rate the generator learns; 1 = the plain "
            f"rate); got {rate!r}"
        )
    return float(rate)
