"""Convex generators phi for the learned Bregman divergence (see `dmllab.geometry.bregman`).

A generator is an `nn.Module` mapping x [n, d] to phi(x) [n], one value per row, with no
interaction between rows (so the gradient of phi(x).sum() is the row-wise gradient of phi).

- `ICNN`: input-convex neural network (Amos, Xu, Kolter, "Input Convex Neural Networks",
  ICML 2017), smooth and strictly convex when mu > 0; gradient by autograd.
- `MaxAffine`: phi(x) = max_k (w_k . x + b_k) + (mu / 2) ||x||^2 (Cilingir, Manzelli, Kulis,
  "Deep Divergence Learning", ICML 2020, plus the ICNN's strongly convex term); piecewise
  quadratic, gradient in closed form.

Both learn `lr_multiplier` (default `LR_MULTIPLIER` = 10) times faster than the optimiser's
learning rate says, so that a learned geometry trains at the lab's defaults (Adam at 1e-3 for a few
hundred steps, the rate an embedding network wants) as it does with a rate of 1e-2: every
parameter is stored divided by `lr_multiplier` and multiplied back where it is used, and Adam's
steps are about the learning rate in the stored value whatever its scale, so the generator's
weights move `lr_multiplier` times as far per step (the equalised-learning-rate device of Karras,
Aila, Laine, Lehtinen, ICLR 2018, used the other way round). The function phi is the same for
every `lr_multiplier`, only its training speed differs; under plain SGD the factor is
`lr_multiplier` squared. `lr_multiplier=1` is the plain parameterisation.

A generator's state dict records its `lr_multiplier` (`parameter_scale`), so it loads into a
generator with another one (or none: one saved before it existed) as the same phi.
"""

from __future__ import annotations

import math
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["ICNN", "LR_MULTIPLIER", "MaxAffine", "NONNEGATIVE_INIT"]

# softplus(NONNEGATIVE_INIT_RAW) == 0.3: the initial value of every non-negative ICNN weight.
NONNEGATIVE_INIT = 0.3
NONNEGATIVE_INIT_RAW = math.log(math.expm1(NONNEGATIVE_INIT))
#: how many times faster than the optimiser's learning rate a generator's weights learn
LR_MULTIPLIER = 10.0


class _Multiplied(nn.Module):
    """A generator whose parameters are stored divided by `lr_multiplier` (module docstring).

    The state dict records that factor (`parameter_scale`), so a state dict loads into a
    generator with another `lr_multiplier` as the same function phi; one saved before the
    multiplier existed has no record and held the weights as they act (factor 1)."""

    lr_multiplier: float
    parameter_scale: Tensor

    def _store(self) -> None:
        """Turn the freshly initialised weights into their stored form."""
        with torch.no_grad():
            for parameter in self.parameters():
                parameter.div_(self.lr_multiplier)
        self.register_buffer("parameter_scale", torch.tensor(self.lr_multiplier))

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
        key = prefix + "parameter_scale"
        saved = float(state_dict.get(key, 1.0))
        if saved != self.lr_multiplier:
            factor = saved / self.lr_multiplier
            for name in [k for k in state_dict if k.startswith(prefix) and k != key]:
                state_dict[name] = state_dict[name] * factor
        state_dict[key] = self.parameter_scale.new_tensor(self.lr_multiplier)
        super()._load_from_state_dict(state_dict, prefix, *args)


