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


def test_the_relative_asymmetry_map_is_not_white_around_the_centre():
    """The plain difference shrinks like |x - c|^3 near c: its colours there are ~0.4 % of the
    scale; the relative one shrinks like |x - c| and keeps the sign change in view."""
    shares = {}
    for relative in (True, False):
        heat = asymmetry_heatmap(
            ExpBregman(), centre=(0.5, 0.5), box=(-1, 2, -1, 2), resolution=31, relative=relative
        ).data[0]
        z, (x, y) = np.abs(np.asarray(heat.z, dtype=float)), np.meshgrid(heat.x, heat.y)
        near = np.hypot(x - 0.5, y - 0.5) <= 0.5
        shares[relative] = float(np.median(z[near])) / heat.zmax
    assert shares[True] > 0.1 > 0.01 > shares[False], shares


def test_asymmetry_colours_are_centred_at_zero_and_clipped_to_a_robust_quantile():
    fig = asymmetry_heatmap(
        ExpBregman(), centre=(0.5, 0.5), box=(-3, 3, -3, 3), resolution=41, relative=False
    )
    heat = fig.data[0]
    values = np.abs(np.asarray(heat.z, dtype=float))
    assert heat.zmid == 0.0 and heat.zmin == -heat.zmax
    assert heat.zmax == pytest.approx(np.quantile(values, 0.98))
    assert (
        heat.zmax < 0.6 * values.max()
    )  # the exp generator's corner would otherwise set the scale
    assert fig.layout.yaxis.scaleanchor == "x" and "98th percentile" in fig.layout.title.text
    assert asymmetry_heatmap(ExpBregman(), quantile=1.0, resolution=9, relative=False).data[
        0
    ].zmax == pytest.approx(
        np.abs(
            np.asarray(
                asymmetry_heatmap(ExpBregman(), resolution=9, quantile=1.0, relative=False)
                .data[0]
                .z
            )
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


def ciede2000(lab1: np.ndarray, lab2: np.ndarray) -> float:
    """The CIEDE2000 colour difference (Sharma, Wu, Dalal, "The CIEDE2000 color-difference
    formula", Color Research & Application 30, 2005), kL = kC = kH = 1."""
    (l1, a1, b1), (l2, a2, b2) = lab1, lab2
    c_mean = (np.hypot(a1, b1) + np.hypot(a2, b2)) / 2
    g = 0.5 * (1 - np.sqrt(c_mean**7 / (c_mean**7 + 25.0**7)))
    a1, a2 = (1 + g) * a1, (1 + g) * a2
    c1, c2 = np.hypot(a1, b1), np.hypot(a2, b2)
    h1 = np.degrees(np.arctan2(b1, a1)) % 360 if c1 else 0.0
    h2 = np.degrees(np.arctan2(b2, a2)) % 360 if c2 else 0.0
    dh = 0.0 if c1 * c2 == 0 else (h2 - h1 + 180) % 360 - 180
    d_l, d_c = l2 - l1, c2 - c1
    d_h = 2 * np.sqrt(c1 * c2) * np.sin(np.radians(dh / 2))
    l_mean, c_mean = (l1 + l2) / 2, (c1 + c2) / 2
    if c1 * c2 == 0:
        h_mean = h1 + h2
    elif abs(h1 - h2) <= 180:
        h_mean = (h1 + h2) / 2
    else:
        h_mean = (h1 + h2 + 360) / 2 if h1 + h2 < 360 else (h1 + h2 - 360) / 2
    t = (
        1
        - 0.17 * np.cos(np.radians(h_mean - 30))
        + 0.24 * np.cos(np.radians(2 * h_mean))
        + 0.32 * np.cos(np.radians(3 * h_mean + 6))
        - 0.20 * np.cos(np.radians(4 * h_mean - 63))
    )
    r_c = 2 * np.sqrt(c_mean**7 / (c_mean**7 + 25.0**7))
    r_t = -np.sin(np.radians(60 * np.exp(-(((h_mean - 275) / 25) ** 2)))) * r_c
    s_l = 1 + 0.015 * (l_mean - 50) ** 2 / np.sqrt(20 + (l_mean - 50) ** 2)
    s_c, s_h = 1 + 0.045 * c_mean, 1 + 0.015 * c_mean * t
    return float(
        np.sqrt(
            (d_l / s_l) ** 2 + (d_c / s_c) ** 2 + (d_h / s_h) ** 2 + r_t * (d_c / s_c) * (d_h / s_h)
        )
    )


@pytest.mark.parametrize(
    "lab1, lab2, expected",  # pairs 1, 7, 17 and 25 of Sharma et al.'s test data
    [
        ((50.0, 2.6772, -79.7751), (50.0, 0.0, -82.7485), 2.0425),
        ((50.0, 0.0, 0.0), (50.0, -1.0, 2.0), 2.3669),
        ((50.0, 2.5, 0.0), (73.0, 25.0, -18.0), 27.1492),
        ((60.2574, -34.0099, 36.2677), (60.4626, -34.1751, 39.4387), 1.2644),
    ],
)
def test_ciede2000_matches_the_published_test_data(lab1, lab2, expected):
    assert ciede2000(np.array(lab1), np.array(lab2)) == pytest.approx(expected, abs=1e-4)


def test_ten_classes_get_clearly_distinct_colours():
    # CIEDE2000, not the plain CIELAB distance: the latter overrates differences of saturated
    # colours and passed a palette whose classes 7 / 9, 6 / 8 and 1 / 4 readers confused
    white = _lab("#ffffff")
    for count, least in ((10, 25.0), (16, 20.0), (24, 17.0)):
        colors = list(palette(np.arange(count)).values())
        assert len(set(colors)) == count
        closest = min(ciede2000(_lab(a), _lab(b)) for a, b in itertools.combinations(colors, 2))
        assert closest >= least, (count, closest)
        assert min(ciede2000(_lab(c), white) for c in colors) >= 20.0  # visible on white


def test_a_prototype_loss_run_draws_no_tuple_counts_and_names_its_class_mean_distances():
    run = hand_run()
    for row in run.history:
        row |= {"pos_dist": 0.2, "neg_dist": 0.9, "anchors": 40.0}
    run.config = run.config.replace(loss="prototype_ce")
    fig = training_curves(run)
    names = ["loss", "base_loss", "lsd_term", "pos_dist", "neg_dist", "val_recall@1"]
    assert [t.name for t in fig.data] == names
    assert fig.layout.yaxis4.title.text == "mean D to the own class mean"
    assert fig.layout.annotations[4].text == "to other class means"
    run.config = run.config.replace(loss="triplet")
    assert "active" in [t.name for t in training_curves(run).data]


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
