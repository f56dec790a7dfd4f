"""Training curves, run comparisons, the retrieval grid, Bregman read-outs and export: their
content."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from dmllab.runs import aggregate
from dmllab.viz import (
    asymmetry_heatmap,
    compare_runs,
    export,
    level_sets,
    phi_surface,
    retrieval_grid,
    save_figure,
    training_curves,
    update_curves,
)
from dmllab.viz.curves import curves_figure
from viz_fixtures import ExpBregman, hand_run, image_dataset


# ------------------------------------------------------------------ training curves
def test_training_curves_draw_each_history_column_against_the_epoch():
    run = hand_run(epochs=3)
    fig = training_curves(run)
    names = [t.name for t in fig.data]
    assert names == ["loss", "base_loss", "lsd_term", "active", "val_recall@1"]
    assert [a.text for a in fig.layout.annotations] == [
        "loss",
        "base loss (without LSD)",
        "LSD term (unweighted)",
        "active tuples",
        "validation recall@1",
    ]  # in words
    assert "seconds" not in names and "epoch" not in names
    loss = fig.data[0]
    np.testing.assert_array_equal(loss.x, [1, 2, 3])
    np.testing.assert_allclose(loss.y, [1.0, 0.5, 1 / 3])
    assert fig.layout.xaxis.title.text == "epoch"


def test_training_curves_accept_a_history_or_frame_and_chosen_keys():
    history = [
        {"epoch": 1, "loss": 2.0, "val_recall@1": float("nan")},
        {"epoch": 2, "loss": 1.0, "val_recall@1": 0.7},
    ]
    fig = training_curves(pd.DataFrame(history), keys=["val_recall@1"])
    assert [t.name for t in fig.data] == ["val_recall@1"]
    np.testing.assert_array_equal(fig.data[0].x, [2])  # the NaN epoch is left out, not drawn as 0
    with pytest.raises(ValueError, match=r"no numeric column\(s\) \['accuracy'\]"):
        training_curves(history, keys=["accuracy"])
    with pytest.raises(ValueError, match="history is empty"):
        training_curves([])
    with pytest.raises(TypeError, match="list of per-epoch dicts"):
        training_curves("history.csv")


def test_update_curves_refills_an_empty_figure_in_place():
    fig = curves_figure(["loss", "active"])
    assert all(len(t.x) == 0 for t in fig.data)
    update_curves(
        fig, [{"epoch": 1, "loss": 3.0, "active": 10}, {"epoch": 2, "loss": 2.0, "active": 5}]
    )
    np.testing.assert_array_equal(fig.data[1].y, [10, 5])


# ------------------------------------------------------------------ run comparison
def test_compare_runs_draws_aggregate_means_with_confidence_bars():
    records = [
        {"positives": p, "seed": s, "recall@1": r}
        for p, values in {"nearest": [0.8, 0.9, 0.85], "random": [0.5, 0.7, 0.6]}.items()
        for s, r in enumerate(values)
    ]
    table = aggregate(records, by=["positives"], metrics=["recall@1"])
    fig = compare_runs(table, "recall@1", by="positives")
    (bars,) = fig.data
    assert list(bars.x) == ["nearest", "random"]
    np.testing.assert_allclose(bars.y, [0.85, 0.6])
    np.testing.assert_allclose(bars.error_y.array, table["recall@1_ci"].to_numpy())
    assert fig.layout.yaxis.title.text == "recall@1" and "95% CI" in fig.layout.title.text
    std = compare_runs(table, "recall@1", by="positives", error="std")
    np.testing.assert_allclose(std.data[0].error_y.array, [0.05, 0.1])
    # two bars and a long title (lesson 06's): the figure is wide enough for the whole title,
    # about 8.5 px per character at plotly's title size, where it used to be cut at 420 px
    title = "MAP@R on digits 5-9, never seen in training (95 % CI over seeds)"
    wide = compare_runs(table, "recall@1", by="positives", title=title)
    assert wide.layout.title.text == title and wide.layout.width >= 8.5 * len(title) + 60
    assert fig.layout.width == 420  # a short title leaves the width to the bars


def test_compare_runs_groups_by_colour_and_names_missing_columns():
    records = [
        {"loss": loss, "lsd": a, "seed": s, "map@r": 0.1 * s + (0.3 if a else 0.0)}
        for loss in ("triplet", "margin")
        for a in (0.0, 1.0)
        for s in range(2)
    ]
    table = aggregate(records, by=["loss", "lsd"], metrics=["map@r"])
    fig = compare_runs(table, "map@r", by="loss", color="lsd")
    assert [t.name for t in fig.data] == ["lsd=0.0", "lsd=1.0"]
    np.testing.assert_allclose(fig.data[1].y, [0.35, 0.35])
    with pytest.raises(ValueError, match=r"no column\(s\) \['recall@1_mean', 'recall@1_ci'\]"):
        compare_runs(table, "recall@1", by="loss")
    with pytest.raises(ValueError, match="empty"):
        compare_runs(pd.DataFrame(), "map@r", by="loss")


# ------------------------------------------------------------------ retrieval grid
def test_retrieval_grid_shows_true_neighbours_with_correct_marks():
    data = image_dataset()
    z = data.x  # embed by the raw inputs: neighbours are then checkable by brute force
    queries = [0, 9, 20]
    fig = retrieval_grid((z, data), queries, k=4)
    axes = np.array(fig.axes).reshape(3, 5)
    distances = torch.cdist(z, z)
    labels = data.y.tolist()
    for row, q in enumerate(queries):
        assert axes[row, 0].get_title() == f"query: {labels[q]}"
        order = [j for j in distances[q].argsort().tolist() if j != q][:4]
        for col, j in enumerate(order, start=1):
            mark = "\u2713" if labels[j] == labels[q] else "\u2717"
            assert axes[row, col].get_title() == f"{mark} {labels[j]}"
        assert axes[row, 1].images[0].get_array().shape == (4, 4)
    # row 0's query had its label flipped, so its 3 sub-cluster mates are marked wrong
    assert all(ax.get_title() == "\u2717 0" for ax in axes[0, 1:4])


@pytest.mark.parametrize("geometry", [None, "sqeuclidean", "cosine"])
def test_retrieval_grid_neighbours_are_the_metrics_knn_search_ties_included(geometry):
    """The grid ranks with `dmllab.metrics.knn` itself: same rows, same order within exact ties
    (ascending row index), the query left out."""
    from dmllab.data.dataset import Dataset
    from dmllab.metrics import knn

    base = torch.randn(4, 16, generator=torch.Generator().manual_seed(3))
    x = base[torch.tensor([0, 1, 0, 2, 1, 0, 3, 2, 0, 1, 3, 0])]  # repeated rows: exact ties
    data = Dataset(
        x=x, y=torch.arange(12), image_shape=(1, 4, 4)
    )  # one class per row: titles name rows
    queries = [0, 4, 6, 11]
    fig = retrieval_grid((x, data), queries, k=5, geometry=geometry)
    shown = [
        [int(ax.get_title().split()[-1]) for ax in row[1:]]
        for row in np.array(fig.axes).reshape(4, 6)
    ]
    index = torch.tensor(queries)
    expected = knn(x[index], x, 5, geometry, self_index=index)[0]
    assert shown == expected.tolist()
    assert shown[0][:4] == [2, 5, 8, 11]  # the four copies of row 0, in row order


def test_retrieval_grid_uses_the_run_geometry_and_validates():
    run = hand_run()
    fig = retrieval_grid(run, [0, 1], k=3)
    assert len(fig.axes) == 8
    with pytest.raises(ValueError, match="out of range"):
        retrieval_grid(run, [0, 999], k=3)
    with pytest.raises(ValueError, match="k=30"):
        retrieval_grid(run, [0], k=30)
    flat = image_dataset()
    flat.image_shape = None
    with pytest.raises(ValueError, match="no image_shape"):
        retrieval_grid((flat.x, flat), [0])
    with pytest.raises(ValueError, match="3 embeddings"):
        retrieval_grid((torch.zeros(3, 2), image_dataset()), [0])


# ------------------------------------------------------------------ Bregman read-outs
def test_level_sets_draw_the_divergence_to_each_centre():
    geometry = ExpBregman()
    centres = [(0.3, 0.3), (0.6, 0.7)]
    fig = level_sets(geometry, centres, box=(0, 1, 0, 1), resolution=21)
    contours = [t for t in fig.data if t.type == "contour"]
    markers = [t for t in fig.data if t.type == "scatter"]
    assert len(contours) == 2 and len(markers) == 2
    assert (
        contours[0].line.color is None
        and contours[0].colorscale[0][1] != contours[1].colorscale[0][1]
    )
    x, y = contours[1].x[5], contours[1].y[12]
    point, centre = torch.tensor([[x, y]]), torch.tensor([centres[1]])
    expected = geometry.pairwise(point, centre).item()
    assert contours[1].z[12][5] == pytest.approx(expected, rel=1e-5)
    assert list(markers[1].x) == [0.6] and list(markers[1].y) == [0.7]


def test_level_sets_both_directions_differ_for_an_asymmetric_geometry():
    fig = level_sets(ExpBregman(), (0.2, 0.8), direction="both", resolution=15)
    first, second = [t for t in fig.data if t.type == "contour"]
    assert [a.text for a in fig.layout.annotations] == ["D(x || c)", "D(c || x)"]
    assert first.xaxis == "x" and second.xaxis == "x2"
    assert not np.allclose(first.z, second.z)
    with pytest.raises(ValueError, match="first, second, both"):
        level_sets(ExpBregman(), (0.2, 0.8), direction="left")
    with pytest.raises(ValueError, match=r"\[k, 2\]"):
        level_sets(ExpBregman(), [(0.1, 0.2, 0.3)])
    with pytest.raises(TypeError, match="Geometry"):
        level_sets("bregman", (0.2, 0.8))


def test_asymmetry_heatmap_is_the_relative_difference_of_both_directions():
    geometry = ExpBregman()
    for relative in (True, False):
        fig = asymmetry_heatmap(geometry, centre=(0.5, 0.5), resolution=11, relative=relative)
        heat = fig.data[0]
        x, y = heat.x[2], heat.y[7]
        p, c = torch.tensor([[x, y]]), torch.tensor([[0.5, 0.5]])
        there, back = geometry.pairwise(p, c).item(), geometry.pairwise(c, p).item()
        expected = (there - back) / (there + back) if relative else there - back
        assert heat.z[7][2] == pytest.approx(expected, abs=1e-6)
        assert heat.zmid == 0.0 and fig.layout.xaxis.title.text == "x1"
    centre = asymmetry_heatmap(geometry, centre=(0.5, 0.5), resolution=11).data[0].z[5][5]
    assert centre == 0.0  # 0 / 0 at c itself: no asymmetry


def test_phi_surface_is_phi_minus_its_affine_fit():
    fig = phi_surface(ExpBregman(), box=(0, 1, 0, 1), resolution=9)
    surface = fig.data[0]
    z = np.asarray(surface.z)
    gx, gy = np.meshgrid(surface.x, surface.y)
    phi = np.exp(gx) + np.exp(gy)
    design = np.column_stack([np.ones(gx.size), gx.ravel(), gy.ravel()])
    residual = phi.ravel() - design @ np.linalg.lstsq(design, phi.ravel(), rcond=None)[0]
    np.testing.assert_allclose(z.ravel(), residual, atol=1e-5)
    assert fig.layout.scene.zaxis.title.text == "phi - affine"
    with pytest.raises(TypeError, match="generator phi"):
        phi_surface(hand_run().geometry)


# ------------------------------------------------------------------ export
def test_matplotlib_and_html_always_export(tmp_path):
    grid = retrieval_grid(hand_run(), [0], k=2)
    png = save_figure(grid, tmp_path / "grid.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    html = save_figure(training_curves(hand_run()), tmp_path / "curves.html")
    assert "plotly" in html.read_text()[:5000].lower()
    with pytest.raises(ValueError, match="saves as"):
        save_figure(grid, tmp_path / "grid.html")
    with pytest.raises(TypeError, match="matplotlib or plotly"):
        save_figure("figure", tmp_path / "x.png")


def test_static_plotly_export_is_skipped_with_a_reason_when_it_cannot_run(tmp_path, monkeypatch):
    monkeypatch.setattr(
        export, "why_no_plotly_export", lambda: "no Chromium or Chrome browser was found"
    )
    with pytest.warns(RuntimeWarning, match="skipped curves.png: no Chromium"):
        assert save_figure(training_curves(hand_run()), tmp_path / "curves.png") is None
    assert not (tmp_path / "curves.png").exists()


@pytest.mark.slow
def test_static_plotly_export_writes_a_png_when_kaleido_and_a_browser_are_present(tmp_path):
    problem = export.why_no_plotly_export()
    if problem is not None:
        pytest.skip(f"static plotly export unavailable here: {problem}")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        path = save_figure(training_curves(hand_run()), tmp_path / "curves.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
