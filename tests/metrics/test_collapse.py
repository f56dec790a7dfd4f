"""Clustering and collapse diagnostics against loop references and scikit-learn / scipy."""

import math
import sys

import numpy as np
import pytest
import torch
from scipy.stats import entropy
from sklearn.cluster import KMeans
from sklearn.metrics import (
    adjusted_mutual_info_score,
    adjusted_rand_score,
    normalized_mutual_info_score,
)

from dmllab.geometry.base import Geometry
from dmllab.geometry.euclidean import Euclidean
from dmllab.metrics import (
    ami,
    asymmetry,
    fine_label_metrics,
    intra_inter_ratio,
    kmeans,
    memorisation,
    nmi,
    prototype_accuracy,
    retrieval,
    spectral_decay,
    subcluster_ari,
)

collapse_module = sys.modules["dmllab.metrics.collapse"]


class InnerGap(Geometry):
    """D(a || b) = ||a||^2 - a.b (asymmetric)."""

    name = "inner-gap"
    symmetric = False

    def _pairwise(self, a, b):
        return (a * a).sum(dim=1, keepdim=True) - a @ b.T


def blobs(n=120, classes=4, d=5, seed=0, spread=1.0):
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % classes
    centres = 4.0 * torch.randn(classes, d, generator=g)
    return centres[labels] + spread * torch.randn(n, d, generator=g), labels


def distance(geometry, a, b):
    return float(geometry.pairwise(a[None], b[None])[0, 0])


# ------------------------------------------------------------------------------- clustering
def test_nmi_and_ami_match_scikit_learn_on_the_same_kmeans():
    x, y = blobs(spread=3.0)
    clusters = KMeans(n_clusters=4, n_init=3, random_state=7).fit_predict(x.double().numpy())
    assert nmi(x, y, seed=7) == pytest.approx(
        normalized_mutual_info_score(y.numpy(), clusters), abs=1e-12
    )
    assert ami(x, y, seed=7) == pytest.approx(
        adjusted_mutual_info_score(y.numpy(), clusters), abs=1e-12
    )


def test_one_clustering_scores_both():
    x, y = blobs(spread=3.0, seed=1)
    clusters = kmeans(x, 4, seed=3)
    assert nmi(x, y, clusters=clusters) == pytest.approx(
        normalized_mutual_info_score(y, clusters.numpy())
    )
    assert ami(x, y, clusters=clusters) == pytest.approx(
        adjusted_mutual_info_score(y, clusters.numpy())
    )
    assert torch.equal(clusters, kmeans(x, 4, seed=3))


def test_kmeans_k_is_the_number_of_distinct_labels():
    x, y = blobs(spread=0.01, seed=2)
    assert nmi(x, y * 10 + 3) == pytest.approx(1.0)


def test_kmeans_rejects_bad_k():
    with pytest.raises(ValueError, match="n_clusters"):
        kmeans(torch.zeros(3, 2), 4)


# ------------------------------------------------------------------------------- fine labels
def test_fine_label_metrics_are_retrieval_and_clustering_on_sub_labels():
    x, sub = blobs(80, classes=4, seed=3)
    got = fine_label_metrics(x, sub, ks=(1, 2), seed=5)
    expected = retrieval(x, sub, ks=(1, 2))
    for name, value in expected.items():
        assert got[f"fine_{name}"] == value
    assert got["fine_nmi"] == pytest.approx(nmi(x, sub, seed=5))
    assert got["fine_ami"] == pytest.approx(ami(x, sub, seed=5))


def test_subcluster_ari_matches_a_per_class_loop():
    x, sub = blobs(90, classes=6, seed=4, spread=2.0)
    labels = sub // 2  # classes 0, 1, 2 with two sub-clusters each
    labels[sub == 5] = 3  # and class 3 with a single sub-cluster: skipped
    expected = []
    for c in range(3):
        members = (labels == c).numpy()
        modes = len(np.unique(sub.numpy()[members]))
        clusters = KMeans(n_clusters=modes, n_init=3, random_state=0).fit_predict(
            x.double().numpy()[members]
        )
        expected.append(adjusted_rand_score(sub.numpy()[members], clusters))
    assert subcluster_ari(x, labels, sub) == pytest.approx(np.mean(expected), abs=1e-12)


