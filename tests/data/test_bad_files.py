"""Broken files (issue 15, case 6): hidden files are skipped, every decode error names its file,
and `load(..., verify=True)` / `dmllab verify` list every bad file before any training."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from dmllab import cli
from dmllab.data import BadImageError, BadImagesError, load
from dmllab.data.example_folder import LAYOUTS, write_example_folder
from dmllab.data.images import decode

SIZE = 8
APPLE_DOUBLE = b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        " + bytes(
    60
)  # a `._name` resource fork


def _jpeg(path: Path, shade: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    noise = np.random.default_rng(shade).integers(0, 255, size=(32, 32, 3), dtype=np.uint8)
    Image.fromarray(noise // 2 + shade).save(path, quality=90)


def _cut_in_half(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_a_jpeg_cut_in_half_is_named_when_listed_when_decoded_and_by_verify(tmp_path):
    for c in ("cat", "dog"):
        for i in range(3):
            _jpeg(tmp_path / c / f"{i}.jpg", 40 * i)
    data = load("folder", root=tmp_path, image_size=SIZE)
    broken = tmp_path / "dog" / "1.jpg"
    _cut_in_half(broken)  # after the folder was listed: decoding names it
    with pytest.raises(BadImageError, match="truncated") as error:
        data.x[torch.arange(len(data))]
    assert error.value.path == str(broken) and str(broken) in str(error.value)
    for verify in (False, True):  # the cheap check (its end marker is gone) and the full decode
        with pytest.raises(BadImagesError, match=r"1 of 6 image files cannot be used") as listed:
            load("folder", root=tmp_path, image_size=SIZE, verify=verify)
        assert [bad.path for bad in listed.value.bad] == [str(broken)]
        assert "truncated" in str(listed.value) and str(broken) in str(listed.value)


def test_hidden_files_and_folders_are_skipped_at_every_depth(tmp_path):
    root = write_example_folder(tmp_path, layout="folder", classes=3, per_class=2, size=16)
    before = load("folder", root=root, image_size=SIZE)
    for class_dir in [p for p in root.iterdir() if p.is_dir()]:
        (class_dir / "._000.png").write_bytes(APPLE_DOUBLE)  # macOS resource forks
        (class_dir / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
        (class_dir / ".thumbs" / "000.png").parent.mkdir()
        (class_dir / ".thumbs" / "000.png").write_bytes(APPLE_DOUBLE)
    (root / "__MACOSX" / "00_disc").mkdir(parents=True)  # what a macOS zip adds
    (root / "__MACOSX" / "00_disc" / "._000.png").write_bytes(APPLE_DOUBLE)
    after = load("folder", root=root, image_size=SIZE)
    assert (
        after.x.paths == before.x.paths and after.meta["class_names"] == before.meta["class_names"]
    )
    assert (
        len(load("folder", root=root, image_size=SIZE, verify=True)) == 6
    )  # nothing hidden decoded


@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_layout_lists_every_bad_file_before_training(layout, tmp_path, capsys):
    root = write_example_folder(tmp_path, layout=layout, classes=4, per_class=3, size=16)
    paths = [Path(p) for p in load(layout, root=root, image_size=SIZE).x.paths]
    _cut_in_half(paths[1])
    paths[4].write_bytes(b"")  # an empty download
    paths[7].write_bytes(APPLE_DOUBLE)  # not an image at all
    bad = [1, 4, 7]
    if layout != "folder":  # a listed file that is gone (a folder only lists what is there)
        paths[10].unlink()
        bad.append(10)
    for verify in (False, True):  # the cheap check when listing (the default) and a full decode
        with pytest.raises(BadImagesError, match=f"{len(bad)} of 12") as error:
            load(layout, root=root, image_size=SIZE, verify=verify)
        assert [error.path for error in error.value.bad] == [str(paths[i]) for i in bad]
        assert [error.reason for error in error.value.bad][:3] == [
            "OSError: image file is truncated", "empty file (0 bytes)", error.value.bad[2].reason
        ]  # fmt: skip
        assert error.value.bad[2].reason.startswith("UnidentifiedImageError")
    assert cli.main(["verify", str(root), "--layout", layout]) == 1
    printed = capsys.readouterr()
    assert [line.split(": ")[0] for line in printed.out.splitlines()] == [
        str(paths[i]) for i in bad
    ]
    assert f"{len(bad)} bad image file(s)" in printed.err


@pytest.mark.parametrize(
    "layout, listing, content, message",
    [
        (
            "cub200",
            "CUB_200_2011/images.txt",
            b"\xff\xfe\x00garbage",
            "cannot read .*images.txt as UTF-8",
        ),
        (
            "cub200",
            "CUB_200_2011/classes.txt",
            b"one 001.disc\n",
            r"classes.txt line 1: column\(s\) 1 must be integers",
        ),
        (
            "cub200",
            "CUB_200_2011/image_class_labels.txt",
            b"1 99\n",
            "class ids .99. that .*classes.txt does not list",
        ),
        ("cars196", "cars_annos.mat", APPLE_DOUBLE, "cannot read .*cars_annos.mat"),
        (
            "sop",
            "Stanford_Online_Products/Ebay_test.txt",
            b"image_id class_id super_class_id path\n1 x 1 a.png\n",
            r"Ebay_test.txt line 2: column\(s\) 2, 3 must be integers",
        ),
    ],
)
def test_a_damaged_list_file_is_named_with_its_line(layout, listing, content, message, tmp_path):
    root = write_example_folder(tmp_path, layout=layout, classes=2, per_class=1, size=16)
    (root / listing).write_bytes(content)
    with pytest.raises(ValueError, match=message):
        load(layout, root=root)


def test_verify_command_on_a_clean_folder_and_on_a_wrong_root(tmp_path, capsys):
    root = write_example_folder(
        tmp_path / "shapes", layout="folder", classes=2, per_class=2, size=16
    )
    assert cli.main(["verify", str(root)]) == 0
    assert "all 4 images" in capsys.readouterr().out
    with pytest.raises(SystemExit, match=r"images.txt"):
        cli.main(["verify", str(root), "--layout", "cub200"])
    with pytest.raises(ValueError, match="verify must be true or false"):
        load("folder", root=root, verify="yes")


@settings(max_examples=25, deadline=None)
@given(
    cut=st.floats(0.0, 1.0),
    garbage=st.binary(max_size=64),
    suffix=st.sampled_from([".png", ".jpg"]),
)
def test_property_any_bytes_decode_or_fail_naming_the_file(tmp_path_factory, cut, garbage, suffix):
    folder = tmp_path_factory.mktemp("bytes")
    whole = folder / f"whole{suffix}"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (12, 10, 3), dtype=np.uint8)).save(
        whole
    )
    data = whole.read_bytes()
    for name, content in (
        ("prefix", data[: int(cut * len(data))]),
        ("garbage", garbage),
        ("spliced", data[: int(cut * len(data))] + garbage),
    ):
        path = folder / f"{name}{suffix}"
        path.write_bytes(content)
        try:
            image = decode(path, SIZE)
        except BadImageError as error:
            # either outcome is allowed (a clear error or a valid image), so no pytest.raises
            assert error.path == str(path) and str(path) in str(error)  # noqa: PT017
        else:
            assert (
                image.shape == (3, SIZE, SIZE)
                and 0.0 <= float(image.min()) <= float(image.max()) <= 1.0
            )


def test_a_damaged_cache_file_is_named_and_rebuilt(tmp_path, monkeypatch):
    from dmllab.cache import cache_dir
    from dmllab.viz.projection import CACHE_FOLDER, project

    monkeypatch.setenv("DMLLAB_CACHE", str(tmp_path))
    x = np.random.default_rng(0).normal(size=(10, 4))
    fresh = project(x, "pca")
    (cached,) = cache_dir(CACHE_FOLDER).glob("*.npy")
    cached.write_bytes(APPLE_DOUBLE)
    with pytest.warns(UserWarning, match=f"projection cache {cached} is unreadable"):
        np.testing.assert_array_equal(project(x, "pca"), fresh)
    np.testing.assert_array_equal(np.load(cached), fresh)  # rewritten
    digits = load("mnist-5k")
    (archive,) = tmp_path.glob("mnist_5k-*.npz")
    _cut_in_half(archive)
    with pytest.warns(UserWarning, match=f"mnist-5k cache {archive} is unreadable"):
        again = load("mnist-5k")
    assert torch.equal(again.x, digits.x) and torch.equal(again.y, digits.y)
