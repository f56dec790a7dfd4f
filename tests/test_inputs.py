"""What users hand the lab, as fault kinds (issue 15): label spaces (case 7), array types at the
boundary (case 8) and names or objects for geometries and datasets (case 11)."""

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import dmllab as dl
from dmllab.arrays import as_class_ids, as_floats, encode_labels
from dmllab.config import Config
from dmllab.data import Dataset, noise, split, superclass, validation_split
from dmllab.geometry import Cosine, Euclidean, SquaredEuclidean, build, resolve
from dmllab.geometry.bregman import Bregman
from dmllab.geometry.readouts import level_set_grid, relative_asymmetry
from dmllab.losses import MarginLoss, TripletLoss
from dmllab.metrics import asymmetry, intra_inter_ratio, knn, prototype_accuracy, retrieval

TINY = dict(
    epochs=1,
    batches_per_epoch=2,
    classes_per_batch=3,
    samples_per_class=4,
    embedding_dim=4,
    split="stratified",
    test_fraction=0.3,
    seed=0,
)


def _blobs(classes=6, per_class=12, d=5, seed=0):
    """Float64 numpy points, one blob per class."""
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.normal(3.0 * c, 0.3, size=(per_class, d)) for c in range(classes)])


# ------------------------------------------------------------------ case 7: label spaces
@pytest.mark.parametrize(
    "names",
    [list(range(1, 7)), [3, 17, 1000, 5, 8, 9], list("abcdef")],
    ids=["1..6", "sparse ints", "strings"],
)
def test_margin_loss_with_per_class_beta_trains_on_any_label_space(names):
    """The issue's instance: labels 1..6 failed in the first batch asking for num_classes."""
    data = Dataset(x=_blobs(), y=np.repeat(names, 12))
    run = dl.fit(
        Config(loss="margin", loss_options={"per_class_beta": True}, **TINY), data, progress=False
    )
    assert run.loss_fn.beta.shape == (6,) and torch.isfinite(run.loss_fn.beta).all()
    assert dl.evaluate(run)["recall@1"] > 0.5
    expected = None if isinstance(names[0], int) else tuple(names)
    assert data.class_names == expected and data.label_names()[::12] == names


