"""A query never scores a hit on itself (issue 23, case 1): a reference that holds the queries is
refused unless `query_in_ref` or `self_index` says which rows they are, in knn, retrieval,
prototype_accuracy and evaluate; loop references, pytorch-metric-learning, properties."""

import importlib.util

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import dmllab as dl
from dmllab.data import Dataset, Splits
from dmllab.geometry.base import Geometry
from dmllab.geometry.bregman import Bregman
from dmllab.geometry.euclidean import Euclidean
from dmllab.metrics import knn, prototype_accuracy, retrieval
from dmllab.metrics.knn import own_rows
from dmllab.runs import Run

HAS_FAISS = importlib.util.find_spec("faiss") is not None
BACKENDS = ["torch", "faiss"] if HAS_FAISS else ["torch"]  # faiss: the `fast` extra
REFUSED = r"ref holds \d+ of the \d+ queries themselves.*ref=None.*query_in_ref=True.*self_index"
KEYS = ["recall@1", "recall@3", "precision@1", "precision@3", "map@r", "r_precision", "mrr"]


class InnerGap(Geometry):
    """D(a || b) = ||a||^2 - a.b: asymmetric, and D(a || a) = 0 like a Bregman divergence."""

    name = "inner-gap"
    symmetric = False

    def _pairwise(self, a, b):
        return (a * a).sum(dim=1, keepdim=True) - a @ b.T


def random_set(n=300, d=16, classes=15, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g), torch.arange(n) % classes


def loop_own(query, q_labels, ref, r_labels):
    """Each query's own row: the lowest-index ref row with every value and the label equal."""
    own = []
    for i in range(len(query)):
        equal = [
            j
            for j in range(len(ref))
            if torch.equal(query[i].double(), ref[j].double()) and r_labels[j] == q_labels[i]
        ]
        own.append(equal[0] if equal else -1)
    return own


def loop_metrics(query, q_labels, ref, r_labels, geometry, ks, own):
    """Every metric, one query at a time, from a full sort by (D, index) without its own row;
    the MRR is truncated at the search depth max(max(ks), max R) (at most the query's
    candidates), as documented."""
    relevant = [int((r_labels == q_labels[i]).sum()) - (own[i] >= 0) for i in range(len(query))]
    rows = []
    for i in range(len(query)):
        d = geometry.pairwise(query[i : i + 1].double(), ref.double())[0].tolist()
        order = sorted((v, j) for j, v in enumerate(d) if j != own[i])
        rel = [int(r_labels[j] == q_labels[i]) for _, j in order]
        r = sum(rel)
        if r == 0:
            continue
        m = {f"recall@{k}": float(any(rel[:k])) for k in ks}
        m |= {f"precision@{k}": sum(rel[:k]) / min(k, len(rel)) for k in ks}
        m["r_precision"] = sum(rel[:r]) / r
        hits, ap = 0, 0.0
        for rank, is_rel in enumerate(rel[:r], start=1):
            hits += is_rel
            ap += is_rel * hits / rank
        m["map@r"] = ap / r
        depth = min(max(max(ks), max(relevant)), len(rel))
        first = next((rank for rank, is_rel in enumerate(rel[:depth], start=1) if is_rel), None)
        m["mrr"] = 0.0 if first is None else 1.0 / first
        rows.append(m)
    return {key: sum(row[key] for row in rows) / len(rows) for key in rows[0]}, len(rows)


# ------------------------------------------------------------------ the instance
def test_a_query_set_given_as_its_own_reference_never_scores_itself():
    """The issue's instance: retrieval(x, y, x, y) gave Recall@1 = 1.0 on random embeddings."""
    x, y = random_set()
    with pytest.raises(ValueError, match=REFUSED):
        retrieval(x, y, x, y)
    with pytest.raises(ValueError, match=REFUSED):
        retrieval(x, y, x.clone(), y.clone(), ks=(1,))  # the same rows, another tensor
    scored = retrieval(x, y, x, y, query_in_ref=True)
    assert scored == retrieval(x, y)
    assert scored["recall@1"] == pytest.approx(0.0867, abs=1e-4)  # chance is 1/15 = 0.067
    # the other reading (the rows are other samples that happen to be equal) must be asked for
    assert retrieval(x, y, x, y, query_in_ref=False, ks=(1,))["recall@1"] == 1.0


