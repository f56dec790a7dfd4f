"""What users hand the lab, as fault kinds (issue 15): label spaces (case 7), array types at the
boundary (case 8) and names or objects for geometries and datasets (case 11)."""

import re

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


# ------------------------------------------------------------------ issue 23, case 2: no label
NO_LABEL = r"has the label .* at \d+ row\(s\) \[.*; .*drop those rows"


def test_rows_marked_unlabelled_are_refused_wherever_labels_enter():
    """The issue's instance: rows labelled -1 (scikit-learn's unlabelled) trained as one class."""
    x = _blobs(classes=3, per_class=8)
    y = np.repeat([0, 1, 2], 8)
    y[[3, 10, 11]] = -1
    message = r"has the label -1 \(no label\) at 3 row\(s\) \[3, 10, 11\].*keep = y >= 0"
    with pytest.raises(ValueError, match="Dataset 'dataset': y " + message):
        Dataset(x=x, y=y)
    with pytest.raises(ValueError, match="Dataset 'dataset': y " + message):
        dl.fit(Config(**TINY), Dataset(x=x, y=y), progress=False)
    with pytest.raises(ValueError, match="q_labels " + message):
        retrieval(x, y)
    with pytest.raises(ValueError, match="labels " + message):
        intra_inter_ratio(x, y)
    with pytest.raises(ValueError, match="r_labels " + message):
        prototype_accuracy(x[:2], [0, 1], x, y, query_in_ref=False)
    with pytest.raises(ValueError, match="labels " + message):
        dl.data.ClassBalancedSampler(torch.from_numpy(y), 2, 2)
    with pytest.raises(ValueError, match=r"TripletLoss: labels must be class ids >= 0; got -1"):
        TripletLoss("euclidean")(torch.randn(4, 2), torch.tensor([0, 0, 1, -1]))
    with pytest.raises(ValueError, match="embedding_map: labels " + message):
        dl.viz.embedding_map(x[:, :2], labels=y)
    with pytest.raises(ValueError, match="sub " + message):
        Dataset(x=x, y=np.repeat([0, 1, 2], 8), sub=y)
    data = Dataset(x=x, y=np.repeat([0, 1, 2], 8))
    with pytest.raises(ValueError, match="labels " + message):
        data.label_names(y)
    # names are never "no label": the string "-1" is a class like any other
    assert Dataset(x=x, y=np.where(y < 0, "-1", "cat")).class_names == ("-1", "cat")


MISSING = {
    "-1": -1,
    "-7": -7,
    "NaN": float("nan"),
    "None": None,
    "pd.NA": pd.NA,
    "NaT": np.datetime64("NaT", "D"),  # with a unit, as a datetime64[D] array holds it
}


def _day(i):
    return np.datetime64("2020-01-01") + np.timedelta64(i, "D")


def _containers(labels, missing):
    """`labels` with some entries replaced by `missing`, in every container that can hold it."""
    out = {"list": list(labels), "tuple": tuple(labels)}
    if isinstance(missing, np.datetime64):
        days = np.asarray([v if isinstance(v, np.datetime64) else _day(v) for v in labels])
        out = {
            "list": list(days),
            "numpy datetime64[D]": days.astype("datetime64[D]"),
            "numpy datetime64[ns]": days.astype("datetime64[ns]"),
            "series datetime": pd.Series(days.astype("datetime64[ns]")),
            "series datetime tz": pd.Series(days.astype("datetime64[ns]")).dt.tz_localize("UTC"),
            "series object": pd.Series(days, dtype=object),
            "list of 0-d arrays": [np.array(v) for v in days],
            "timedelta": days - days[0] if not np.isnat(days[0]) else days - _day(0),
        }
    elif isinstance(missing, int):
        array = np.asarray(labels, dtype=np.int64)
        out |= {
            "list of 0-d tensors": [torch.tensor(v) for v in labels],
            "list of 0-d arrays": [np.array(v) for v in labels],
            "list of numpy scalars": [np.int64(v) for v in labels],
            "tensor": torch.from_numpy(array),
            "tensor int8": torch.from_numpy(array).to(torch.int8),
            "numpy int32": array.astype(np.int32),
            "series": pd.Series(array),
            "index": pd.Index(array),
        }
    elif missing is pd.NA:
        out |= {
            "series Int64": pd.Series(labels, dtype="Int64"),
            "series string": pd.Series(
                [None if v is pd.NA else f"c{v}" for v in labels], dtype="string"
            ),
            "numpy object": np.asarray(labels, dtype=object),
        }
    else:
        floats = [np.nan if v is None or v != v else v for v in labels]
        out |= {
            "list of 0-d tensors": [torch.tensor(v, dtype=torch.float64) for v in floats],
            "list of 0-d arrays": [np.array(v) for v in floats],
            "tensor float": torch.tensor(floats),
            "numpy float": np.asarray(floats),
            "series float": pd.Series(floats),
            "index float": pd.Index(floats),
            "series object": pd.Series(labels, dtype=object),
            "categorical": pd.Series(
                pd.Categorical(["missing" if v is None or v != v else f"c{v}" for v in labels])
            ).where(lambda s: s != "missing"),
        }
    return out


