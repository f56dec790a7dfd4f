"""The named transform pairs and `read_pixels`, which they start from: whole pictures, the same
pixel rules as `LazyImages`, torchvision's JPEG decoder where it gives Pillow's pixels, and
draft-reduced large JPEGs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps
from torchvision.transforms.v2 import functional as F

from dmllab.data import BadImageError
from dmllab.data.images import read_pixels
from dmllab.data.pixels import as_pixels, to_array
from dmllab.data.transforms import TRANSFORMS, as_float, sample_seed


def _photo(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A smooth picture with noise (JPEG-friendly, every pixel different)."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 200, width)[None, :, None] + np.linspace(0, 50, height)[:, None, None]
    return np.clip(ramp + rng.integers(0, 40, (height, width, 3)), 0, 255).astype(np.uint8)


def _pillow(path) -> np.ndarray:
    with Image.open(path) as image:
        return to_array(as_pixels(ImageOps.exif_transpose(image)))


@pytest.mark.parametrize("subsampling", ["4:2:0", "4:4:4"])
@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_a_jpeg_reads_the_pixels_pillow_reads(tmp_path, mode, subsampling):
    path = tmp_path / "photo.jpg"
    Image.fromarray(_photo(30, 41)).convert(mode).save(path, quality=90, subsampling=subsampling)
    pixels = read_pixels(path, 8)  # torchvision's decode_jpeg: shorter side 30 < 4 x 8
    assert pixels.dtype == torch.uint8 and pixels.shape == (3, 30, 41)
    np.testing.assert_array_equal(as_float(pixels).permute(1, 2, 0).numpy(), _pillow(path))


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_is_turned_upright_as_pillow_does(tmp_path, orientation):
    path = tmp_path / f"turned{orientation}.jpg"
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(_photo(12, 20)).save(path, exif=exif, quality=95)
    np.testing.assert_array_equal(
        as_float(read_pixels(path, 8)).permute(1, 2, 0).numpy(), _pillow(path)
    )


@pytest.mark.parametrize(
    "mode, value, name",
    [
        ("I;16", 20000, "grey16.png"),
        ("RGBA", (200, 30, 60, 0), "clear.png"),
        ("P", 1, "palette.gif"),
        ("CMYK", (255, 0, 0, 0), "cyan.jpg"),
        ("LA", (100, 128), "grey_alpha.png"),
    ],
)
def test_other_files_follow_the_pixel_rules_of_lazy_images(tmp_path, mode, value, name):
    path = tmp_path / name
    Image.new(mode, (7, 5), value).save(path)
    pixels = read_pixels(path, 4)
    assert pixels.shape == (3, 5, 7)
    assert pixels.dtype == (torch.float32 if mode == "I;16" else torch.uint8)
    np.testing.assert_allclose(as_float(pixels).permute(1, 2, 0).numpy(), _pillow(path), atol=1e-6)


def test_a_large_jpeg_is_decoded_at_a_reduced_scale_keeping_twice_the_target(tmp_path):
    path = tmp_path / "large.jpg"
    Image.fromarray(_photo(375, 500)).save(path, quality=90)
    for size, shorter in ((64, 188), (40, 94), (100, 375)):  # 1/2, 1/4 and (375 < 4 x 100) full
        pixels = read_pixels(path, size)
        assert pixels.shape[1] == shorter and pixels.shape[1] >= 2 * size, size
    reduced = as_float(read_pixels(path, 40)).mean(dim=(1, 2))
    full = as_float(read_pixels(path, 100)).mean(dim=(1, 2))
    torch.testing.assert_close(reduced, full, atol=2e-3, rtol=0)  # the same picture, smaller


def test_a_broken_file_is_named(tmp_path):
    path = tmp_path / "cut.jpg"
    Image.fromarray(_photo(30, 40)).save(path)
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(BadImageError, match=r"cut\.jpg") as error:
        read_pixels(path, 8)
    assert error.value.path == str(path)
    path.write_bytes(b"")
    with pytest.raises(BadImageError, match=r"empty file \(0 bytes\)"):
        read_pixels(path, 8)


def test_dml_standard_crops_randomly_for_training_and_centrally_for_evaluation():
    pair = TRANSFORMS.build("dml-standard", {"image_size": 16})
    image = torch.from_numpy(_photo(30, 50)).permute(2, 0, 1).contiguous()
    expected = F.center_crop(F.resize(image, [18]), [16])  # round(16 * 256 / 224) = 18
    assert torch.equal(pair.eval(image), expected) and pair.eval(image).dtype == torch.uint8
    views = []
    for seed in (1, 1, 2):
        torch.manual_seed(seed)
        views.append(pair.train(image))
    assert all(view.shape == (3, 16, 16) and view.dtype == torch.uint8 for view in views)
    assert torch.equal(views[0], views[1]) and not torch.equal(views[0], views[2])
    none = TRANSFORMS.build("none", {"image_size": 16})
    assert none.train is None and none.eval is None


def test_as_float_scales_uint8_and_keeps_float():
    values = np.array([0, 51, 255], dtype=np.uint8)  # as `LazyImages` scales: float32 / 255
    expected = (values.astype(np.float32) / np.float32(255)).tolist()
    assert as_float(torch.from_numpy(values)).tolist() == expected
    grey = torch.tensor([0.25])
    assert as_float(grey).tolist() == [0.25]


def test_each_image_has_its_own_seed():
    seeds = {sample_seed(0, epoch, batch, position)
             for epoch in range(3) for batch in range(3) for position in range(8)}  # fmt: skip
    assert len(seeds) == 72 and all(0 <= seed < 2**63 for seed in seeds)
    assert sample_seed(5, 1, 2, 3) == sample_seed(5, 1, 2, 3) != sample_seed(6, 1, 2, 3)