def test_knn_and_prototype_accuracy_follow_the_same_rule():
    x, y = random_set(n=200, classes=100)  # two per class: a query was half its class mean
    with pytest.raises(ValueError, match=REFUSED):
        knn(x, x, k=2)
    assert torch.equal(knn(x, x, k=2, query_in_ref=True)[0], knn(x, k=2)[0])
    with pytest.raises(ValueError, match=REFUSED):
        prototype_accuracy(x, y, x, y)
    loo = prototype_accuracy(x, y)
    assert loo == prototype_accuracy(x, y, x, y, query_in_ref=True)
    assert loo < 0.05  # chance is 0.01; with the query in its own mean it was 0.78


@pytest.mark.parametrize("direction", ["query_first", "gallery_first", "symmetrised"])
def test_asymmetric_geometries_have_the_query_at_distance_zero_too(direction):
    torch.manual_seed(0)
    bregman = Bregman(4)
    geometry = {
        "query_first": bregman,
        "gallery_first": bregman.reversed(),
        "symmetrised": bregman.symmetrised(),
    }[direction]
    x, y = random_set(n=60, d=4, classes=6, seed=1)
    with pytest.raises(ValueError, match=REFUSED):
        retrieval(x, y, x, y, geometry=geometry)
    assert retrieval(x, y, x, y, geometry=geometry, query_in_ref=True) == retrieval(
        x, y, geometry=geometry
    )
    assert torch.equal(
        knn(x[:10], x, 3, geometry, query_in_ref=True)[0],
        knn(x[:10], x, 3, geometry, self_index=torch.arange(10))[0],
    )


# ------------------------------------------------------------------ loop references
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("geometry", [Euclidean(), InnerGap()], ids=["euclidean", "asymmetric"])
def test_queries_inside_the_reference_match_a_loop_that_leaves_their_own_row_out(backend, geometry):
    g = torch.Generator().manual_seed(3)
    ref = torch.randint(0, 3, (50, 2), generator=g).float()  # ties and exact duplicates
    r_labels = torch.randint(0, 4, (50,), generator=g)
    pick = torch.tensor([7, 0, 31, 49, 12, 7])  # in any order, one row twice
    extra = torch.tensor([[9.0, 9.0], [0.5, 0.5]])  # queries that are not in ref
    query = torch.cat([ref[pick], extra])
    q_labels = torch.cat([r_labels[pick], torch.tensor([0, 1])])
    own = loop_own(query, q_labels, ref, r_labels)
    assert own_rows(query, ref, q_labels, r_labels).tolist() == own
    assert own[-2:] == [-1, -1] and all(own[i] >= 0 for i in range(len(pick)))
    got = retrieval(
        query, q_labels, ref, r_labels, geometry, ks=(1, 3), backend=backend, query_in_ref=True
    )
    expected, evaluated = loop_metrics(query, q_labels, ref, r_labels, geometry, (1, 3), own)
    for key in KEYS:
        assert got[key] == pytest.approx(expected[key], abs=1e-12), key
    assert got["excluded_queries"] == len(query) - evaluated
    explicit = retrieval(
        query, q_labels, ref, r_labels, geometry, ks=(1, 3), self_index=torch.tensor(own)
    )
    assert explicit == got
    indices, _ = knn(query, ref, 4, geometry, backend=backend, self_index=torch.tensor(own))
    for i, row in enumerate(indices.tolist()):
        d = geometry.pairwise(query[i : i + 1], ref)[0].tolist()
        assert row == [j for _, j in sorted((v, j) for j, v in enumerate(d) if j != own[i])][:4]


