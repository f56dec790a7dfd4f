"""Retrieval metrics: a loop reference (ties included), pytorch-metric-learning, degenerate
inputs."""

import importlib.util
import math

import pytest
import torch

from dmllab.geometry.base import Geometry
from dmllab.geometry.euclidean import Euclidean
from dmllab.metrics.retrieval import retrieval

HAS_FAISS = importlib.util.find_spec("faiss") is not None
BACKENDS = ["torch", "faiss"] if HAS_FAISS else ["torch"]  # faiss: the `fast` extra


class InnerGap(Geometry):
    """D(a || b) = ||a||^2 - a.b (asymmetric)."""

    name = "inner-gap"
    symmetric = False

    def _pairwise(self, a, b):
        return (a * a).sum(dim=1, keepdim=True) - a @ b.T


def loop_metrics(query, q_labels, ref, r_labels, geometry, ks, exclude_self):
    """Every metric for one query at a time from a full sort by (D, index); skips R = 0 queries."""
    per_query = []
    for i in range(len(query)):
        d = geometry.pairwise(query[i : i + 1], ref)[0].tolist()
        order = sorted((v, j) for j, v in enumerate(d) if not (exclude_self and j == i))
        rel = [int(r_labels[j] == q_labels[i]) for _, j in order]
        r = sum(rel)
        if r == 0:
            continue
        m = {}
        for k in ks:
            m[f"recall@{k}"] = float(any(rel[:k]))
            m[f"precision@{k}"] = sum(rel[:k]) / min(k, len(rel))
        m["r_precision"] = sum(rel[:r]) / r
        hits, ap = 0, 0.0
        for rank, is_rel in enumerate(rel[:r], start=1):
            hits += is_rel
            ap += is_rel * hits / rank
        m["map@r"] = ap / r
        depth = min(max(max(ks), max_relevant(q_labels, r_labels, exclude_self)), len(rel))
        first = next((rank for rank, is_rel in enumerate(rel[:depth], start=1) if is_rel), None)
        m["mrr"] = 0.0 if first is None else 1.0 / first
        m["label"] = int(q_labels[i])
        per_query.append(m)
    return per_query


def max_relevant(q_labels, r_labels, exclude_self):
    return max(int((r_labels == c).sum()) - exclude_self for c in q_labels.tolist())


def mean_of(rows, key):
    return sum(r[key] for r in rows) / len(rows)


def class_mean_of(rows, key):
    labels = sorted({r["label"] for r in rows})
    return sum(mean_of([r for r in rows if r["label"] == c], key) for c in labels) / len(labels)


def tied_data(n=60, classes=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 4, (n, 2), generator=g).float(), torch.randint(
        0, classes, (n,), generator=g
    )


def clustered_data(n=300, classes=6, d=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, classes, (n,), generator=g)
    centres = 3.0 * torch.randn(classes, d, generator=g)
    return centres[labels] + torch.randn(n, d, generator=g), labels