def test_per_class_beta_is_indexed_by_position_among_the_training_classes():
    loss = MarginLoss(Euclidean(), per_class_beta=True, classes=torch.tensor([1000, 3, 17]))
    z = torch.randn(6, 3, generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([3, 3, 17, 17, 1000, 1000])
    torch.testing.assert_close(loss._beta(labels), loss.beta[torch.tensor([0, 0, 1, 1, 2, 2])])
    loss(z, labels).backward()
    assert (loss.beta.grad != 0).sum() >= 2
    with pytest.raises(ValueError, match=r"built for 3 classes \[3, 17, 1000\].*label\(s\) \[4\]"):
        loss(z, torch.tensor([3, 3, 4, 4, 17, 17]))
    built = dl.build.build_loss(
        Config(loss="margin", loss_options={"per_class_beta": True}),
        "euclidean",
        classes=[1, 2, 3, 4, 5, 6],
    )
    assert built.beta.shape == (6,) and built.beta_classes.tolist() == [1, 2, 3, 4, 5, 6]


def test_string_labels_keep_their_names_through_splits_noise_and_plots():
    data = Dataset(x=_blobs(classes=4), y=np.repeat(["owl", "cat", "dog", "ant"], 12))
    assert data.class_names == ("ant", "cat", "dog", "owl") and data.y.dtype == torch.long
    train, test = split(data, how="classes")
    assert train.label_names(train.classes) == ["ant", "cat"] and test.label_names(
        test.classes
    ) == ["dog", "owl"]
    noisy = noise.inject(data, rate=0.5, seed=0)
    assert noisy.class_names == data.class_names and set(noisy.label_names()) <= set(
        data.class_names
    )
    fig = dl.viz.embedding_map(data.x[:, :2], dataset=data)
    assert {trace.name for trace in fig.data} == {"ant", "cat", "dog", "owl"}


def test_superclass_maps_names_to_names():
    data = Dataset(x=_blobs(classes=4, per_class=2), y=np.repeat(["owl", "cat", "dog", "ant"], 2))
    merged = superclass(data, {"owl": "bird", "cat": "mammal", "dog": "mammal", "ant": "insect"})
    assert merged.class_names == ("bird", "insect", "mammal")
    assert merged.label_names() == [
        "bird",
        "bird",
        "mammal",
        "mammal",
        "mammal",
        "mammal",
        "insect",
        "insect",
    ]
    assert merged.meta["fine_class_names"] == data.class_names and torch.equal(merged.sub, data.y)


def test_labels_that_are_not_labels_are_refused_with_the_fix():
    x = np.zeros((3, 2))
    with pytest.raises(ValueError, match=r"integer class labels or names.*cast float ids"):
        Dataset(x=x, y=np.array([0.5, 1.0, 2.0]))
    with pytest.raises(ValueError, match=r"label nan.*missing"):
        Dataset(
            x=x,
            y=pd.Series(["a", None, "b"], dtype=object)
            .astype(object)
            .where(lambda s: s.notna(), np.nan),
        )
    with pytest.raises(ValueError, match=r"ids 0..1"):
        Dataset(x=x, y=[0, 1, 2], class_names=("a", "b"))
    with pytest.raises(
        ValueError, match=r"integer class labels; got names such as 'a'.*Dataset\(x, y=names\)"
    ):
        retrieval(torch.zeros(3, 2), ["a", "b", "a"])


@settings(max_examples=25, deadline=None)
@given(
    labels=st.one_of(
        st.lists(st.integers(0, 10**6), min_size=1, max_size=30),  # < 0: no label (issue 23)
        st.lists(st.text(max_size=4), min_size=1, max_size=30),
        st.lists(st.tuples(st.integers(0, 3), st.sampled_from("xy")), min_size=1, max_size=30),
        st.lists(st.one_of(st.integers(0, 5), st.text(max_size=2)), min_size=1, max_size=30),
    )
)
def test_property_any_hashable_labels_map_to_one_id_per_label(labels):
    data = Dataset(x=np.zeros((len(labels), 1)), y=labels)
    assert data.label_names() == labels  # the names come back
    ids = data.y.tolist()
    assert all(
        (ids[i] == ids[j]) == (labels[i] == labels[j]) for i in range(len(labels)) for j in range(i)
    )
    if data.class_names is not None:  # names -> positions 0..C-1
        assert sorted(set(ids)) == list(range(len(data.class_names)))
    kept = data.subset(torch.arange(len(labels))[::2])
    assert kept.label_names() == labels[::2]


# ------------------------------------------------------------------ case 8: array types
ARRAYS = {
    "numpy float64": lambda x: x,
    "numpy float16": lambda x: x.astype(np.float16),
    "numpy int": lambda x: np.round(x * 10).astype(np.int64),
    "list": lambda x: x.tolist(),
    "pandas": lambda x: pd.DataFrame(x),
    "torch float16": lambda x: torch.from_numpy(x).half(),
}


@pytest.mark.parametrize("kind", list(ARRAYS))
def test_fit_and_evaluate_on_any_array_type(kind):
    """The issue's instance: a Dataset from numpy float64 trained into a dtype mismatch in
    nn.Linear. Any array type now trains and measures exactly like the float32 tensor of its
    values."""
    x = ARRAYS[kind](_blobs())
    labels = np.repeat(np.arange(6), 12)
    data = Dataset(x=x, y=pd.Series(labels))
    assert data.x.dtype == (
        torch.float64 if kind in ("numpy float64", "list", "pandas") else torch.float32
    )
    same = Dataset(x=data.x.float(), y=torch.from_numpy(labels))
    metrics = dl.evaluate(dl.fit(Config(**TINY), data, progress=False), data)
    assert metrics == dl.evaluate(dl.fit(Config(**TINY), same, progress=False), same)


def test_retrieval_of_float64_embeddings_under_a_learned_bregman_geometry():
    """The issue's instance: the generator's float32 weights met float64 embeddings."""
    torch.manual_seed(0)
    geometry = Bregman(5)
    x, y = _blobs(), np.repeat(np.arange(6), 12)
    as_double = retrieval(x, y, geometry=geometry, ks=(1, 4))
    assert as_double == retrieval(
        torch.from_numpy(x).float(), torch.from_numpy(y), geometry=geometry, ks=(1, 4)
    )
    for direction in (geometry.reversed(), geometry.symmetrised()):
        assert retrieval(x, y, geometry=direction, ks=(1,))["recall@1"] > 0.9
    assert prototype_accuracy(x, y, geometry=geometry) > 0.9 and 0 < asymmetry(x, geometry) < 1


def test_non_numeric_inputs_are_refused_with_the_fix():
    with pytest.raises(ValueError, match=r"must hold real numbers.*np.asarray"):
        Dataset(x=[["a", "b"]], y=[0])
    with pytest.raises(ValueError, match="real numbers"):
        retrieval(pd.DataFrame({"name": ["a", "b"], "v": [1.0, 2.0]}), [0, 0])
    with pytest.raises(ValueError, match=r"\.real or \.abs"):
        as_floats(torch.zeros(2, 2, dtype=torch.complex64), "x")


@settings(max_examples=20, deadline=None)
@given(
    kind=st.sampled_from(list(ARRAYS)),
    seed=st.integers(0, 2**16),
    n=st.integers(4, 20),
    d=st.integers(1, 5),
)
def test_property_every_entry_point_reads_every_array_type_like_its_tensor(kind, seed, n, d):
    rng = np.random.default_rng(seed)
    raw = rng.normal(size=(n, d)) * 3
    labels = np.arange(n) % 2
    given_ = ARRAYS[kind](raw)
    tensor = as_floats(given_, "x")
    assert tensor.dtype in (torch.float32, torch.float64) and tuple(tensor.shape) == (n, d)
    assert torch.equal(Dataset(x=given_, y=labels).x, tensor)
    assert retrieval(given_, labels.tolist(), ks=(1,)) == retrieval(
        tensor, torch.from_numpy(labels), ks=(1,)
    )
    assert torch.equal(knn(given_, k=1)[0], knn(tensor, k=1)[0])
    assert torch.equal(Euclidean().pairwise(given_, given_), Euclidean().pairwise(tensor, tensor))
    from dmllab.viz._inputs import as_points

    np.testing.assert_array_equal(as_points(given_, "map"), tensor.double().numpy())


def test_label_containers_give_the_same_ids():
    ids = [3, 17, 1000, 3]
    for container in (ids, np.array(ids), pd.Series(ids), torch.tensor(ids), tuple(ids)):
        assert as_class_ids(container, "y").tolist() == ids
        assert encode_labels(container)[0][0].tolist() == ids


# ------------------------------------------------------------------ case 11: names or objects
def test_retrieval_takes_a_geometry_name():
    """The issue's instance: "'str' object has no attribute 'ranking_vectors'"."""
    x, y = torch.from_numpy(_blobs()).float(), torch.from_numpy(np.repeat(np.arange(6), 12))
    assert dl.metrics.retrieval(x, y, geometry="euclidean") == dl.metrics.retrieval(
        x, y, geometry=Euclidean()
    )


@pytest.mark.parametrize(
    "name, cls", [("euclidean", Euclidean), ("sqeuclidean", SquaredEuclidean), ("cosine", Cosine)]
)
def test_every_function_taking_a_geometry_takes_its_name(name, cls):
    x = torch.from_numpy(_blobs(classes=3, per_class=4, d=2)).float()
    y = torch.arange(3).repeat_interleave(4)
    obj = cls()
    assert knn(x, k=2, geometry=name)[0].tolist() == knn(x, k=2, geometry=obj)[0].tolist()
    assert intra_inter_ratio(x, y, name) == intra_inter_ratio(x, y, obj)
    assert prototype_accuracy(x, y, geometry=name) == prototype_accuracy(x, y, geometry=obj)
    assert asymmetry(x, name) == 0.0 and relative_asymmetry(name, x) == 0.0
    np.testing.assert_array_equal(
        level_set_grid(name, (0.5, 0.5), resolution=4)[2],
        level_set_grid(obj, (0.5, 0.5), resolution=4)[2],
    )
    assert isinstance(TripletLoss(name).geometry, cls)
    assert isinstance(dl.build.build_loss(Config(loss="contrastive"), name).geometry, cls)
    assert isinstance(dl.viz.level_sets(name, (0.5, 0.5), resolution=8), object)


@pytest.mark.parametrize("bad", [3, None.__class__, ["euclidean"]], ids=["int", "type", "list"])
def test_anything_else_gets_a_message_listing_names_and_objects(bad):
    x = torch.zeros(4, 2)
    for call in (
        lambda: retrieval(x, [0, 0, 1, 1], geometry=bad),
        lambda: TripletLoss(bad),
        lambda: relative_asymmetry(bad, x),
        lambda: dl.viz.level_sets(bad, (0.5, 0.5)),
    ):
        with pytest.raises(
            TypeError, match=r"registered name .*cosine, euclidean, sqeuclidean.*Geometry object"
        ):
            call()
    with pytest.raises(ValueError, match="unknown geometry 'manhattan'; choose one of"):
        resolve("manhattan")
    with pytest.raises(
        TypeError, match=r"is learned.*run.geometry.*by name: cosine, euclidean, sqeuclidean"
    ):
        retrieval(x, [0, 0, 1, 1], geometry="bregman")
    with pytest.raises(TypeError, match=r"registered name .*digits.*mixture.*dmllab.data.Dataset"):
        split(42)


def test_every_function_taking_a_dataset_takes_its_name():
    by_name = split("loggrid", how="stratified", seed=1)
    by_object = split(dl.data.load("loggrid", seed=1), how="stratified", seed=1)
    assert all(torch.equal(a.x, b.x) for a, b in zip(by_name, by_object, strict=True))
    assert torch.equal(
        validation_split("loggrid", 0.3, seed=1)[1].y,
        validation_split(dl.data.load("loggrid", seed=1), 0.3, seed=1)[1].y,
    )
    noisy = noise.inject(dl.data.load("loggrid", seed=1), 0.2, seed=1)
    assert torch.equal(noise.inject("loggrid", 0.2, seed=1).y, noisy.y)
    assert superclass("digits", lambda c: c % 2).num_classes == 2
    config = Config(
        dataset="mixture", model="identity", geometry="euclidean", **{**TINY, "embedding_dim": 2}
    )
    run = dl.fit(config, "loggrid", progress=False)
    assert run.data.train.name == "loggrid"
    assert dl.evaluate(run, "loggrid") == dl.evaluate(run, dl.data.load("loggrid", seed=0))
    assert resolve(build("cosine", 2)).name == "cosine"


@settings(max_examples=25, deadline=None)
@given(
    value=st.one_of(
        st.integers(),
        st.floats(allow_nan=True),
        st.binary(max_size=4),
        st.booleans(),
        st.lists(st.text(max_size=3), max_size=2),
        st.dictionaries(st.text(max_size=2), st.integers(), max_size=1),
    )
)
def test_property_anything_but_a_name_or_an_object_is_refused_listing_both(value):
    with pytest.raises(
        TypeError,
        match=r"registered name \(bregman, bregman-maxaffine, cosine, euclidean, "
        r"sqeuclidean\) or a dmllab Geometry object",
    ):
        resolve(value)
    with pytest.raises(TypeError, match=r"registered name \(.*digits.*\) or a dmllab.data.Dataset"):
        dl.data.resolve(value)