@settings(max_examples=30, deadline=None)
@given(
    n=st.integers(2, 30),
    marked=st.lists(st.integers(0, 29), min_size=1, max_size=8),
    missing=st.sampled_from(list(MISSING)),
)
def test_property_no_label_in_any_container_is_refused_naming_its_rows(n, marked, missing):
    value = MISSING[missing]
    rows = sorted({i % n for i in marked})
    labels = [value if i in rows else i % 3 for i in range(n)]  # NaT: days (_containers)
    expected_rows = rf"at {len(rows)} row\(s\) \[{', '.join(map(str, rows[:5]))}"
    for kind, given_ in _containers(labels, value).items():
        for call in (
            lambda g=given_: Dataset(x=np.zeros((n, 2)), y=g),
            lambda g=given_: as_class_ids(g, "y"),
            lambda g=given_: encode_labels(g),
            lambda g=given_: retrieval(np.arange(2 * n).reshape(n, 2), g),
        ):
            with pytest.raises(ValueError, match=NO_LABEL) as error:
                call()
            assert re.search(expected_rows, str(error.value)), (kind, str(error.value))


def test_labels_given_as_0d_tensors_or_arrays_read_as_their_values():
    """The acceptance instance (issue 23): a list of 0-d tensors made every row its own class
    (tensors hash by identity) and let -1 through; 0-d numpy arrays were unhashable."""
    x = torch.randn(60, 4)
    y = torch.arange(60) % 3
    for wrap in (torch.tensor, np.array):
        data = Dataset(x=x, y=[wrap(v) for v in y.tolist()])
        assert torch.equal(data.y, y) and data.class_names is None
        with pytest.raises(ValueError, match=r"label -1 \(no label\) at 20 row\(s\) \[0, 3, 6"):
            Dataset(x=x, y=[wrap(-1 if v == 0 else v) for v in y.tolist()])
        assert retrieval(x, [wrap(v) for v in y.tolist()]) == retrieval(x, y)
        sampler = dl.data.ClassBalancedSampler([wrap(v) for v in y.tolist()], 3, 2)
        assert [b.tolist() for b in sampler] == [
            b.tolist() for b in dl.data.ClassBalancedSampler(y, 3, 2)
        ]
        with pytest.raises(ValueError, match=r"labels has the label -1 \(no label\)"):
            dl.data.ClassBalancedSampler([wrap(-1 if v == 0 else v) for v in y.tolist()], 3, 2)
    assert Dataset(x=x[:3], y=[np.array("b"), np.array("a"), np.array("b")]).class_names == (
        "a",
        "b",
    )