def test_prototype_accuracy_leaves_each_query_out_of_its_own_class_mean():
    g = torch.Generator().manual_seed(4)
    x = torch.randn(40, 3, generator=g)
    y = torch.tensor([0] * 15 + [1] * 14 + [2] * 10 + [3])  # class 3 has no other item
    correct = evaluated = 0
    for i in range(len(x)):
        others = torch.arange(len(x)) != i
        means = {
            int(c): x[others & (y == c)].mean(dim=0)
            for c in torch.unique(y)
            if bool((others & (y == c)).any())
        }
        if int(y[i]) not in means:
            continue
        predicted = min(means, key=lambda c: (float(((x[i] - means[c]) ** 2).sum().sqrt()), c))
        correct += predicted == int(y[i])
        evaluated += 1
    assert evaluated == 39
    assert prototype_accuracy(x, y) == pytest.approx(correct / evaluated)
    assert prototype_accuracy(x[:20], y[:20], x, y, query_in_ref=True) == pytest.approx(
        prototype_accuracy(x[:20], y[:20], x, y, self_index=torch.arange(20))
    )
    with pytest.raises(ValueError, match="no query's class has an item other than"):
        prototype_accuracy(x[:3], torch.tensor([0, 1, 2]))


# ------------------------------------------------------------------ pytorch-metric-learning
def test_queries_first_in_the_reference_match_pml_ref_includes_query():
    calculator_module = pytest.importorskip("pytorch_metric_learning.utils.accuracy_calculator")
    from pytorch_metric_learning.distances import LpDistance
    from pytorch_metric_learning.utils.inference import CustomKNN

    g = torch.Generator().manual_seed(5)
    labels = torch.randint(0, 6, (240,), generator=g)
    x = 3.0 * torch.randn(6, 8, generator=g)[labels] + torch.randn(240, 8, generator=g)
    calculator = calculator_module.AccuracyCalculator(
        include=("precision_at_1", "r_precision", "mean_average_precision_at_r"),
        k="max_bin_count",
        knn_func=CustomKNN(LpDistance(normalize_embeddings=False)),
    )
    theirs = calculator.get_accuracy(x[:80], labels[:80], x, labels, ref_includes_query=True)
    ours = retrieval(x[:80], labels[:80], x, labels, ks=(1,), query_in_ref=True)
    assert ours["precision@1"] == pytest.approx(theirs["precision_at_1"], abs=1e-6)
    assert ours["r_precision"] == pytest.approx(theirs["r_precision"], abs=1e-6)
    assert ours["map@r"] == pytest.approx(theirs["mean_average_precision_at_r"], abs=1e-6)


