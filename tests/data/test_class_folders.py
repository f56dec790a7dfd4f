"""Classes that would vanish (issue 23, case 3): every suffix Pillow opens is read, and a class that
contributes no image is named before any training instead of shifting every later label."""

from __future__ import annotations

import contextlib
import shutil
import warnings
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from dmllab import cli
from dmllab.data import load
from dmllab.data.example_folder import write_example_folder
from dmllab.data.folders import EmptyClassesError, image_suffixes, undecodable_suffixes

SIZE = 8
FORMATS = {".jpg": "JPEG", ".jpeg": "JPEG", ".jfif": "JPEG", ".jpe": "JPEG", ".png": "PNG",
           ".bmp": "BMP", ".webp": "WEBP", ".tif": "TIFF", ".gif": "GIF"}  # fmt: skip


def _image(path: Path, shade: int = 100) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.full((6, 6, 3), shade, dtype=np.uint8)
    Image.fromarray(pixels).save(path, format=FORMATS[path.suffix.lower()])


def test_jfif_and_jpe_classes_load_and_an_empty_class_is_named(tmp_path):
    # the reported tree: a, an empty b, c of .jfif JPEGs, d of .jpe JPEGs, e
    for name, suffix in (("a", ".png"), ("c", ".jfif"), ("d", ".JPE"), ("e", ".jpg")):
        for i in range(2):
            _image(tmp_path / name / f"{i}{suffix}", 40 * i)
    (tmp_path / "b").mkdir()
    with pytest.raises(EmptyClassesError, match=r"1 class\(es\) under .* contribute no image") as e:
        load("folder", root=tmp_path, image_size=SIZE)
    assert e.value.empty == [(str(tmp_path / "b"), "empty")]
    assert "shift the label of every later class" in str(e.value)
    (tmp_path / "b").rmdir()
    data = load("folder", root=tmp_path, image_size=SIZE)
    assert data.meta["class_names"] == ["a", "c", "d", "e"]
    assert data.y.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]  # e keeps label 3: nothing shifted
    assert {".jfif", ".jpe", ".jpg", ".png"} <= image_suffixes() and ".pdf" not in image_suffixes()


def test_a_class_of_other_suffixes_is_named_with_them_and_stray_files_are_counted(tmp_path):
    for name in ("cat", "eel"):
        _image(tmp_path / name / "0.png")
    for stray in ("dog/0.heic", "dog/1.heic", "dog/notes.txt", "cat/notes.txt", "labels.csv"):
        (tmp_path / stray).parent.mkdir(exist_ok=True)
        (tmp_path / stray).write_text("not an image Pillow opens")
    with pytest.raises(EmptyClassesError) as error:
        load("folder", root=tmp_path, image_size=SIZE)
    assert error.value.empty == [
        (str(tmp_path / "dog"), ".heic x 2, .txt x 1 (none of them a suffix Pillow opens)")
    ]
    assert cli.main(["verify", str(tmp_path)]) == 1  # verify names it too
    shutil.rmtree(tmp_path / "dog")
    with pytest.warns(UserWarning, match=r"left out 2 file\(s\) .*: \.csv x 1, \.txt x 1"):
        data = load("folder", root=tmp_path, image_size=SIZE)
    assert data.meta["class_names"] == ["cat", "eel"]


HIDDEN_ONLY = (
    "holds only hidden files ({}), which are skipped (a name starting with '.', or __MACOSX, is "
    "never read): rename the images if they are real ones"
)
NO_GHOSTSCRIPT = "Pillow reads EPS only through Ghostscript, which is not installed"


def test_a_class_of_hidden_files_names_them(tmp_path):
    """The acceptance instance (issue 23): a class folder holding only `._x.jpg` or `.cache/x.jpg`
    was reported as "empty"."""
    _image(tmp_path / "cat" / "0.png")
    _image(tmp_path / "dog" / "._x.jpg")
    _image(tmp_path / "dog" / ".cache" / "x.jpg")
    (tmp_path / "eel" / ".ipynb_checkpoints").mkdir(parents=True)
    with pytest.raises(EmptyClassesError) as error:
        load("folder", root=tmp_path, image_size=SIZE)
    assert error.value.empty == [
        (str(tmp_path / "dog"), HIDDEN_ONLY.format("._x.jpg, .cache/x.jpg")),
        (
            str(tmp_path / "eel"),
            HIDDEN_ONLY.replace("files", "folders").format(".ipynb_checkpoints/"),
        ),
    ]


