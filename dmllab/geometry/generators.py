"""Convex generators phi for the learned Bregman divergence (see `dmllab.geometry.bregman`).

A generator is an `nn.Module` mapping x [n, d] to phi(x) [n], one value per row, with no
interaction between rows (so the gradient of phi(x).sum() is the row-wise gradient of phi).

- `ICNN`: input-convex neural network (Amos, Xu, Kolter, "Input Convex Neural Networks",
  ICML 2017), smooth and strictly convex when mu > 0; gradient by autograd.
- `MaxAffine`: phi(x) = max_k (w_k . x + b_k) (Cilingir, Manzelli, Kulis, "Deep Divergence
  Learning", ICML 2020); convex but piecewise linear, gradient in closed form.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["ICNN", "MaxAffine", "NONNEGATIVE_INIT"]

# softplus(NONNEGATIVE_INIT_RAW) == 0.3: the initial value of every non-negative ICNN weight.
NONNEGATIVE_INIT = 0.3
NONNEGATIVE_INIT_RAW = math.log(math.expm1(NONNEGATIVE_INIT))


class ICNN(nn.Module):
    """phi(x) = a . z_K + (mu / 2) ||x||^2, an input-convex network with softplus activations.

        z_1     = softplus(W_0 x + b_0)
        z_{k+1} = softplus(A_k z_k + W_k x + b_k),   k = 1 .. K-1
        A_k = softplus(A_k_raw) >= 0,  a = softplus(a_raw) >= 0,  W_k unconstrained.

    phi is convex because softplus is convex and non-decreasing and the z-path weights are
    non-negative; softplus (not ReLU) keeps it smooth, so D is not zero inside linear regions.
    mu > 0 makes phi mu-strongly convex (D(x, y) >= (mu / 2) ||x - y||^2); mu = 0 is allowed but
    then strict convexity (D = 0 only for x = y) is not guaranteed. The raw non-negative weights
    start at softplus(raw) = 0.3.
    """

    def __init__(self, dim: int, hidden: tuple[int, ...] = (32, 32, 32), mu: float = 0.05) -> None:
        super().__init__()
        self.dim = dim
        self.hidden = tuple(hidden)
        self.mu = float(mu)
        self.input_layers = nn.ModuleList(nn.Linear(dim, width) for width in self.hidden)
        self.z_weights_raw = nn.ParameterList(
            nn.Parameter(torch.full((width_out, width_in), NONNEGATIVE_INIT_RAW))
            for width_in, width_out in zip(self.hidden[:-1], self.hidden[1:], strict=True)
        )
        self.output_raw = nn.Parameter(torch.full((self.hidden[-1],), NONNEGATIVE_INIT_RAW))

    def forward(self, x: Tensor) -> Tensor:
        z = F.softplus(self.input_layers[0](x))
        for raw, layer in zip(self.z_weights_raw, self.input_layers[1:], strict=True):
            z = F.softplus(z @ F.softplus(raw).T + layer(x))
        return z @ F.softplus(self.output_raw) + 0.5 * self.mu * (x * x).sum(dim=1)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, hidden={self.hidden}, mu={self.mu}"


class MaxAffine(nn.Module):
    """phi(x) = max_k f_k(x), f_k(x) = w_k . x + b_k, with K = `pieces` affine functions.

    grad phi(y) = w_{k*(y)} with k*(y) = argmax_k f_k(y) (the first maximiser on ties), so
    D(x, y) = max_k f_k(x) - f_{k*(y)}(x): D(x, .) takes at most K values and no gradient
    reaches y.
    """

    def __init__(self, dim: int, pieces: int = 8) -> None:
        super().__init__()
        self.dim = dim
        self.pieces = pieces
        self.weight = nn.Parameter(torch.randn(pieces, dim) / math.sqrt(dim))
        self.bias = nn.Parameter(torch.zeros(pieces))

    def scores(self, x: Tensor) -> Tensor:
        """f_k(x) for every piece: [n, K]."""
        return x @ self.weight.T + self.bias

    def forward(self, x: Tensor) -> Tensor:
        return self.scores(x).max(dim=1).values

    def active_piece(self, x: Tensor) -> Tensor:
        """k*(x) = argmax_k f_k(x): [n] (long)."""
        return self.scores(x).argmax(dim=1)

    def gradient(self, x: Tensor) -> Tensor:
        """grad phi(x) = w_{k*(x)}: [n, d] (a subgradient on ties)."""
        return self.weight[self.active_piece(x)]

    def extra_repr(self) -> str:
        return f"dim={self.dim}, pieces={self.pieces}"
