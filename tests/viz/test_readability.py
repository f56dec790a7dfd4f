"""Figures that read right: equal axis scales for geometry, labelled levels, a robust diverging
colour scale, map grids that fit a window with legends acting on every panel, distinct colours for
ten classes, axis and panel titles in words."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from matplotlib.colors import to_rgb

from dmllab.geometry.base import Geometry
from dmllab.viz import (
    asymmetry_heatmap,
    compare_maps,
    embedding_map,
    evolution,
    level_sets,
    training_curves,
)
from dmllab.viz._inputs import palette
from dmllab.viz.curves import GAP_PX
from viz_fixtures import ExpBregman, hand_run


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DMLLAB_CACHE", str(tmp_path / "cache"))


class Flat(Geometry):
    """D = 0 everywhere: what a max-affine generator with one winning piece gives."""

    name = "flat"

    def _pairwise(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.zeros(len(a), len(b))


class OnePiece(Geometry):
    """D(x || c) = ||x||^2 whatever c: max-affine with every centre in one affine piece."""

    name = "one-piece"
    symmetric = False

    def _pairwise(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return (a**2).sum(dim=1, keepdim=True).expand(len(a), len(b))


def _lab(color: str) -> np.ndarray:
    """CIELAB (D65) of an sRGB colour, for perceptual distances."""
    rgb = np.array(to_rgb(color))
    rgb = np.where(rgb > 0.04045, ((rgb + 0.055) / 1.055) ** 2.4, rgb / 12.92)
    xyz = (
        np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]])
        @ rgb
    )
    f = np.cbrt(xyz / np.array([0.9505, 1.0, 1.089]))
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


def test_level_sets_keep_circles_round_and_label_their_levels():
    fig = level_sets(
        ExpBregman(), [(0.3, 0.3), (0.6, 0.7)], box=(0, 2, 0, 1), direction="both", resolution=15
    )
    for suffix in ("", "2"):
        assert fig.layout[f"yaxis{suffix}"].scaleanchor == f"x{suffix}"
        assert fig.layout[f"yaxis{suffix}"].scaleratio == 1
    assert list(fig.layout.xaxis2.range) == [0, 2] and list(fig.layout.yaxis2.range) == [0, 1]
    contours = [t for t in fig.data if t.type == "contour"]
    assert all(t.contours.showlabels for t in contours)
    assert [t.name for t in fig.data if t.showlegend] == [
        "centre 0 (0.3, 0.3)",
        "centre 1 (0.6, 0.7)",
    ]


def test_a_centre_without_level_sets_says_so_in_the_legend():
    fig = level_sets(Flat(), [(0.3, 0.3), (0.6, 0.7)], resolution=9)
    assert [t.name for t in fig.data if t.showlegend] == [
        "centre 0 (0.3, 0.3): flat, no level set",
        "centre 1 (0.6, 0.7): flat, no level set",
    ]


def test_centres_with_the_same_level_sets_are_dashed_and_named_for_the_first():
    fig = level_sets(OnePiece(), [(0.3, 0.3), (0.6, 0.7), (0.2, 0.9)], resolution=9)
    assert [t.name for t in fig.data if t.showlegend] == [
        "centre 0 (0.3, 0.3)",
        "centre 1 (0.6, 0.7): the same level sets as centre 0 (dashed)",
        "centre 2 (0.2, 0.9): the same level sets as centre 0 (dashed)",
    ]
    dashes = [t.line.dash for t in fig.data if t.type == "contour"]
    assert dashes == ["solid", "dash", "dash"]


def test_asymmetry_colours_are_centred_at_zero_and_clipped_to_a_robust_quantile():
    fig = asymmetry_heatmap(ExpBregman(), centre=(0.5, 0.5), box=(-3, 3, -3, 3), resolution=41)
    heat = fig.data[0]
    values = np.abs(np.asarray(heat.z, dtype=float))
    assert heat.zmid == 0.0 and heat.zmin == -heat.zmax
    assert heat.zmax == pytest.approx(np.quantile(values, 0.98))
    assert (
        heat.zmax < 0.6 * values.max()
    )  # the exp generator's corner would otherwise set the scale
    assert fig.layout.yaxis.scaleanchor == "x" and "98th percentile" in fig.layout.title.text
    assert asymmetry_heatmap(ExpBregman(), quantile=1.0, resolution=9).data[
        0
    ].zmax == pytest.approx(
        np.abs(
            np.asarray(asymmetry_heatmap(ExpBregman(), resolution=9, quantile=1.0).data[0].z)
        ).max()
    )
    with pytest.raises(ValueError, match=r"quantile=0.2"):
        asymmetry_heatmap(ExpBregman(), quantile=0.2)


def test_four_maps_make_a_responsive_two_by_two_grid_with_shared_legend_groups():
    run = hand_run()
    fig = compare_maps(dict.fromkeys("abcd", run), color_by="sub")
    assert fig.layout.width is None and fig.layout.autosize
    assert fig.layout.xaxis4.domain[0] > 0.5 and fig.layout.yaxis4.domain[1] < 0.5  # bottom right
    assert fig.layout.xaxis3.title.text == "PCA 1" and fig.layout.yaxis3.title.text == "PCA 2"
    assert fig.layout.xaxis.title.text is None  # a panel sits below it
    for name in {t.name for t in fig.data}:
        group = [t for t in fig.data if t.name == name]
        assert len(group) == 4 and {t.legendgroup for t in group} == {name}
        assert sum(bool(t.showlegend) for t in group) == 1
    assert fig.layout.title.text.startswith("test split: ")


def test_map_axes_name_what_they_show():
    run = hand_run()
    assert embedding_map(run, split="train").layout.title.text.startswith("train split: ")
    assert evolution(run).layout.title.text == "training split's probe set, epoch 1"
    flat = embedding_map(np.random.default_rng(0).normal(size=(8, 2)), np.arange(8) % 2)
    assert (flat.layout.xaxis.title.text, flat.layout.yaxis.title.text) == (
        "embedding 1",
        "embedding 2",
    )


def test_ten_classes_get_clearly_distinct_colours():
    for count, least in ((10, 30.0), (24, 25.0)):
        colors = list(palette(np.arange(count)).values())
        assert len(set(colors)) == count
        closest = min(
            np.linalg.norm(_lab(a) - _lab(b)) for a, b in itertools.combinations(colors, 2)
        )
        assert closest >= least, (count, closest)


def test_curve_panels_say_what_they_measure_and_leave_room_for_titles():
    history = [
        {
            "epoch": e,
            "loss": 1.0 / e,
            "base_loss": 1.0 / e,
            "active": 10 - e,
            "pos_dist": 0.1 * e,
            "neg_dist": 1.0,
            "val_recall@1": 0.5,
        }
        for e in (1, 2, 3)
    ]
    fig = training_curves(history)
    names = [t.name for t in fig.data]
    assert names == [
        "loss",
        "active",
        "pos_dist",
        "neg_dist",
        "val_recall@1",
    ]  # base_loss == loss: once
    titles = [fig.layout[f"yaxis{i + 1 if i else ''}"].title.text for i in range(len(names))]
    assert titles[1:3] == ["active tuples per batch", "mean D to the chosen positive"]
    assert titles[4] == "validation recall@1"
    plot_px = fig.layout.height - fig.layout.margin.t - fig.layout.margin.b
    gap = (fig.layout.yaxis.domain[0] - fig.layout.yaxis4.domain[1]) * plot_px
    assert gap == pytest.approx(GAP_PX)
    with_lsd = training_curves(
        [{**row, "loss": row["loss"] + 0.1, "lsd_term": 0.1} for row in history]
    )
    assert [t.name for t in with_lsd.data][:3] == ["loss", "base_loss", "lsd_term"]
