"""Image modes (issue 15, case 5): each mode Pillow returns decodes to the right RGB in [0, 1]."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from dmllab.data import BadImageError, LazyImages, load
from dmllab.data.images import decode
from dmllab.data.pixels import as_pixels, to_array

SIZE = 4


def _solid(tmp_path, mode: str, value, name: str, **save) -> str:
    """A 6x5 image of one value in `mode`, saved so that Pillow opens it in `mode` again."""
    path = tmp_path / name
    image = Image.new(mode, (6, 5), value)
    image.save(path, **save)
    with Image.open(path) as reopened:
        assert reopened.mode == mode or (mode, reopened.mode) == ("I;16B", "I;16B")
    return str(path)


def _rgb(path: str) -> list[float]:
    image = decode(path, SIZE)
    assert image.shape == (3, SIZE, SIZE) and image.dtype == torch.float32
    assert torch.allclose(
        image, image[:, :1, :1].expand_as(image), atol=1e-6
    )  # a solid image stays solid
    return image[:, 0, 0].tolist()


def test_sixteen_bit_grey_folder_reads_20000_of_65535_not_white(tmp_path):
    # the reported case: Pillow's convert("RGB") clips I;16 at 255, so 20000 came out as 1.0
    for c in ("a", "b"):
        for i in range(2):
            (tmp_path / c).mkdir(exist_ok=True)
            Image.fromarray(np.full((8, 8), 20000, dtype=np.uint16)).save(tmp_path / c / f"{i}.png")
    data = load("folder", root=tmp_path, image_size=SIZE)
    images = data.x[torch.arange(len(data))]
    assert abs(float(images.mean()) - 0.305) < 5e-4
    np.testing.assert_allclose(images.numpy(), 20000 / 65535, rtol=1e-6)


def _palette(tmp_path, transparent: bool) -> str:
    image = Image.new("P", (6, 5), 1)
    image.putpalette([0, 0, 0, 200, 30, 60] + [0] * 762)
    path = tmp_path / f"p{transparent}.png"
    image.save(path, **({"transparency": 1} if transparent else {}))
    return str(path)


@pytest.mark.parametrize(
    "make, expected",
    [
        (lambda t: _solid(t, "1", 1, "one.png"), [1.0, 1.0, 1.0]),
        (lambda t: _solid(t, "L", 100, "l.png"), [100 / 255] * 3),
        (lambda t: _palette(t, False), [200 / 255, 30 / 255, 60 / 255]),
        (lambda t: _palette(t, True), [1.0, 1.0, 1.0]),  # transparent -> white
        (lambda t: _solid(t, "LA", (100, 255), "la.png"), [100 / 255] * 3),
        (lambda t: _solid(t, "LA", (100, 0), "la0.png"), [1.0, 1.0, 1.0]),
        (lambda t: _solid(t, "RGB", (10, 20, 30), "rgb.png"), [10 / 255, 20 / 255, 30 / 255]),
        (
            lambda t: _solid(t, "RGBA", (255, 0, 0, 0), "rgba0.png"),
            [1.0, 1.0, 1.0],
        ),  # stored red, invisible
        (
            lambda t: _solid(t, "RGBA", (10, 20, 30, 255), "rgba.png"),
            [10 / 255, 20 / 255, 30 / 255],
        ),
        (lambda t: _solid(t, "CMYK", (255, 0, 0, 0), "cmyk.tif"), [0.0, 1.0, 1.0]),  # full cyan ink
        (lambda t: _solid(t, "CMYK", (0, 0, 0, 255), "cmyk.jpg", quality=100), [0.0, 0.0, 0.0]),
        (lambda t: _solid(t, "YCbCr", (128, 128, 128), "ycbcr.tif"), [128 / 255] * 3),
        (
            lambda t: _solid(t, "LAB", (255, 128, 128), "lab.tif"),
            [1.0, 1.0, 1.0],
        ),  # L=100, a=b=0: white
        (lambda t: _solid(t, "I;16", 20000, "i16.png"), [20000 / 65535] * 3),
        (lambda t: _solid(t, "I;16", 20000, "i16.tif"), [20000 / 65535] * 3),
        (lambda t: _solid(t, "I;16B", 20000, "i16b.tif"), [20000 / 65535] * 3),
        (lambda t: _solid(t, "I", 20000, "i32.tif"), [20000 / 65535] * 3),
        (lambda t: _solid(t, "F", 0.3, "f.tif"), [0.3] * 3),
    ],
    ids=[
        "1",
        "L",
        "P",
        "P-transparent",
        "LA",
        "LA-transparent",
        "RGB",
        "RGBA-transparent",
        "RGBA",
        "CMYK-tif",
        "CMYK-jpg",
        "YCbCr",
        "LAB",
        "I;16-png",
        "I;16-tif",
        "I;16B",
        "I",
        "F",
    ],
)
def test_every_mode_pillow_opens_decodes_to_the_right_rgb(tmp_path, make, expected):
    np.testing.assert_allclose(_rgb(make(tmp_path)), expected, atol=2.5 / 255)


@pytest.mark.parametrize(
    "mode, value, expected",
    [
        (
            "RGBa",
            (50, 0, 0, 128),
            [(99 * 128 + 255 * 127) / 255 / 255, 127 / 255, 127 / 255],
        ),  # premultiplied
        ("La", (50, 128), [(99 * 128 + 255 * 127) / 255 / 255] * 3),
        ("PA", (0, 0), [1.0, 1.0, 1.0]),
        ("HSV", (0, 255, 255), [1.0, 0.0, 0.0]),
        ("RGBX", (10, 20, 30, 0), [10 / 255, 20 / 255, 30 / 255]),
    ],
)
def test_in_memory_only_modes_convert_too(mode, value, expected):
    np.testing.assert_allclose(
        to_array(as_pixels(Image.new(mode, (2, 2), value)))[0, 0], expected, atol=2.5 / 255
    )


@pytest.mark.parametrize(
    "mode, value, message",
    [
        ("F", 2.0, r"values in \[2, 2\].*grey values in \[0, 1\]"),
        ("F", float("nan"), "values in"),
        ("I", -5, r"values in \[-5, -5\].*\[0, 65535\]"),
    ],
)
def test_values_outside_a_modes_range_are_refused_naming_the_file(tmp_path, mode, value, message):
    path = tmp_path / "odd.tif"
    Image.new(mode, (3, 3), value).save(path)
    with pytest.raises(BadImageError, match=message) as error:
        decode(path, SIZE)
    assert error.value.path == str(path) and str(path) in str(error.value)


def test_exif_orientation_is_applied(tmp_path):
    path = tmp_path / "turned.jpg"
    pixels = np.zeros((4, 12, 3), dtype=np.uint8)
    pixels[:, :6] = 255  # left half white, right half black
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 clockwise to view"
    Image.fromarray(pixels).save(path, exif=exif, quality=100)
    image = LazyImages([path], 4)[0][0]
    top, bottom = float(image[:, :2].mean()), float(image[:, 2:].mean())
    assert top > 0.9 and bottom < 0.1  # upright: the white half is on top


@settings(max_examples=15, deadline=None)
@given(
    colour=st.tuples(*[st.integers(0, 255)] * 3),
    alpha=st.integers(0, 255),
    grey16=st.integers(0, 65535),
    width=st.integers(1, 9),
    height=st.integers(1, 9),
)
def test_property_each_encoding_of_a_colour_decodes_to_that_colour(
    tmp_path_factory, colour, alpha, grey16, width, height
):
    folder = tmp_path_factory.mktemp("modes")
    rgb = np.array(colour) / 255
    over_white = (np.array(colour) * alpha + 255 * (255 - alpha)) / 255 / 255
    encodings = [
        ("RGB", colour, "c.png", rgb),
        ("RGB", colour, "c.tif", rgb),
        ("RGBA", (*colour, 255), "o.png", rgb),
        ("RGBA", (*colour, alpha), "a.png", over_white),
        ("L", colour[0], "l.png", [rgb[0]] * 3),
        ("I;16", grey16, "g.png", [grey16 / 65535] * 3),
        ("I;16B", grey16, "g.tif", [grey16 / 65535] * 3),
    ]
    for mode, value, name, expected in encodings:
        Image.new(mode, (width, height), value).save(folder / name)
        image = decode(folder / name, SIZE)
        assert (
            image.shape == (3, SIZE, SIZE)
            and float(image.min()) >= 0.0
            and float(image.max()) <= 1.0
        )
        np.testing.assert_allclose(
            image[:, 0, 0].numpy(), expected, atol=1.01 / 255, err_msg=f"{mode} {name}"
        )
