"""evaluate(run): a hand-built Run with an identity model, so every value can be recomputed
directly."""

import math

import pytest
import torch
from torch import nn

import dmllab as dl
from dmllab.config import Config
from dmllab.data import Splits
from dmllab.data.dataset import Dataset
from dmllab.geometry.base import Geometry
from dmllab.geometry.euclidean import Euclidean
from dmllab.metrics import (
    ami,
    intra_inter_ratio,
    kmeans,
    memorisation,
    nmi,
    prototype_accuracy,
    retrieval,
    spectral_decay,
    subcluster_ari,
)
from dmllab.runs import Run


class InnerGap(Geometry):
    """D(a || b) = ||a||^2 - a.b (asymmetric)."""

    name = "inner-gap"
    symmetric = False

    def _pairwise(self, a, b):
        return (a * a).sum(dim=1, keepdim=True) - a @ b.T


def mixture(n, classes, seed, modes=2):
    """Points around class-and-mode centres: y = class, sub = class * modes + mode."""
    g = torch.Generator().manual_seed(seed)
    sub = torch.arange(n) % (classes * modes)
    centres = 5.0 * torch.randn(classes * modes, 3, generator=torch.Generator().manual_seed(0))
    return Dataset(
        x=centres[sub] + torch.randn(n, 3, generator=g), y=sub // modes, sub=sub, name="toy"
    )


def make_run(geometry=None, noisy=True, stratified=True, seed=0):
    train = mixture(80, 4, seed=1)
    test = mixture(48, 4 if stratified else 6, seed=2)
    if not stratified:
        test = test.with_labels(test.y + 10)  # classes the training split never saw
        test.sub = test.sub + 100
    if noisy:
        flipped_y = train.y.clone()
        flipped_y[::5] = (flipped_y[::5] + 1) % 4
        train = train.with_labels(flipped_y, clean_y=train.y)
    return Run(
        model=nn.Identity(),
        geometry=geometry or Euclidean(),
        config=Config(seed=seed),
        data=Splits(train=train, test=test),
    )


def test_keys_and_values_match_direct_calls():
    run = make_run()
    got = dl.evaluate(run, ks=(1, 2))
    test, train = run.test, run.train
    expected = retrieval(test.x, test.y, ks=(1, 2))
    for name, value in expected.items():
        assert got[name] == value
    clusters = kmeans(test.x, 4, seed=0)
    assert got["nmi"] == nmi(test.x, test.y, clusters=clusters)
    assert got["ami"] == ami(test.x, test.y, clusters=clusters)
    fine = retrieval(test.x, test.sub, ks=(1, 2))
    assert got["fine_recall@1"] == fine["recall@1"] and got["fine_map@r"] == fine["map@r"]
    assert got["fine_nmi"] == nmi(test.x, test.sub)
    assert got["subcluster_ari"] == subcluster_ari(test.x, test.y, test.sub)
    assert got["intra_inter_ratio"] == intra_inter_ratio(test.x, test.y)
    assert got["spectral_decay"] == spectral_decay(test.x)
    # stratified: every test class is in the training split, so the class means come from there
    assert got["prototype_accuracy"] == prototype_accuracy(test.x, test.y, train.x, train.y)
    assert got["memorisation"] == memorisation(train.x, train.y, train.flipped)
    assert "asymmetry" not in got and not any(k.startswith("gallery_first_") for k in got)
    assert all(isinstance(v, float) for v in got.values())


def test_zero_shot_prototypes_come_from_the_evaluated_split():
    run = make_run(stratified=False, noisy=False)
    got = dl.evaluate(run)
    assert got["prototype_accuracy"] == prototype_accuracy(run.test.x, run.test.y)
    assert "memorisation" not in got


def test_asymmetric_geometry_reports_every_direction():
    run = make_run(geometry=InnerGap())
    got = dl.evaluate(run, ks=(1,))
    x, y = run.test.x, run.test.y
    assert got["map@r"] == retrieval(x, y, geometry=InnerGap(), ks=(1,))["map@r"]
    reverse = retrieval(x, y, geometry=InnerGap().reversed(), ks=(1,))
    both = retrieval(x, y, geometry=InnerGap().symmetrised(), ks=(1,))
    for name in ("recall@1", "precision@1", "map@r", "r_precision", "mrr"):
        assert got[f"gallery_first_{name}"] == reverse[name]
        assert got[f"symmetrised_{name}"] == both[name]
    assert got["asymmetry"] > 0
    assert "gallery_first_excluded_queries" not in got


def test_given_dataset_and_run_without_data():
    run = make_run()
    data = run.test
    run.data = None
    got = dl.evaluate(run, data, ks=(1,))
    assert got["recall@1"] == retrieval(data.x, data.y, ks=(1,))["recall@1"]
    assert got["prototype_accuracy"] == prototype_accuracy(data.x, data.y)
    with pytest.raises(ValueError, match="no data"):
        dl.evaluate(run)


def test_max_queries_evaluates_a_seeded_subset_against_everything():
    run = make_run(seed=3)
    got = dl.evaluate(run, ks=(1,), max_queries=10)
    x, y = run.test.x, run.test.y
    assert got["map@r"] == retrieval(x, y, ks=(1,), max_queries=10, seed=3)["map@r"]
    assert dl.evaluate(run, ks=(1,), max_queries=10) == got


def test_evaluate_other_split_and_missing_split():
    run = make_run()
    got = dl.evaluate(run, split="train", ks=(1,))
    assert got["recall@1"] == retrieval(run.train.x, run.train.y, ks=(1,))["recall@1"]
    with pytest.raises(ValueError, match="val"):
        dl.evaluate(run, split="val")


def test_nan_embeddings_raise():
    run = make_run()
    run.data.test = run.test.subset(torch.arange(10))
    run.data.test.x[3, 0] = math.nan
    with pytest.raises(ValueError, match="NaN"):
        dl.evaluate(run)