def test_nat_labels_are_missing_values_not_a_class():
    """The acceptance instance (issue 23): NaT became one more class ([0, 1, 2, 0])."""
    x = np.zeros((4, 2))
    days = np.array(["2020-01-01", "NaT", "2020-01-02", "2020-01-01"], dtype="datetime64[D]")
    message = r"y has the label NaT \(a missing value\) at 1 row\(s\) \[1\]; every row needs"
    for given_ in (days, pd.Series(pd.to_datetime(days)), list(days)):
        with pytest.raises(ValueError, match=message):
            Dataset(x=x, y=given_)
    with pytest.raises(ValueError, match=r"labels has the label NaT"):
        dl.viz.embedding_map(x, labels=days)
    assert Dataset(x=x, y=days[[0, 2, 3, 0]]).y.tolist() == [0, 1, 0, 0]


@settings(max_examples=25, deadline=None)
@given(
    labels=st.one_of(
        st.lists(st.integers(-3, 10**6), min_size=1, max_size=20),
        st.lists(st.text(max_size=3), min_size=1, max_size=20),
    ),
    wrap=st.sampled_from(["tensor", "array", "numpy scalar"]),
)
def test_property_a_label_wrapped_0d_reads_as_its_value(labels, wrap):
    """Any label as a 0-d tensor, 0-d array or numpy scalar gives the ids, names and refusals of
    the plain label, wherever labels enter."""
    if wrap == "tensor" and isinstance(labels[0], str):
        wrap = "array"  # a tensor holds no string
    wrapper = {"tensor": torch.tensor, "array": np.array, "numpy scalar": lambda v: np.array(v)[()]}
    wrapped = [wrapper[wrap](v) for v in labels]
    x = np.zeros((len(labels), 2))
    calls = [lambda y: Dataset(x=x, y=y), lambda y: encode_labels(y)]
    if not isinstance(labels[0], str):
        calls.append(lambda y: as_class_ids(y, "y"))
    for call in calls:
        outcomes = []
        for given_ in (labels, wrapped):
            try:
                outcomes.append(call(given_))
            except ValueError as error:
                outcomes.append(str(error))
        plain, read = outcomes
        if isinstance(plain, str):
            assert read == plain  # the same refusal, word for word
            continue
        if isinstance(plain, Dataset):
            assert torch.equal(read.y, plain.y) and read.class_names == plain.class_names
        elif isinstance(plain, tuple):
            assert [t.tolist() for t in read[0]] == [t.tolist() for t in plain[0]]
            assert read[1] == plain[1]
        else:
            assert torch.equal(read, plain)


# ------------------------------------------------------------------ issue 23, case 9: NaN / inf
def test_a_dataset_with_missing_cells_is_refused_when_it_is_made():
    """The issue's instance: NaN in the inputs surfaced after training as 'training diverged'
    (training rows) or 'the model diverged' (test rows)."""
    x = _blobs()
    x[[5, 40, 41], 2] = np.nan
    x[60, 0] = np.inf
    with pytest.raises(
        ValueError, match=r"Dataset 'mine': x holds NaN or inf in 4 row\(s\) \[5, 40, 41, 60\];"
    ):
        Dataset(x=pd.DataFrame(x), y=np.repeat(np.arange(6), 12), name="mine")
    images = torch.rand(7, 1, 4, 4)
    images[6, 0, 3, 3] = -torch.inf
    with pytest.raises(ValueError, match=r"in 1 row\(s\) \[6\]"):
        Dataset(x=images, y=torch.arange(7) % 2, image_shape=(1, 4, 4))


def test_the_finiteness_check_keeps_the_tensor_and_its_memory():
    x = torch.randn(2000, 64)
    data = Dataset(x=x, y=torch.arange(2000) % 10)
    assert data.x is x  # no copy: one reduction reads it (`all_finite`)


