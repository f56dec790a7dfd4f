"""The Bregman lesson end to end: on `loggrid` a learned divergence beats the Euclidean one.

Cluster size grows with distance from the origin, so nearest-class-mean classification is better
under an Itakura-Saito-like divergence. A 2-D ICNN Bregman divergence trained with prototype
cross-entropy (prototypes in the second argument), every training knob at its default as in the
lesson, finds such a geometry: it is clearly asymmetric and beats squared Euclidean on paired
seeds (the one-sided 95% lower bound of the gain clears zero).
With a huge mu the generator is (mu / 2) ||x||^2 plus a negligible ICNN, and the divergence stays
Euclidean.
"""

import pytest
import torch

import dmllab as dl
from dmllab.claims import paired_difference
from dmllab.geometry.readouts import relative_asymmetry

pytestmark = pytest.mark.slow

SEEDS = (0, 1, 2)


def train(geometry, seed, **geometry_options):
    """Lesson 03's run: every training knob at `Config`'s default."""
    config = dl.Config(
        dataset="loggrid",
        dataset_options={"per_class": 120},
        model="identity",
        embedding_dim=2,
        normalize=False,
        split="stratified",
        loss="prototype_ce",
        geometry=geometry,
        geometry_options=geometry_options,
        seed=seed,
    )
    return dl.fit(config, progress=False)


def nearest_mean_accuracy(run):
    """Test accuracy of argmin_k D(x || m_k), m_k the training mean of class k (second argument)."""
    train_x, train_y = run.train.x, run.train.y
    classes = torch.unique(train_y)
    means = torch.stack([train_x[train_y == k].mean(dim=0) for k in classes])
    with torch.no_grad():
        predicted = classes[run.geometry.pairwise(run.test.x, means).argmin(dim=1)]
    return (predicted == run.test.y).float().mean().item()


def test_learned_divergence_beats_euclidean_and_is_asymmetric():
    euclidean = [nearest_mean_accuracy(train("sqeuclidean", seed)) for seed in SEEDS]
    learned_runs = [train("bregman", seed) for seed in SEEDS]
    learned = [nearest_mean_accuracy(run) for run in learned_runs]
    asymmetry = [relative_asymmetry(run.geometry, run.test.x) for run in learned_runs]

    gain = paired_difference(learned, euclidean, metric="nearest-mean accuracy")
    print(gain, "asymmetry", asymmetry)
    assert gain.lower > 0, (gain, learned, euclidean)
    assert min(asymmetry) > 0.15, asymmetry


def test_huge_mu_keeps_the_divergence_euclidean():
    euclidean = nearest_mean_accuracy(train("sqeuclidean", 0))
    run = train("bregman", 0, mu=1e4)
    assert relative_asymmetry(run.geometry, run.test.x) < 0.02
    assert nearest_mean_accuracy(run) == pytest.approx(euclidean, abs=0.01)