def test_subcluster_ari_is_nan_without_sub_clusters():
    x, y = blobs(20, seed=5)
    assert math.isnan(subcluster_ari(x, y, y))


# ------------------------------------------------------------------------------- distances
@pytest.mark.parametrize("geometry", [Euclidean(), InnerGap()], ids=["euclidean", "asymmetric"])
def test_intra_inter_ratio_matches_a_pair_loop(geometry, monkeypatch):
    monkeypatch.setattr(collapse_module, "_ROWS_PER_BLOCK", 4)
    x, y = blobs(30, classes=3, d=3, seed=6)
    y[0] = 7  # a single-item class: no intra term, but a centre
    intra = []
    for c in torch.unique(y):
        members = x[y == c]
        pairs = [
            distance(geometry, members[i], members[j])
            for i in range(len(members))
            for j in range(len(members))
            if i != j
        ]
        if pairs:
            intra.append(sum(pairs) / len(pairs))
    centres = torch.stack([x[y == c].mean(dim=0) for c in torch.unique(y)])
    inter = [
        distance(geometry, centres[a], centres[b])
        for a in range(len(centres))
        for b in range(len(centres))
        if a != b
    ]
    expected = (sum(intra) / len(intra)) / (sum(inter) / len(inter))
    assert intra_inter_ratio(x, y, geometry) == pytest.approx(expected, rel=1e-5)


def test_intra_inter_ratio_needs_two_classes():
    with pytest.raises(ValueError, match="2 classes"):
        intra_inter_ratio(torch.randn(5, 2), torch.zeros(5, dtype=torch.long))


@pytest.mark.parametrize("skip", [0, 1, 3])
def test_spectral_decay_matches_roths_formula(skip):
    x = torch.randn(200, 8, generator=torch.Generator().manual_seed(7)) * torch.linspace(
        0.1, 3.0, 8
    )
    s = np.linalg.svd(x.double().numpy(), compute_uv=False)[skip:]
    expected = entropy(np.full(len(s), 1.0 / len(s)), s / s.sum())
    assert spectral_decay(x, skip=skip) == pytest.approx(expected, rel=1e-10)


def test_spectral_decay_grows_as_the_spectrum_collapses():
    g = torch.Generator().manual_seed(8)
    spread = spectral_decay(torch.randn(300, 6, generator=g))
    squeezed = spectral_decay(
        torch.randn(300, 6, generator=g) * torch.tensor([10.0, 1, 0.1, 0.1, 0.1, 0.1])
    )
    assert squeezed > spread > 0


def test_memorisation_matches_a_loop():
    x, clean = blobs(60, classes=3, d=2, seed=9, spread=2.5)
    noisy = clean.clone()
    flipped = torch.zeros(60, dtype=torch.bool)
    flipped[::4] = True
    noisy[flipped] = (clean[flipped] + 1) % 3
    hits = []
    for i in flipped.nonzero().flatten().tolist():
        d = [(distance(Euclidean(), x[i], x[j]), j) for j in range(60) if j != i]
        hits.append(int(noisy[min(d)[1]] == noisy[i]))
    assert memorisation(x, noisy, flipped) == pytest.approx(sum(hits) / len(hits))


def test_memorisation_needs_flipped_samples():
    with pytest.raises(ValueError, match="flipped"):
        memorisation(
            torch.randn(4, 2), torch.tensor([0, 0, 1, 1]), torch.zeros(4, dtype=torch.bool)
        )


