"""Generated toy datasets with known hidden structure (`sub` = the mode each point was drawn from).

- `mixture`: Gaussian modes at random (seeded) centres, several modes per class.
- `modes_on_circle`: modes evenly spaced on the unit circle, classes interleaved (mode k -> class
  k mod C).
- `loggrid`: 16 classes on a log-spaced grid with multiplicative noise, where the right geometry is
  Itakura-Saito-like rather than Euclidean (the learned-Bregman lesson).

>>> data = modes_on_circle(seed=0)
>>> tuple(data.x.shape), data.num_classes, int(data.sub.max()) + 1
((600, 2), 2, 6)
"""

from __future__ import annotations

import math

import torch

from dmllab.data._options import non_negative_float, positive_int
from dmllab.data.dataset import Dataset


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed))


def mixture(
    *,
    seed: int = 0,
    num_classes: int = 10,
    modes_per_class: int = 3,
    dim: int = 2,
    per_mode: int = 30,
    spread: float = 5.0,
    sigma: float = 0.5,
    noise_dims: int = 0,
) -> Dataset:
    """A Gaussian mixture with `modes_per_class` modes per class.

    Mode m (m = 0 .. num_classes * modes_per_class - 1) belongs to class m // modes_per_class; its
    centre is drawn uniformly from the box [-spread, spread]^dim and its `per_mode` points are
    centre + sigma * N(0, I). `sigma / spread` sets how much the modes overlap. `noise_dims` extra
    coordinates ~ N(0, spread^2) carry no class information. `sub` holds the mode id. The
    defaults (10 classes) leave 5 training classes after the class-disjoint split, the batch of
    5 classes the default `Config` draws.
    """
    name = "mixture"
    positive_int(name, "num_classes", num_classes, minimum=2)
    positive_int(name, "modes_per_class", modes_per_class)
    positive_int(name, "dim", dim)
    positive_int(name, "per_mode", per_mode)
    positive_int(name, "noise_dims", noise_dims, minimum=0)
    spread = non_negative_float(name, "spread", spread, strict=True)
    sigma = non_negative_float(name, "sigma", sigma)
    gen = _generator(seed)
    num_modes = num_classes * modes_per_class
    centres = (torch.rand(num_modes, dim, generator=gen) * 2 - 1) * spread
    sub = torch.arange(num_modes).repeat_interleave(per_mode)
    x = centres[sub] + sigma * torch.randn(len(sub), dim, generator=gen)
    if noise_dims:
        x = torch.cat([x, spread * torch.randn(len(sub), noise_dims, generator=gen)], dim=1)
    options = dict(
        num_classes=num_classes,
        modes_per_class=modes_per_class,
        dim=dim,
        per_mode=per_mode,
        spread=spread,
        sigma=sigma,
        noise_dims=noise_dims,
        seed=seed,
    )
    return Dataset(
        x=x,
        y=sub // modes_per_class,
        sub=sub,
        name=name,
        meta={"centres": centres, "options": options},
    )


def modes_on_circle(
    *,
    seed: int = 0,
    num_modes: int = 6,
    num_classes: int = 2,
    sigma: float = 0.22,
    per_mode: int = 100,
) -> Dataset:
    """Modes at angles 2*pi*k/num_modes on the unit circle, class = k mod num_classes.

    Each class owns num_modes / num_classes modes interleaved with the other classes' modes, so
    pulling a class together (class collapse) must merge far-apart modes. Points are
    (cos, sin)(2*pi*k/M) + sigma * N(0, I); `sub` holds the mode id k.
    """
    name = "modes-on-circle"
    positive_int(name, "num_classes", num_classes, minimum=2)
    positive_int(name, "num_modes", num_modes, minimum=num_classes)
    positive_int(name, "per_mode", per_mode)
    sigma = non_negative_float(name, "sigma", sigma)
    gen = _generator(seed)
    angles = 2 * math.pi * torch.arange(num_modes) / num_modes
    centres = torch.stack([angles.cos(), angles.sin()], dim=1)
    sub = torch.arange(num_modes).repeat_interleave(per_mode)
    x = centres[sub] + sigma * torch.randn(len(sub), 2, generator=gen)
    options = dict(
        num_modes=num_modes, num_classes=num_classes, sigma=sigma, per_mode=per_mode, seed=seed
    )
    return Dataset(
        x=x, y=sub % num_classes, sub=sub, name=name, meta={"centres": centres, "options": options}
    )


LOGGRID_EXPONENTS = (0.0, 0.8, 1.6, 2.4)
LOGGRID_SCALE = 5.0


def loggrid(*, seed: int = 0, per_class: int = 60, sigma: float = 0.18) -> Dataset:
    """16 classes with centres (e^u, e^v), u, v in {0, 0.8, 1.6, 2.4}, and multiplicative noise.

    x = c * exp(sigma * eps), eps ~ N(0, I), then divided by 5. Class (i, j) (u = exponents[i],
    v = exponents[j]) has label 4 * i + j. A cluster's size grows with its distance from the
    origin, so nearest-mean classification works better under an Itakura-Saito-like divergence
    than under the Euclidean distance. `meta["centres"]` holds the (scaled) centres.
    """
    name = "loggrid"
    positive_int(name, "per_class", per_class)
    sigma = non_negative_float(name, "sigma", sigma)
    gen = _generator(seed)
    exponents = torch.tensor(LOGGRID_EXPONENTS)
    u, v = torch.meshgrid(exponents, exponents, indexing="ij")
    centres = torch.stack([u.flatten().exp(), v.flatten().exp()], dim=1)
    y = torch.arange(len(centres)).repeat_interleave(per_class)
    x = centres[y] * torch.exp(sigma * torch.randn(len(y), 2, generator=gen)) / LOGGRID_SCALE
    options = dict(per_class=per_class, sigma=sigma, seed=seed)
    return Dataset(
        x=x, y=y, name=name, meta={"centres": centres / LOGGRID_SCALE, "options": options}
    )