@settings(max_examples=30, deadline=None)
@given(
    shape=st.sampled_from([(12, 3), (9, 1), (6, 2, 3, 3)]),
    cells=st.lists(st.integers(0, 10**6), min_size=1, max_size=6),
    value=st.sampled_from([float("nan"), float("inf"), -float("inf")]),
    kind=st.sampled_from(["tensor float32", "tensor float16", "tensor float64", "numpy", "list"]),
)
def test_property_non_finite_inputs_are_refused_naming_rows(shape, cells, value, kind):
    x = np.random.default_rng(0).normal(size=shape)
    flat = x.reshape(-1)
    flat[[c % flat.size for c in cells]] = value
    bad = sorted({(c % flat.size) // (flat.size // shape[0]) for c in cells})
    given_ = {
        "tensor float32": lambda: torch.from_numpy(x).float(),
        "tensor float16": lambda: torch.from_numpy(x).half(),
        "tensor float64": lambda: torch.from_numpy(x),
        "numpy": lambda: x,
        "list": lambda: x.tolist(),
    }[kind]()
    with pytest.raises(
        ValueError,
        match=rf"x holds NaN or inf in {len(bad)} row\(s\) \[{', '.join(map(str, bad[:5]))}\]",
    ):
        Dataset(x=given_, y=np.arange(shape[0]) % 2)


@settings(max_examples=15, deadline=None)
@given(
    row=st.integers(0, 11),
    value=st.sampled_from([float("nan"), float("inf"), -float("inf")]),
)
def test_property_every_entry_point_of_raw_arrays_refuses_non_finite_values(row, value):
    """Metrics given embeddings, the geometry read-outs and the figures each have their rule."""
    from dmllab.geometry.readouts import hessian_eigenvalues

    x = np.random.default_rng(1).normal(size=(12, 2))
    x[row, 1] = value
    y = np.arange(12) % 3
    bregman = Bregman(2)
    calls = {
        "retrieval": lambda: retrieval(x, y),
        "retrieval ref": lambda: retrieval(x[:3], y[:3], x, y, query_in_ref=True),
        "knn": lambda: knn(x, k=1),
        "prototype_accuracy": lambda: prototype_accuracy(x, y),
        "intra_inter_ratio": lambda: intra_inter_ratio(x, y),
        "asymmetry": lambda: asymmetry(x, bregman),
        "nmi": lambda: dl.metrics.nmi(x, y),
        "spectral_decay": lambda: dl.metrics.spectral_decay(x),
        "pairwise": lambda: Euclidean().pairwise(x, x),
        "relative_asymmetry": lambda: relative_asymmetry(bregman, x),
        "hessian_eigenvalues": lambda: hessian_eigenvalues(bregman, x),
        "level_set_grid": lambda: level_set_grid("euclidean", tuple(x[row])),
        "level_set_grid box": lambda: level_set_grid("euclidean", (0, 0), box=(0, value, 0, 1)),
        "embedding_map": lambda: dl.viz.embedding_map(x, labels=y),
        "angle_histogram": lambda: dl.viz.angle_histogram(x, y),
        "project": lambda: dl.viz.project(x, method="pca"),
    }
    for name, call in calls.items():
        with pytest.raises(ValueError, match=r"NaN or inf|finite") as error:
            call()
        assert "Traceback" not in str(error.value), name


@settings(max_examples=20, deadline=None)
@given(
    labels=st.lists(st.integers(0, 5), min_size=2, max_size=12),
    wrap=st.sampled_from(["1-element tensor", "1-element array", "list"]),
    row=st.integers(0, 11),
)
def test_property_a_label_that_is_itself_a_container_is_refused_naming_its_row(labels, wrap, row):
    """The second newcomer's instance: a list of shape-[1] tensors made every row its own class
    (tensors hash by identity). One wrapped label among plain ones, anywhere, is refused with its
    row, wherever labels enter."""
    row %= len(labels)
    wrapper = {
        "1-element tensor": lambda v: torch.tensor([v]),
        "1-element array": lambda v: np.array([v]),
        "list": lambda v: [v],
    }[wrap]
    given_ = [wrapper(v) if i == row else v for i, v in enumerate(labels)]
    x = np.zeros((len(labels), 2))
    for call in (lambda y: Dataset(x=x, y=y), encode_labels, lambda y: as_class_ids(y, "y")):
        with pytest.raises(ValueError, match=f"row {row} holds"):
            call(given_)