@pytest.mark.parametrize("geometry", [Euclidean(), InnerGap()], ids=["euclidean", "asymmetric"])
def test_prototype_accuracy_matches_a_loop_with_the_mean_second(geometry, monkeypatch):
    monkeypatch.setattr(collapse_module, "_ROWS_PER_BLOCK", 7)
    query, q_labels = blobs(40, classes=4, d=3, seed=10, spread=3.0)
    ref, r_labels = blobs(60, classes=4, d=3, seed=10, spread=3.0)
    means = {c: ref[r_labels == c].mean(dim=0) for c in range(4)}
    correct = 0
    for x, label in zip(query, q_labels.tolist(), strict=True):
        predicted = min(range(4), key=lambda c: (distance(geometry, x, means[c]), c))
        correct += predicted == label
    # the same seed: most query rows equal a ref row, counted here as the other samples they are
    got = prototype_accuracy(query, q_labels, ref, r_labels, geometry, query_in_ref=False)
    assert got == pytest.approx(correct / 40)


def test_prototype_accuracy_direction_on_a_known_example():
    # D(a || b) = a^2 - a b.  Point 1 with means 2 (class 0) and 3 (class 1):
    # D(1 || 2) = -1, D(1 || 3) = -2 -> class 1.
    # The other way round, D(2 || 1) = 2 < D(3 || 1) = 6 -> class 0.
    ref, r_labels = torch.tensor([[2.0], [3.0]]), torch.tensor([0, 1])
    point, label = torch.tensor([[1.0]]), torch.tensor([1])
    assert prototype_accuracy(point, label, ref, r_labels, InnerGap()) == 1.0
    assert prototype_accuracy(point, label, ref, r_labels, InnerGap().reversed()) == 0.0


def test_prototype_accuracy_rejects_classes_without_a_mean():
    with pytest.raises(ValueError, match="no items in ref"):
        prototype_accuracy(
            torch.zeros(2, 1), torch.tensor([0, 5]), torch.zeros(2, 1), torch.tensor([0, 1])
        )


def test_asymmetry_matches_the_formula_and_is_zero_when_symmetric():
    x = torch.randn(30, 3, generator=torch.Generator().manual_seed(11))
    d = InnerGap().pairwise(x, x).double()
    expected = float((d - d.T).abs().sum() / (d + d.T).sum())
    assert asymmetry(x, InnerGap()) == pytest.approx(expected)
    assert asymmetry(x, Euclidean()) == 0.0
    assert (
        asymmetry(torch.randn(7, 33), Euclidean()) == 0.0
    )  # a shape whose GEMM rounds asymmetrically


def test_asymmetry_subsamples_rows():
    x = torch.randn(50, 2, generator=torch.Generator().manual_seed(12))
    pick = torch.randperm(50, generator=torch.Generator().manual_seed(3))[:10]
    assert asymmetry(x, InnerGap(), max_samples=10, seed=3) == pytest.approx(
        asymmetry(x[pick], InnerGap())
    )


NAN_X = torch.tensor([[0.0], [float("nan")], [1.0], [2.0]])
NAN_Y = torch.tensor([0, 0, 1, 1])


@pytest.mark.parametrize(
    "call",
    [
        lambda: intra_inter_ratio(NAN_X, NAN_Y),
        lambda: memorisation(NAN_X, NAN_Y, torch.tensor([True, False, False, False])),
        lambda: subcluster_ari(NAN_X, NAN_Y, NAN_Y),
        lambda: spectral_decay(NAN_X),
        lambda: prototype_accuracy(NAN_X, NAN_Y),
        lambda: asymmetry(NAN_X, Euclidean()),
        lambda: nmi(NAN_X, NAN_Y),
    ],
    ids=[
        "intra_inter",
        "memorisation",
        "subcluster_ari",
        "spectral",
        "prototype",
        "asymmetry",
        "nmi",
    ],
)
def test_nan_embeddings_raise(call):
    with pytest.raises(ValueError, match="NaN"):
        call()