KEYS = ["recall@1", "recall@3", "precision@1", "precision@3", "map@r", "r_precision", "mrr"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_self_retrieval_matches_loop_reference_with_ties(backend):
    x, y = tied_data()
    got = retrieval(x, y, ks=(1, 3), backend=backend, chunk_size=7, class_averaged=True)
    rows = loop_metrics(x, y, x, y, Euclidean(), (1, 3), exclude_self=True)
    for key in KEYS:
        assert got[key] == pytest.approx(mean_of(rows, key), abs=1e-12), key
        assert got[f"class_averaged_{key}"] == pytest.approx(class_mean_of(rows, key), abs=1e-12), (
            key
        )
    assert got["excluded_queries"] == 0.0


@pytest.mark.parametrize("backend", BACKENDS)
def test_gallery_retrieval_matches_loop_reference_with_ties(backend):
    q, qy = tied_data(30, classes=5, seed=1)
    g, gy = tied_data(50, classes=4, seed=2)  # label 4 never appears in the gallery
    # small integer points: a gallery row may equal a query, and counts as the other sample it is
    got = retrieval(q, qy, g, gy, ks=(1, 3), backend=backend, query_in_ref=False)
    rows = loop_metrics(q, qy, g, gy, Euclidean(), (1, 3), exclude_self=False)
    for key in KEYS:
        assert got[key] == pytest.approx(mean_of(rows, key), abs=1e-12), key
    assert got["excluded_queries"] == float((qy == 4).sum()) > 0


@pytest.mark.parametrize("direction", ["query_first", "gallery_first"])
def test_asymmetric_geometry_ranks_in_the_given_direction(direction):
    x, y = tied_data(40, seed=3)
    geometry = InnerGap() if direction == "query_first" else InnerGap().reversed()
    got = retrieval(x - 1.5, y, geometry=geometry, ks=(1, 3))
    rows = loop_metrics(x - 1.5, y, x - 1.5, y, geometry, (1, 3), exclude_self=True)
    for key in KEYS:
        assert got[key] == pytest.approx(mean_of(rows, key), abs=1e-12), key


def test_directions_differ_on_a_known_example():
    # D(a || b) = a^2 - a b.  From 1 the nearest is 3 (query first) but 2 (gallery first).
    x, y = torch.tensor([[1.0], [2.0], [3.0], [2.1]]), torch.tensor([0, 1, 0, 1])
    assert retrieval(x[:1], y[:1], x[1:3], y[1:3], geometry=InnerGap(), ks=(1,))["recall@1"] == 1.0
    assert (
        retrieval(x[:1], y[:1], x[1:3], y[1:3], geometry=InnerGap().reversed(), ks=(1,))["recall@1"]
        == 0.0
    )


def torch_knn():
    """PML's exact torch kNN on plain Euclidean distances (its default needs faiss)."""
    from pml_compat import CustomKNN, distances  # the cross-checks skip without PML

    return CustomKNN(distances.LpDistance(normalize_embeddings=False))


def pml(query, q_labels, ref=None, r_labels=None):
    from pml_compat import AccuracyCalculator

    calculator = AccuracyCalculator(
        include=(
            "precision_at_1",
            "r_precision",
            "mean_average_precision_at_r",
            "mean_reciprocal_rank",
        ),
        k="max_bin_count",
        knn_func=torch_knn(),
    )
    return calculator.get_accuracy(query, q_labels, ref, r_labels, ref_includes_query=False)


@pytest.mark.parametrize(
    "make",
    [clustered_data, lambda seed: (torch.randn(250, 16), torch.randint(0, 10, (250,)))],
    ids=["clustered", "random"],
)
@pytest.mark.parametrize("seed", [0, 1])
def test_self_retrieval_matches_pytorch_metric_learning(make, seed):
    torch.manual_seed(seed)
    x, y = make(seed=seed)
    ours = retrieval(x, y, ks=(1,))
    theirs = pml(x, y)
    assert ours["recall@1"] == pytest.approx(theirs["precision_at_1"], abs=1e-6)
    assert ours["precision@1"] == pytest.approx(theirs["precision_at_1"], abs=1e-6)
    assert ours["r_precision"] == pytest.approx(theirs["r_precision"], abs=1e-6)
    assert ours["map@r"] == pytest.approx(theirs["mean_average_precision_at_r"], abs=1e-6)
    assert ours["mrr"] == pytest.approx(theirs["mean_reciprocal_rank"], abs=1e-6)


def test_gallery_retrieval_with_lone_labels_matches_pytorch_metric_learning():
    x, y = clustered_data(320, classes=8, seed=3)
    query, q_labels, ref, r_labels = x[:80], y[:80], x[80:], y[80:]
    keep = r_labels != 7  # class 7 queries become lone: PML excludes them too
    ours = retrieval(query, q_labels, ref[keep], r_labels[keep], ks=(1,))
    theirs = pml(query, q_labels, ref[keep], r_labels[keep])
    assert ours["excluded_queries"] == float((q_labels == 7).sum()) > 0
    assert ours["precision@1"] == pytest.approx(theirs["precision_at_1"], abs=1e-6)
    assert ours["r_precision"] == pytest.approx(theirs["r_precision"], abs=1e-6)
    assert ours["map@r"] == pytest.approx(theirs["mean_average_precision_at_r"], abs=1e-6)


def test_class_averaged_matches_pytorch_metric_learning_avg_of_avgs():
    x, y = clustered_data(200, classes=5, seed=4)
    from pml_compat import AccuracyCalculator

    ours = retrieval(x, y, ks=(1,), class_averaged=True)
    calculator = AccuracyCalculator(
        include=("precision_at_1", "mean_average_precision_at_r"),
        k="max_bin_count",
        avg_of_avgs=True,
        knn_func=torch_knn(),
    )
    theirs = calculator.get_accuracy(x, y)
    assert ours["class_averaged_precision@1"] == pytest.approx(theirs["precision_at_1"], abs=1e-6)
    assert ours["class_averaged_map@r"] == pytest.approx(
        theirs["mean_average_precision_at_r"], abs=1e-6
    )


def test_singleton_classes_are_excluded_and_counted():
    x = torch.tensor([[0.0], [1.0], [5.0], [9.0]])
    y = torch.tensor([0, 0, 1, 2])
    got = retrieval(x, y, ks=(1,))
    assert got["excluded_queries"] == 2.0
    assert got["recall@1"] == 1.0 and got["map@r"] == 1.0


def test_per_class_frame():
    x, y = tied_data(50, classes=3, seed=5)
    frame = retrieval(x, y, ks=(1, 3), per_class=True)
    rows = loop_metrics(x, y, x, y, Euclidean(), (1, 3), exclude_self=True)
    assert sorted(frame.index.tolist()) == [0, 1, 2]
    for label in frame.index:
        mine = [r for r in rows if r["label"] == label]
        assert frame.loc[label, "queries"] == len(mine)
        assert frame.loc[label, "map@r"] == pytest.approx(mean_of(mine, "map@r"), abs=1e-12)


def test_ks_beyond_the_reference_use_every_candidate():
    x, y = torch.tensor([[0.0], [1.0], [2.0]]), torch.tensor([0, 0, 1])
    got = retrieval(x, y, ks=(1, 8))
    assert got["recall@8"] == 1.0
    assert got["precision@8"] == pytest.approx(0.5)  # one relevant among the 2 candidates


def test_duplicates_are_neighbours_not_selves():
    x, y = torch.zeros(4, 2), torch.tensor([0, 0, 1, 1])
    got = retrieval(x, y, ks=(1,))  # all distances tie: lower index first
    assert got["recall@1"] == pytest.approx(0.5)  # 0 -> 1 (hit), 1 -> 0 (hit), 2 -> 0, 3 -> 0
    assert not math.isnan(got["map@r"])


@pytest.mark.parametrize(
    "args, message",
    [
        (dict(query=torch.tensor([[0.0], [float("nan")]]), q_labels=torch.tensor([0, 0])), "NaN"),
        (dict(query=torch.zeros(1, 2), q_labels=torch.tensor([0])), "at least 2"),
        (dict(query=torch.zeros(3, 2), q_labels=torch.tensor([0, 1, 2])), "no query"),
        (dict(query=torch.zeros(3, 2), q_labels=torch.tensor([0, 1])), "one label per embedding"),
        (dict(query=torch.zeros(3, 2), q_labels=torch.tensor([0.0, 1.0, 1.0])), "integer"),
        (
            dict(query=torch.zeros(3, 2), q_labels=torch.tensor([0, 1, 1]), ref=torch.zeros(2, 2)),
            "together",
        ),
        (dict(query=torch.zeros(3, 2), q_labels=torch.tensor([0, 1, 1]), ks=(0,)), "ks"),
    ],
)
def test_degenerate_inputs_raise_value_error(args, message):
    with pytest.raises(ValueError, match=message):
        retrieval(**args)
