"""Embedding maps, comparisons, the evolution animation and the angle histogram: their content."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dmllab.viz import angle_histogram, compare_maps, embedding_map, evolution
from dmllab.viz._inputs import palette
from viz_fixtures import hand_run, image_dataset


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DMLLAB_CACHE", str(tmp_path / "cache"))


def _column(trace, fig, name):
    """The hover column `name` of a trace (customdata columns follow the hovertemplate order)."""
    names = [part.split(":")[0] for part in trace.hovertemplate.split("<extra>")[0].split("<br>")]
    return np.asarray(trace.customdata)[:, names.index(name)]


def test_class_map_has_one_trace_per_class_holding_exactly_its_points():
    data = image_dataset()
    points = np.random.default_rng(0).normal(size=(len(data), 2))
    fig = embedding_map(points, dataset=data)
    assert [t.name for t in fig.data] == ["0", "1", "2"]
    colors = palette(data.y.numpy())
    total = 0
    for trace in fig.data:
        label = int(trace.name)
        index = _column(trace, fig, "index").astype(int)
        assert (data.y.numpy()[index] == label).all()
        assert (_column(trace, fig, "class").astype(int) == label).all()
        np.testing.assert_array_equal(trace.x, points[index, 0])
        np.testing.assert_array_equal(trace.y, points[index, 1])
        assert trace.marker.color == colors[label]
        total += len(index)
    assert total == len(data)
    assert "<img" not in fig.data[0].hovertemplate


def test_sub_and_flipped_colourings_follow_their_labels():
    data = image_dataset()
    points = np.random.default_rng(0).normal(size=(len(data), 2))
    by_sub = embedding_map(points, dataset=data, color_by="sub")
    assert len(by_sub.data) == len(torch.unique(data.sub))
    for trace in by_sub.data:
        index = _column(trace, by_sub, "index").astype(int)
        assert (data.sub.numpy()[index] == int(trace.name)).all()
    by_flip = embedding_map(points, dataset=data, color_by="flipped")
    assert [t.name for t in by_flip.data] == ["clean", "flipped"]
    flipped = _column(by_flip.data[1], by_flip, "index").astype(int)
    assert sorted(flipped) == data.flipped.nonzero().flatten().tolist()
    assert by_flip.data[1].marker.color == "#d62728"
    assert "clean label" in by_flip.data[0].hovertemplate


def test_a_run_is_embedded_projected_and_labelled_from_its_test_split():
    run = hand_run()
    fig = embedding_map(run)
    assert fig.layout.xaxis.title.text == "PCA 1" and fig.layout.yaxis.title.text == "PCA 2"
    assert sum(len(t.x) for t in fig.data) == len(run.test)
    assert {t.name for t in fig.data} == {str(c) for c in run.test.classes.tolist()}


def test_labels_given_explicitly_win_and_high_dimensional_points_are_projected():
    z = np.random.default_rng(1).normal(size=(10, 5))
    labels = np.array([0, 1] * 5)
    fig = embedding_map(z, labels, method="pca")
    assert [t.name for t in fig.data] == ["0", "1"] and fig.layout.xaxis.title.text == "PCA 1"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"points": np.zeros((4, 2)), "labels": [0, 1, 0]}, "3 entries but there are 4 points"),
        ({"points": np.zeros((4, 1)), "labels": [0, 1, 0, 1]}, "1-D embeddings"),
        ({"points": np.zeros((4, 2))}, "needs labels"),
        (
            {"points": np.zeros((4, 2)), "labels": [0, 1, 0, 1], "color_by": "sub"},
            "sub-cluster labels",
        ),
        (
            {"points": np.zeros((4, 2)), "labels": [0, 1, 0, 1], "color_by": "flipped"},
            "flipped mask",
        ),
        (
            {"points": np.zeros((4, 2)), "labels": [0, 1, 0, 1], "color_by": "colour"},
            "class, sub, flipped",
        ),
        ({"points": np.zeros((5, 2)), "dataset": image_dataset()}, "dataset has 24 rows"),
    ],
)
def test_embedding_map_rejects_bad_input(kwargs, message):
    points = kwargs.pop("points")
    with pytest.raises(ValueError, match=message):
        embedding_map(points, **kwargs)


def test_a_run_without_data_asks_for_explicit_points():
    run = hand_run()
    run.data = None
    with pytest.raises(ValueError, match="carries no data"):
        embedding_map(run)


def test_compare_maps_shares_colours_axes_and_one_legend_entry_per_label():
    run = hand_run()
    rng = np.random.default_rng(2)
    labels = np.array([0, 1, 2, 2])
    fig = compare_maps({"a": rng.normal(size=(4, 2)), "b": rng.normal(size=(4, 2))}, labels)
    assert [a.text for a in fig.layout.annotations] == ["a", "b"]
    assert len(fig.data) == 6
    assert [t.name for t in fig.data if t.showlegend] == ["0", "1", "2"]
    colors = {t.name: t.marker.color for t in fig.data[:3]}
    assert {t.name: t.marker.color for t in fig.data[3:]} == colors
    assert fig.layout.xaxis2.matches == "x" and fig.layout.yaxis2.matches == "y"
    assert {t.xaxis for t in fig.data[3:]} == {"x2"}
    both = compare_maps(
        {"run": run, "points": rng.normal(size=(len(run.test), 2))},
        run.test.y,
        color_by="sub",
        dataset=run.test,
    )
    assert len(both.data) == 2 * len(torch.unique(run.test.sub))
    with pytest.raises(ValueError, match="nothing to compare"):
        compare_maps({}, labels)


def test_evolution_has_one_frame_per_snapshot_on_fixed_axes():
    run = hand_run(epochs=4)
    fig = evolution(run)
    assert [f.name for f in fig.frames] == ["1", "2", "3", "4"]
    assert [s.label for s in fig.layout.sliders[0].steps] == ["1", "2", "3", "4"]
    probe_labels = run.train.y[run.probe_index].numpy()
    classes = sorted(set(probe_labels.tolist()))
    for frame in fig.frames:
        assert [t.name for t in frame.data] == [str(c) for c in classes]
        assert sum(len(t.x) for t in frame.data) == len(run.probe_index)
    xs = np.concatenate([t.x for f in fig.frames for t in f.data])
    low, high = fig.layout.xaxis.range
    assert low <= xs.min() and xs.max() <= high and fig.layout.xaxis.autorange is False
    first, last = fig.frames[0].data[0], fig.frames[-1].data[0]
    assert not np.allclose(first.x, last.x)  # the hand-made snapshots grow with the epoch


def test_evolution_from_a_dict_needs_labels_and_a_run_needs_snapshots():
    snapshots = {1: np.zeros((3, 2)), 2: np.ones((3, 2))}
    fig = evolution(snapshots, labels=[0, 0, 1])
    assert len(fig.frames) == 2 and [t.name for t in fig.data] == ["0", "1"]
    run = hand_run()
    run.snapshots = {}
    with pytest.raises(ValueError, match="snapshot_every"):
        evolution(run)


def test_angle_histogram_bins_angles_per_label():
    angles = np.radians([10.0, 20.0, 100.0, -90.0])
    points = np.column_stack([np.cos(angles), np.sin(angles)])
    fig = angle_histogram(points, [0, 0, 1, 1], bins=36)
    assert [t.name for t in fig.data] == ["0", "1"]
    np.testing.assert_allclose(fig.data[0].x, [10.0, 20.0])
    np.testing.assert_allclose(fig.data[1].x, [100.0, -90.0])
    assert fig.data[0].xbins.size == 10.0 and fig.layout.xaxis.title.text == "angle (degrees)"
    with pytest.raises(ValueError, match="2-D embeddings"):
        angle_histogram(np.zeros((3, 3)), [0, 1, 2])
