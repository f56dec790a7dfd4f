"""Small hand-built runs, datasets and geometries for the viz and widget tests (no training)."""

from __future__ import annotations

import torch
from torch import nn

from dmllab.config import Config
from dmllab.data import Splits
from dmllab.data.dataset import Dataset
from dmllab.geometry.base import Geometry
from dmllab.runs import Run


class ExpBregman(Geometry):
    """D(a || b) = sum_k exp(a_k) - exp(b_k) - exp(b_k) (a_k - b_k): the Bregman divergence of
    phi(x) = sum_k exp(x_k). Asymmetric, exact, and it has a generator `phi`."""

    name = "exp-bregman"
    symmetric = False
    dim = 2

    def phi(self, x: torch.Tensor) -> torch.Tensor:
        return x.exp().sum(dim=1)

    def _pairwise(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        ea, eb = a.exp()[:, None, :], b.exp()[None, :, :]
        return (ea - eb - eb * (a[:, None, :] - b[None, :, :])).sum(dim=2)


class SquaredDistance(Geometry):
    name = "sq"

    def _pairwise(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.cdist(a, b).pow(2)


def image_dataset(
    n_per_class: int = 8, classes: int = 3, seed: int = 0, noisy: bool = True
) -> Dataset:
    """Classes of 4x4 'images' around distinct means, two sub-clusters per class, some labels
    flipped."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(classes).repeat_interleave(n_per_class)
    sub = 2 * y + torch.arange(len(y)) % 2
    means = torch.randn(2 * classes, 16, generator=g) * 3
    x = means[sub] + 0.3 * torch.randn(len(y), 16, generator=g)
    clean = y.clone()
    noisy_y = y.clone()
    if noisy:
        noisy_y[0] = (y[0] + 1) % classes
        noisy_y[n_per_class] = (y[n_per_class] + 1) % classes
    return Dataset(
        x=x,
        y=noisy_y,
        sub=sub,
        clean_y=clean if noisy else None,
        image_shape=(1, 4, 4),
        name="tiny-images",
    )


def hand_run(epochs: int = 3, embedding_dim: int = 5, probe: int = 12) -> Run:
    """A Run as `fit` returns it, built by hand: a fixed linear embedder, history and snapshots."""
    torch.manual_seed(0)
    train, test = image_dataset(seed=0), image_dataset(seed=1, noisy=False)
    model = nn.Linear(16, embedding_dim)
    probe_index = torch.arange(probe)
    snapshots = {}
    history = []
    with torch.no_grad():
        for epoch in range(1, epochs + 1):
            snapshots[epoch] = model(train.x[probe_index]) * epoch
            history.append(
                {
                    "epoch": epoch,
                    "loss": 1.0 / epoch,
                    "base_loss": 0.9 / epoch,
                    "lsd_term": 0.1 * epoch,
                    "active": 100 - epoch,
                    "val_recall@1": 0.5 + 0.1 * epoch,
                    "seconds": 0.01,
                }
            )
    return Run(
        model=model,
        geometry=SquaredDistance(),
        config=Config(epochs=epochs),
        history=history,
        snapshots=snapshots,
        probe_index=probe_index,
        data=Splits(train=train, test=test),
    )