# ------------------------------------------------------------------ evaluate
def _identity_run_on_halves(seed, dtype=torch.float32):
    """60 random points in 6 classes, every class in both halves (even rows train, odd rows
    test), and a run whose model is the identity."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(60) // 2 % 6
    points = Dataset(x=torch.randn(60, 5, generator=g, dtype=dtype), y=labels, name="random")
    train, test = points.subset(torch.arange(0, 60, 2)), points.subset(torch.arange(1, 60, 2))
    run = Run(
        model=torch.nn.Identity(),
        geometry=Euclidean(),
        config=dl.Config(),
        data=Splits(train, test),
    )
    return points, train, test, run


def test_evaluate_never_counts_a_sample_in_the_training_means_it_is_measured_against():
    points, train, test, run = _identity_run_on_halves(6)
    on_train = dl.evaluate(run, split="train", ks=(1,))
    assert on_train["prototype_accuracy"] == prototype_accuracy(train.x, train.y)
    whole = dl.evaluate(run, points, ks=(1,))  # holds the training rows and the test rows
    own = torch.tensor([i // 2 if i % 2 == 0 else -1 for i in range(60)])
    assert whole["prototype_accuracy"] == prototype_accuracy(
        points.x, points.y, train.x, train.y, self_index=own
    )
    assert dl.evaluate(run, ks=(1,))["prototype_accuracy"] == prototype_accuracy(
        test.x, test.y, train.x, train.y
    )


# ------------------------------------------------------------------ properties over the kind
DTYPES = [torch.float16, torch.float32, torch.float64]


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    n_ref=st.integers(3, 30),
    shared=st.lists(st.integers(0, 29), min_size=1, max_size=8),
    q_dtype=st.sampled_from(DTYPES),
    r_dtype=st.sampled_from(DTYPES),
    extra_queries=st.integers(0, 3),
)
def test_property_a_reference_sharing_rows_with_the_queries_is_refused_or_left_out(
    seed, n_ref, shared, q_dtype, r_dtype, extra_queries
):
    """Rows shared in any order and dtype (exactly representable small halves, so every dtype
    holds the same values, with many exact duplicates that are other samples): the default
    refuses, query_in_ref=True equals the loop that leaves each query's first equal row out,
    query_in_ref=False the loop that leaves nothing out; no query ever meets itself."""
    g = torch.Generator().manual_seed(seed)
    ref = (torch.randint(0, 5, (n_ref, 2), generator=g) / 2).to(r_dtype)
    r_labels = torch.randint(0, 3, (n_ref,), generator=g)
    pick = torch.tensor([i % n_ref for i in shared])
    query = torch.cat([ref[pick].double(), 10 + torch.rand(extra_queries, 2, generator=g).double()])
    query = query.to(q_dtype)
    q_labels = torch.cat([r_labels[pick], torch.zeros(extra_queries, dtype=torch.long)])
    with pytest.raises(ValueError, match=REFUSED):
        retrieval(query, q_labels, ref, r_labels, ks=(1,))
    with pytest.raises(ValueError, match=REFUSED):
        knn(query, ref, k=1)
    own = loop_own(query, q_labels, ref, r_labels)
    assert own_rows(query, ref, q_labels, r_labels).tolist() == own
    for flag, excluded in ((True, own), (False, [-1] * len(query))):
        relevant = [
            int((r_labels == q_labels[i]).sum()) - (excluded[i] >= 0) for i in range(len(own))
        ]
        if max(relevant) == 0:  # every query's class was only the query itself
            with pytest.raises(ValueError, match="no query has a same-class item"):
                retrieval(query, q_labels, ref, r_labels, ks=(1,), query_in_ref=flag)
            continue
        got = retrieval(query, q_labels, ref, r_labels, ks=(1,), query_in_ref=flag)
        expected, _ = loop_metrics(query, q_labels, ref, r_labels, Euclidean(), (1,), excluded)
        for key in ("recall@1", "precision@1", "map@r", "r_precision", "mrr"):
            assert got[key] == pytest.approx(expected[key], abs=1e-12), (flag, key)
    neighbours = knn(query, ref, 1, query_in_ref=True)[0][:, 0].tolist()
    own_any = own_rows(query, ref).tolist()  # knn has no labels: equal rows are the queries
    assert all(j != o for j, o in zip(neighbours, own_any, strict=True) if o >= 0)


def test_distinct_samples_that_happen_to_be_equal_count_as_neighbours():
    """The stated rule: with query_in_ref=True only the first equal row with the query's label is
    the query itself; further equal rows are other samples and count, as with ref=None."""
    ref = torch.tensor([[0.0, 0.0], [0.0, 0.0], [5.0, 5.0], [5.0, 5.0]])
    r_labels = torch.tensor([0, 0, 1, 1])
    got = retrieval(ref[:1], r_labels[:1], ref, r_labels, ks=(1,), query_in_ref=True)
    assert got["recall@1"] == got["map@r"] == 1.0  # row 1, the query's duplicate, is nearest
    assert retrieval(ref, r_labels, ks=(1,))["recall@1"] == 1.0  # as with ref=None
    # an equal row with another label is another sample, never the query itself
    assert own_rows(ref[:1], ref, torch.tensor([1]), r_labels).tolist() == [-1]


def test_options_that_contradict_each_other_are_refused():
    x, y = random_set(n=20, d=3, classes=2)
    with pytest.raises(ValueError, match="query_in_ref is about a separate ref"):
        retrieval(x, y, query_in_ref=True)
    with pytest.raises(ValueError, match="self_index gives the queries' positions"):
        knn(x[:3], x, 1, self_index=torch.arange(3), query_in_ref=False)
    with pytest.raises(ValueError, match="query_in_ref must be None, True or False"):
        knn(x[:3], x, 1, query_in_ref="yes")
    with pytest.raises(ValueError, match=r"or be -1 for a query that is not in ref"):
        knn(x[:3], x, 1, self_index=torch.tensor([0, 1, -2]))


# ------------------------------------------------------------------ lower-precision copies
def test_a_lower_precision_copy_of_the_queries_is_the_queries():
    """The acceptance instance (issue 23): a float32 / float16 copy of float64 queries (and a
    bfloat16 copy of float32 ones) as the reference scored recall@1 = 1.0, since rows were
    compared as exact float64 values."""
    g = torch.Generator().manual_seed(0)
    x64, y = torch.randn(300, 16, generator=g, dtype=torch.float64), torch.arange(300) % 15
    x32 = x64.float()
    for query, copy in ((x64, x64.float()), (x64, x64.half()), (x32, x32.bfloat16())):
        with pytest.raises(ValueError, match=REFUSED):
            retrieval(query, y, copy, y)
        with pytest.raises(ValueError, match=REFUSED):
            knn(query, copy, k=1)
        with pytest.raises(ValueError, match=REFUSED):
            prototype_accuracy(query, y, copy, y)
        assert own_rows(query, copy, y, y).tolist() == list(range(300))
        assert prototype_accuracy(query, y, copy, y, query_in_ref=True) == pytest.approx(
            prototype_accuracy(query, y), abs=0.02
        )  # mixed precisions computed in the finer one
        left_out = retrieval(query, y, copy, y, query_in_ref=True)["recall@1"]
        assert left_out < 0.2  # random points in 15 classes, each query's own row left out


def test_evaluate_finds_the_training_rows_in_a_lower_precision_copy():
    """evaluate's own-row check: float64 training data evaluated as a float32 copy."""
    points, train, _, run = _identity_run_on_halves(7, torch.float64)
    copy = Dataset(x=points.x.float(), y=points.y, name="copy")
    own = torch.tensor([i // 2 if i % 2 == 0 else -1 for i in range(60)])
    assert dl.evaluate(run, copy, ks=(1,))["prototype_accuracy"] == prototype_accuracy(
        copy.x, copy.y, train.x, train.y, self_index=own
    )


PRECISIONS = [torch.float64, torch.float32, torch.float16, torch.bfloat16]


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    n=st.integers(2, 30),
    d=st.integers(4, 16),
    q_dtype=st.sampled_from(PRECISIONS),
    r_dtype=st.sampled_from(PRECISIONS),
    picked=st.lists(st.integers(0, 29), min_size=1, max_size=30, unique=True),
    extra=st.integers(0, 20),
)
def test_property_a_copy_at_any_precision_is_found_and_independent_rows_are_not(
    seed, n, d, q_dtype, r_dtype, picked, extra
):
    """Random queries in one precision; a reference holding a copy of some of them in another
    precision (any order, among other random rows): the check fires and finds each copied row;
    an independent random reference in that precision never fires. Values lie in +-[0.01, 10],
    where float16 and bfloat16 both keep a normal number's significant bits (a float16 copy of a
    bfloat16 subnormal-range value is not exact)."""
    g = torch.Generator().manual_seed(seed)

    def draw(rows):
        magnitude = 0.01 + 9.99 * torch.rand(rows, d, generator=g, dtype=torch.float64)
        return magnitude * (torch.randint(0, 2, (rows, d), generator=g) * 2 - 1)

    query = draw(n).to(q_dtype)
    labels = torch.randint(0, 3, (n,), generator=g)
    pick = torch.tensor(sorted({i % n for i in picked}))
    rows = torch.cat([query[pick].to(r_dtype), draw(extra).to(r_dtype)])
    r_labels = torch.cat([labels[pick], torch.randint(0, 3, (extra,), generator=g)])
    order = torch.randperm(len(rows), generator=g)
    ref, r_labels = rows[order], r_labels[order]
    with pytest.raises(ValueError, match=REFUSED):
        retrieval(query, labels, ref, r_labels, ks=(1,))
    with pytest.raises(ValueError, match=REFUSED):
        knn(query, ref, k=1)
    position = torch.argsort(order)  # where row i of `rows` went
    expected = [-1] * n
    for k, i in enumerate(pick.tolist()):
        expected[i] = int(position[k])
    assert own_rows(query, ref, labels, r_labels).tolist() == expected
    independent = draw(len(ref)).to(r_dtype)
    assert (own_rows(query, independent, labels, r_labels) == -1).all()
    knn(query, independent, k=1)  # accepted: no query is in it