@contextlib.contextmanager
def ghostscript(installed):
    """Whether Ghostscript is installed, as Pillow sees it, inside the block (the suffix lists
    are cached: cleared on the way in and out)."""
    from PIL import EpsImagePlugin

    with mock.patch.object(EpsImagePlugin, "has_ghostscript", return_value=installed):
        image_suffixes.cache_clear()
        undecodable_suffixes.cache_clear()
        try:
            yield
        finally:
            image_suffixes.cache_clear()
            undecodable_suffixes.cache_clear()


def _eps(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 6 6\nshowpage\n%%EOF\n")


def test_eps_files_are_images_only_where_ghostscript_reads_them(tmp_path):
    """The acceptance instance (issue 23): .eps passed the cheap check without Ghostscript and
    failed when a batch decoded it."""
    _image(tmp_path / "cat" / "0.png")
    _eps(tmp_path / "cat" / "1.eps")
    _eps(tmp_path / "dog" / "0.eps")
    with ghostscript(False):
        assert ".eps" not in image_suffixes() and ".ps" not in image_suffixes()
        with pytest.raises(EmptyClassesError) as error:
            load("folder", root=tmp_path, image_size=SIZE)
        assert error.value.empty == [
            (
                str(tmp_path / "dog"),
                f".eps ({NO_GHOSTSCRIPT}) x 1 (none of them a suffix Pillow opens)",
            )
        ]
        shutil.rmtree(tmp_path / "dog")
        left_out = rf"left out 1 file\(s\) .*: \.eps \({NO_GHOSTSCRIPT}\) x 1"
        with pytest.warns(UserWarning, match=left_out):
            data = load("folder", root=tmp_path, image_size=SIZE)
        assert data.x.paths == [str(tmp_path / "cat" / "0.png")]
    with ghostscript(True):
        assert ".eps" in image_suffixes() and ".eps" not in undecodable_suffixes()
        paths = load("folder", root=tmp_path, image_size=SIZE).x.paths
        assert [Path(path).name for path in paths] == ["0.png", "1.eps"]


def test_only_hidden_entries_and_nothing_at_all_are_named_too(tmp_path):
    _image(tmp_path / "cat" / "0.png")
    (tmp_path / "dog").mkdir()
    (tmp_path / "dog" / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    (tmp_path / "gone").symlink_to(tmp_path / "nowhere")
    with pytest.raises(EmptyClassesError) as error:
        load("folder", root=tmp_path, image_size=SIZE)
    assert error.value.empty == [
        (str(tmp_path / "gone"), "a broken symbolic link"),
        (str(tmp_path / "dog"), HIDDEN_ONLY.format(".DS_Store")),
    ]
    (tmp_path / "cat" / "0.png").unlink()
    with pytest.raises(ValueError, match=r"(?s)no images in .*its folders hold no image:.*dog"):
        load("folder", root=tmp_path, image_size=SIZE)


def test_list_file_layouts_name_classes_without_images(tmp_path):
    root = write_example_folder(tmp_path / "cub", layout="cub200", classes=3, per_class=2, size=16)
    labels = root / "CUB_200_2011" / "image_class_labels.txt"
    lines = labels.read_text().splitlines()
    labels.write_text("\n".join(lines[:4]) + "\n")  # class 3's images lose their class
    with pytest.raises(ValueError, match=r"2 image\(s\) of .*images.txt have no class .*ids 5, 6"):
        load("cub200", root=root)
    images = root / "CUB_200_2011" / "images.txt"
    images.write_text("\n".join(images.read_text().splitlines()[:4]) + "\n")
    with pytest.raises(EmptyClassesError, match=r"(?s)1 class\(es\) of .*classes.txt.*3 "):
        load("cub200", root=root)
    from scipy.io import loadmat, savemat

    cars = write_example_folder(tmp_path / "cars", layout="cars196", classes=3, per_class=1,
                                size=16)  # fmt: skip
    mat = loadmat(cars / "cars_annos.mat")
    annotations = mat["annotations"][:, :2]  # the third class keeps its name, loses its images
    savemat(
        cars / "cars_annos.mat", {"annotations": annotations, "class_names": mat["class_names"]}
    )
    with pytest.raises(EmptyClassesError, match=r"(?s)of .*cars_annos.mat.*3 02_square: no image"):
        load("cars196", root=cars)


KINDS = ("images", "empty", "odd", "hidden", "link", "broken", "hidden inside", "eps")


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    classes=st.lists(
        st.tuples(
            st.sampled_from(KINDS),
            st.lists(st.sampled_from(sorted(FORMATS)), min_size=1, max_size=3),
            st.booleans(),  # upper-case suffixes
            st.booleans(),  # a stray text file beside the images
        ),
        min_size=1,
        max_size=6,
    )
)
def test_property_every_class_folder_is_a_class_or_named(tmp_path_factory, classes):
    with ghostscript(False):  # .eps: a suffix Pillow knows but cannot decode here
        _every_class_folder_is_a_class_or_named(tmp_path_factory, classes)


def _every_class_folder_is_a_class_or_named(tmp_path_factory, classes):
    base = tmp_path_factory.mktemp("tree")
    root, elsewhere = base / "root", base / "elsewhere"
    root.mkdir()
    expected_classes, empty = [], []
    for c, (kind, suffixes, upper, stray) in enumerate(classes):
        name = f".hidden{c}" if kind == "hidden" else f"class{c}"
        folder = root / name
        suffixes = [s.upper() if upper else s for s in suffixes]
        if kind in ("images", "hidden", "link"):
            target = elsewhere / name if kind == "link" else folder
            for i, suffix in enumerate(suffixes):
                _image(target / ("deep" if i % 2 else "") / f"{i}{suffix}", 20 * i)
            if stray:
                (target / "notes.txt").write_text("notes")
            if kind == "link":
                folder.symlink_to(target, target_is_directory=True)
            if kind != "hidden":
                expected_classes.append((name, len(suffixes)))
        elif kind == "empty":
            folder.mkdir()
            empty.append((str(folder), "empty"))
        elif kind == "hidden inside":  # a class folder of hidden files only
            names = [f"._{i}{suffix}" if i % 2 else f".cache/{i}{suffix}" for i, suffix in
                     enumerate(suffixes)]  # fmt: skip
            for file in names:
                _image(folder / file)
            empty.append((str(folder), HIDDEN_ONLY.format(", ".join(sorted(names)))))
        elif kind == "eps":  # no Ghostscript here: a suffix Pillow cannot decode
            _eps(folder / "figure.eps")
            empty.append(
                (str(folder), f".eps ({NO_GHOSTSCRIPT}) x 1 (none of them a suffix Pillow opens)")
            )
        elif kind == "odd":
            folder.mkdir()
            (folder / "photo.heic").write_bytes(b"heic")
            empty.append((str(folder), ".heic x 1 (none of them a suffix Pillow opens)"))
        else:
            folder.symlink_to(root / "nowhere")
            empty.append((str(folder), "a broken symbolic link"))
    if empty or not expected_classes:
        with pytest.raises(ValueError) as error:
            load("folder", root=root, image_size=SIZE)
        if expected_classes:
            assert isinstance(error.value, EmptyClassesError)
            assert sorted(error.value.empty) == sorted(empty)
        for folder, _ in empty:
            assert folder in str(error.value)
        return
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = load("folder", root=root, image_size=SIZE)
    strays = any(c[3] for c in classes if c[0] != "hidden")  # hidden folders are not read
    left_out = [w for w in caught if "left out" in str(w.message)]
    assert bool(left_out) == strays and len(caught) == len(left_out)
    names = [name for name, _ in sorted(expected_classes)]
    assert data.meta["class_names"] == names
    assert data.y.bincount().tolist() == [count for _, count in sorted(expected_classes)]
    for path, label in zip(data.x.paths, data.y.tolist(), strict=True):
        assert Path(path).relative_to(root).parts[0] == names[label]  # never shifted
    assert data.x[np.arange(len(data))].shape == (len(data), 3, SIZE, SIZE)