class ICNN(_Multiplied):
    """phi(x) = a . z_K + (mu / 2) ||x||^2, an input-convex network with softplus activations.

        z_1     = softplus(W_0 x + b_0)
        z_{k+1} = softplus(A_k z_k + W_k x + b_k),   k = 1 .. K-1
        A_k = softplus(A_k_raw) >= 0,  a = softplus(a_raw) >= 0,  W_k unconstrained.

    phi is convex because softplus is convex and non-decreasing and the z-path weights are
    non-negative; softplus (not ReLU) keeps it smooth, so D is not zero inside linear regions.
    mu > 0 makes phi mu-strongly convex (D(x, y) >= (mu / 2) ||x - y||^2); mu = 0 is allowed but
    then strict convexity (D = 0 only for x = y) is not guaranteed. W_k and b_k start as
    `nn.Linear`'s default initialisation, the non-negative weights at softplus(raw) = 0.3. Every
    parameter (W_k, b_k and the raw weights) is stored divided by `lr_multiplier` and multiplied
    back here, so that it learns `lr_multiplier` times faster (module docstring).
    """

    def __init__(
        self,
        dim: int,
        hidden: tuple[int, ...] = (32, 32, 32),
        mu: float = 0.05,
        lr_multiplier: float = LR_MULTIPLIER,
    ) -> None:
        super().__init__()
        self.dim = dim
        self.hidden = tuple(hidden)
        self.mu = float(mu)
        self.lr_multiplier = float(lr_multiplier)
        self.input_layers = nn.ModuleList(nn.Linear(dim, width) for width in self.hidden)
        self.z_weights_raw = nn.ParameterList(
            nn.Parameter(torch.full((width_out, width_in), NONNEGATIVE_INIT_RAW))
            for width_in, width_out in zip(self.hidden[:-1], self.hidden[1:], strict=True)
        )
        self.output_raw = nn.Parameter(torch.full((self.hidden[-1],), NONNEGATIVE_INIT_RAW))
        self._store()

    def forward(self, x: Tensor) -> Tensor:
        s = self.lr_multiplier
        z = F.softplus(self._input(0, x))
        for k, raw in enumerate(self.z_weights_raw, start=1):
            z = F.softplus(z @ F.softplus(s * raw).T + self._input(k, x))
        return z @ F.softplus(s * self.output_raw) + 0.5 * self.mu * (x * x).sum(dim=1)

    def _input(self, k: int, x: Tensor) -> Tensor:
        """W_k x + b_k: [n, hidden[k]]."""
        layer, s = cast(nn.Linear, self.input_layers[k]), self.lr_multiplier
        return F.linear(x, s * layer.weight, s * layer.bias)

    def extra_repr(self) -> str:
        return (
            f"dim={self.dim}, hidden={self.hidden}, mu={self.mu}, "
            f"lr_multiplier={self.lr_multiplier:g}"
        )


class MaxAffine(_Multiplied):
    """phi(x) = max_k f_k(x) + (mu / 2) ||x||^2, f_k(x) = w_k . x + b_k, with K = `pieces`.

    grad phi(y) = w_{k*(y)} + mu y with k*(y) = argmax_k f_k(y) (the first maximiser on ties), so

        D(x, y) = max_k f_k(x) - f_{k*(y)}(x) + (mu / 2) ||x - y||^2.

    The max-affine part sends no gradient to y. w_k ~ N(0, I / d) and b_k = 0 at the start,
    stored divided by `lr_multiplier` (module docstring); mu is a constant, not learned. A piece
    that is active at no training point and no prototype gets no gradient and stays unused.

    Why mu > 0 (default 0.05, the ICNN's): the max-affine part alone is zero whenever x and y
    select the same piece, so D(x, .) takes at most K values and every point of a piece is at
    divergence 0 from every other. A loss over class means (the prototype cross-entropy) then
    reaches its uninformative value log C by letting few pieces win everywhere (D = 0 between
    all points), and retrieval ranks ties: trained at the lab's defaults on 2-D mixtures or
    log-grids, every test point's nearest training point was at D = 0, tied with a hundred or
    more others, and nearest-mean accuracy stayed near chance. The quadratic makes phi
    mu-strongly convex, D(x, y) >= (mu / 2) ||x - y||^2, so D = 0 only for x = y and a point
    still ranks its piece-mates by distance; with it the same runs classify as well as the
    squared Euclidean distance. Smaller initial slopes, tangent-plane initial pieces and 64
    instead of 8 pieces did not remove the ties without it. mu = 0 is the plain max-affine
    generator of Cilingir et al.
    """

    def __init__(
        self, dim: int, pieces: int = 8, mu: float = 0.05, lr_multiplier: float = LR_MULTIPLIER
    ) -> None:
        super().__init__()
        self.dim = dim
        self.pieces = pieces
        self.mu = float(mu)
        self.lr_multiplier = float(lr_multiplier)
        self.weight = nn.Parameter(torch.randn(pieces, dim) / math.sqrt(dim))
        self.bias = nn.Parameter(torch.zeros(pieces))
        self._store()

    def scores(self, x: Tensor) -> Tensor:
        """f_k(x) for every piece: [n, K] (the affine pieces, without the quadratic)."""
        s = self.lr_multiplier
        return x @ (s * self.weight).T + s * self.bias

    def forward(self, x: Tensor) -> Tensor:
        return self.scores(x).max(dim=1).values + 0.5 * self.mu * (x * x).sum(dim=1)

    def active_piece(self, x: Tensor) -> Tensor:
        """k*(x) = argmax_k f_k(x): [n] (long)."""
        return self.scores(x).argmax(dim=1)

    def gradient(self, x: Tensor) -> Tensor:
        """grad phi(x) = w_{k*(x)} + mu x: [n, d] (a subgradient on ties)."""
        return self.lr_multiplier * self.weight[self.active_piece(x)] + self.mu * x

    def extra_repr(self) -> str:
        return (
            f"dim={self.dim}, pieces={self.pieces}, mu={self.mu}, "
            f"lr_multiplier={self.lr_multiplier:g}"
        )
