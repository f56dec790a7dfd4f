"""The generated example image folder: each layout loads through its real loader, with the right
labels."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dmllab.data import load, split
from dmllab.data.example_folder import LAYOUTS, _shape, write_example_folder
from dmllab.metrics.retrieval import retrieval

SIZE = 16


@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_layout_loads_with_balanced_labels(tmp_path, layout):
    root = write_example_folder(tmp_path / layout, layout=layout, classes=4, per_class=3, size=SIZE)
    data = load(layout, root=root, image_size=SIZE)
    assert len(data) == 12 and data.num_classes == 4
    assert torch.bincount(data.y).tolist() == [3, 3, 3, 3]
    images = data.x[torch.arange(len(data))]
    assert (
        images.shape == (12, 3, SIZE, SIZE)
        and float(images.min()) >= 0.0
        and float(images.max()) <= 1.0
    )


@pytest.mark.parametrize("layout", ["cub200", "cars196", "sop"])
def test_standard_layouts_train_on_the_first_half_of_the_classes(tmp_path, layout):
    root = write_example_folder(tmp_path, layout=layout, classes=6, per_class=2, size=SIZE)
    data = load(layout, root=root, image_size=SIZE)
    assert data.meta["train_classes"] == [0, 1, 2]
    train, test = split(data, how="classes")
    assert sorted(set(train.y.tolist())) == [0, 1, 2] and sorted(set(test.y.tolist())) == [3, 4, 5]


def test_sop_pairs_products_into_super_classes(tmp_path):
    root = write_example_folder(tmp_path, layout="sop", classes=6, per_class=2, size=SIZE)
    data = load("sop", root=root, image_size=SIZE, labels="super")
    assert data.y.tolist() == [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2]
    assert data.sub.tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5]


def test_same_seed_same_pixels_other_seed_other_pixels(tmp_path):
    def pixels(folder, seed):
        root = write_example_folder(tmp_path / folder, classes=2, per_class=2, size=SIZE, seed=seed)
        data = load("folder", root=root, image_size=SIZE)
        return data.x[torch.arange(len(data))]

    assert torch.equal(pixels("a", 3), pixels("b", 3))
    assert not torch.equal(pixels("a2", 3), pixels("c", 4))


def test_classes_are_recognisable_from_raw_pixels(tmp_path):
    """Class-dependent shapes and colours: even raw pixels retrieve the class far above chance."""
    root = write_example_folder(tmp_path, classes=6, per_class=10, size=SIZE)
    data = load("folder", root=root, image_size=SIZE)
    pixels = data.x[torch.arange(len(data))].flatten(1)
    assert retrieval(pixels, data.y, ks=(1,))["recall@1"] > 0.5  # chance is about 1/6


def test_bad_arguments_and_reused_folders_are_refused(tmp_path):
    with pytest.raises(
        ValueError, match="layout='imagenet' is not known; choose one of: folder, cub200"
    ):
        write_example_folder(tmp_path, layout="imagenet")
    with pytest.raises(ValueError, match="classes must be an int >= 2; got 1"):
        write_example_folder(tmp_path, classes=1)
    with pytest.raises(ValueError, match="classes must be even"):
        write_example_folder(tmp_path, layout="sop", classes=5)
    write_example_folder(tmp_path, layout="cub200", classes=2, per_class=1, size=SIZE)
    with pytest.raises(ValueError, match="already exists; pass an empty or new root folder"):
        write_example_folder(tmp_path, layout="cub200", classes=2, per_class=1, size=SIZE)


def test_the_cached_example_folder_is_written_once_and_read_afterwards(tmp_path, monkeypatch):
    from dmllab.data.example_folder import cached_example_folder

    monkeypatch.setenv("DMLLAB_CACHE", str(tmp_path))
    first = cached_example_folder("folder", classes=3, per_class=2, size=16, seed=1)
    files = sorted(first.rglob("*.png"))
    stamps = [path.stat().st_mtime_ns for path in files]
    again = cached_example_folder("folder", classes=3, per_class=2, size=16, seed=1)
    assert again == first and first.parent == tmp_path / "example-folders"
    assert [path.stat().st_mtime_ns for path in sorted(again.rglob("*.png"))] == stamps
    assert len(load("folder", root=str(again), image_size=16)) == 6
    other = cached_example_folder("folder", classes=3, per_class=2, size=16, seed=2)
    assert other != first  # the arguments name the folder
    assert sorted(p.name for p in (tmp_path / "example-folders").iterdir()) == sorted(
        [first.name, other.name]
    )  # no staging copy is left behind


class _Recorder:
    """Stands in for PIL's ImageDraw: keeps the polygons it is asked to fill."""

    def __init__(self):
        self.polygons = []

    def polygon(self, points, fill):
        self.polygons.append(points)


def test_a_diamond_stands_on_a_corner_and_a_square_may_turn():
    centre, radius = np.array([16.0, 16.0]), 10.0
    for angle in (0.0, 0.3, 2.0):
        draw = _Recorder()
        _shape(draw, "diamond", centre, radius, angle, (0, 0, 0))
        (points,) = draw.polygons
        xs, ys = sorted(round(x, 6) for x, _ in points), sorted(round(y, 6) for _, y in points)
        # corners straight above, below and beside the centre, whatever the random angle
        assert xs == [6.0, 16.0, 16.0, 26.0] and ys == [6.0, 16.0, 16.0, 26.0]
    draw = _Recorder()
    _shape(draw, "square", centre, radius, 0.3, (0, 0, 0))
    (points,) = draw.polygons
    assert math.isclose(points[0][0], 16 + 10 * math.cos(0.3))
