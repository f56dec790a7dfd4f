"""A learned geometry learns at the library's defaults: switching `geometry="bregman"` is enough.

On data no lesson uses (27 positive clusters on a 3-D log-grid whose spread grows with their
distance from the origin, drawn afresh per seed), with the raw point as the embedding and the
prototype cross-entropy, and every training knob at `Config`'s defaults (epochs, batches, batch
shape, optimiser, learning rates, weight decay, the loss's temperature, the generator's mu and
lr_multiplier), the learned ICNN divergence classifies test points by their nearest training
class mean (`prototype_accuracy`, the mean in the second argument) better than the Euclidean
distance, on paired seeds: the one-sided 95 % lower confidence bound of the gain clears zero
(`dmllab.claims`). A seed fixes the data draw, the split and the initialisation.
"""

import itertools

import pytest
import torch

import dmllab as dl
from dmllab.claims import paired_difference
from dmllab.metrics import prototype_accuracy

pytestmark = pytest.mark.slow

SEEDS = range(6)
# Config fields that are the data and the model of this claim; every other field is a default.
SETUP = {
    "model": "identity",
    "normalize": False,
    "split": "stratified",
    "loss": "prototype_ce",
}


def log_grid_3d(seed: int, per_class: int = 60, sigma: float = 0.2) -> dl.data.Dataset:
    """Centres exp(u) / 5 for u in {0, 1, 2}^3 (27 classes) and multiplicative noise
    x = c * exp(sigma * eps): a cluster's size is proportional to its distance from the origin."""
    generator = torch.Generator().manual_seed(10_000 + seed)
    exponents = torch.tensor(list(itertools.product((0.0, 1.0, 2.0), repeat=3)))
    centres = exponents.exp() / 5
    y = torch.arange(len(centres)).repeat_interleave(per_class)
    x = centres[y] * torch.exp(sigma * torch.randn(len(y), 3, generator=generator))
    return dl.data.Dataset(x=x, y=y, name="log-grid-3d")


def nearest_mean_accuracy(geometry: str, seed: int) -> float:
    config = dl.Config(geometry=geometry, seed=seed, **SETUP)
    run = dl.fit(config, log_grid_3d(seed), progress=False)
    with torch.no_grad():
        return prototype_accuracy(
            run.embed(run.test), run.test.y, run.embed(run.train), run.train.y, run.geometry
        )


def test_the_setup_leaves_every_training_knob_at_its_default():
    defaults = dl.Config()
    config = dl.Config(geometry="bregman", **SETUP)
    changed = {name for name, value in config.to_dict().items() if value != getattr(defaults, name)}
    assert changed == {*SETUP, "geometry"}, changed


def test_the_learned_icnn_divergence_beats_euclidean_at_the_defaults():
    learned = [nearest_mean_accuracy("bregman", seed) for seed in SEEDS]
    euclidean = [nearest_mean_accuracy("sqeuclidean", seed) for seed in SEEDS]
    gain = paired_difference(learned, euclidean, metric="nearest-mean accuracy")
    print(gain, learned, euclidean)
    assert gain.lower > 0, (gain, learned, euclidean)
