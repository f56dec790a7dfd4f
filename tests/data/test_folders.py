"""Image-folder datasets on tiny generated fixtures: layouts, lazy decoding, standard splits,
errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dmllab.data import LazyImages, load, split

SIZE = 8


def _image(path: Path, label: int, index: int, shape=(12, 20)) -> None:
    """A solid image whose red channel encodes the class and green channel the index."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.zeros((*shape, 3), dtype=np.uint8)
    pixels[..., 0], pixels[..., 1], pixels[..., 2] = 40 * label, 20 * index, 255
    Image.fromarray(pixels).save(path)


def _red(images: torch.Tensor) -> list[int]:
    return (images[:, 0].mean(dim=(1, 2)) * 255 / 40).round().long().tolist()


@pytest.fixture
def cub(tmp_path):
    base = tmp_path / "CUB_200_2011"
    images, labels, classes = [], [], []
    for c in range(1, 5):
        classes.append(f"{c} {c:03d}.Bird_{c}")
        for i in range(3):
            image_id = len(images) + 1
            rel = f"{c:03d}.Bird_{c}/bird_{c}_{i}.png"
            _image(base / "images" / rel, c, i)
            images.append(f"{image_id} {rel}")
            labels.append(f"{image_id} {c}")
    for name, lines in (
        ("images.txt", images),
        ("image_class_labels.txt", labels),
        ("classes.txt", classes),
    ):
        (base / name).write_text("\n".join(lines) + "\n")
    return tmp_path


def test_folder_layout_decodes_lazily_to_rgb_crops(tmp_path):
    for c, name in enumerate(["cat", "dog", "eel"]):
        for i in range(2 + c):
            _image(
                tmp_path / name / ("deep" if i else "") / f"{i}.{'png' if i % 2 else 'jpg'}", c, i
            )
    (tmp_path / "cat" / "notes.txt").write_text("not an image")
    data = load("folder", root=str(tmp_path), image_size=SIZE)
    assert isinstance(data.x, LazyImages) and len(data) == 9 and data.image_shape == (3, SIZE, SIZE)
    assert data.y.tolist() == [0, 0, 1, 1, 1, 2, 2, 2, 2]
    assert data.meta["class_names"] == ["cat", "dog", "eel"]
    # tables and plots name a class by its folder, not its id
    assert data.label_names([0, 2]) == ["cat", "eel"]
    assert data.subset(torch.tensor([8, 0])).label_names() == ["eel", "cat"]
    batch = data.x[torch.tensor([0, 4, 8])]
    assert batch.shape == (3, 3, SIZE, SIZE) and batch.dtype == torch.float32
    assert float(batch.min()) >= 0.0 and float(batch.max()) <= 1.0
    assert _red(batch) == [0, 1, 2] and torch.allclose(
        batch[:, 2], torch.ones(3, SIZE, SIZE), atol=0.02
    )


def test_decoding_resizes_the_shorter_side_and_centre_crops(tmp_path):
    path = tmp_path / "wide.png"
    pixels = np.zeros((10, 30, 3), dtype=np.uint8)
    pixels[:, :10], pixels[:, 10:20], pixels[:, 20:] = 255, 128, 0  # left, middle, right thirds
    Image.fromarray(pixels).save(path)
    image = LazyImages([path], 10)[torch.tensor([0])][0]
    assert image.shape == (3, 10, 10)
    assert torch.allclose(
        image, torch.full_like(image, 128 / 255), atol=0.02
    )  # only the middle kept


def test_subset_and_splits_stay_lazy(tmp_path):
    for c in range(4):
        for i in range(3):
            _image(tmp_path / f"c{c}" / f"{i}.png", c, i)
    data = load("folder", root=tmp_path, image_size=SIZE, seed=7)
    train, test = split(data, how="classes")
    assert isinstance(train.x, LazyImages) and isinstance(test.x, LazyImages)
    assert _red(test.x[torch.arange(len(test))]) == test.y.tolist() == [2, 2, 2, 3, 3, 3]
    few = load("folder", root=tmp_path, image_size=SIZE, max_classes=2, max_per_class=2)
    assert few.y.tolist() == [0, 0, 3, 3]


def test_cub_layout_and_its_standard_split(cub):
    data = load("cub200", root=cub, image_size=SIZE)  # the parent of CUB_200_2011 works too
    assert len(data) == 12 and data.num_classes == 4 and data.meta["train_classes"] == [0, 1]
    assert data.meta["class_names"][0] == "001.Bird_1"
    assert _red(data.x[torch.arange(12)]) == (data.y + 1).tolist()
    train, test = split(data, how="classes", test_fraction=0.25)
    assert train.classes.tolist() == [0, 1] and test.classes.tolist() == [2, 3]
    direct = load(
        "cub200", root=cub / "CUB_200_2011", image_size=SIZE, max_per_class=1, max_classes=2
    )
    assert direct.y.tolist() == [0, 3] and direct.meta["train_classes"] == [0]


def test_cars_annos_mat_layout(tmp_path):
    from scipy.io import savemat

    records = np.zeros((1, 8), dtype=[("relative_im_path", "O"), ("class", "O"), ("test", "O")])
    for i in range(8):
        rel = f"car_ims/{i + 1:06d}.jpg"
        _image(tmp_path / rel, i % 4 + 1, i)
        records[0, i] = (
            rel,
            np.array([[i % 4 + 1]], dtype=np.uint8),
            np.array([[i % 2]], dtype=np.uint8),
        )
    names = np.array([["AM General Hummer", "Acura RL", "Audi A4", "BMW M3"]], dtype=object)
    savemat(tmp_path / "cars_annos.mat", {"annotations": records, "class_names": names})
    data = load("cars196", root=tmp_path, image_size=SIZE)
    assert data.y.tolist() == [0, 1, 2, 3, 0, 1, 2, 3] and data.meta["train_classes"] == [0, 1]
    assert data.meta["class_names"] == ["AM General Hummer", "Acura RL", "Audi A4", "BMW M3"]
    assert _red(data.x[torch.arange(4)]) == [1, 2, 3, 4]


@pytest.fixture
def sop(tmp_path):
    base = tmp_path / "Stanford_Online_Products"
    header = "image_id class_id super_class_id path"
    rows = {"Ebay_train.txt": [], "Ebay_test.txt": []}
    image_id = 0
    for product, super_name, file in [
        (1, "bicycle", "Ebay_train.txt"),
        (2, "bicycle", "Ebay_train.txt"),
        (3, "chair", "Ebay_train.txt"),
        (4, "chair", "Ebay_test.txt"),
        (5, "bicycle", "Ebay_test.txt"),
        (6, "chair", "Ebay_test.txt"),
    ]:
        super_id = 1 if super_name == "bicycle" else 2
        for i in range(2):
            image_id += 1
            rel = f"{super_name}_final/{product}_{i}.JPG"
            _image(base / rel, product, i)
            rows[file].append(f"{image_id} {product} {super_id} {rel}")
    for file, lines in rows.items():
        (base / file).write_text("\n".join([header, *lines]) + "\n")
    return base


def test_sop_products_with_super_classes(sop):
    data = load("sop", root=sop, image_size=SIZE)
    assert data.y.tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5] and data.sub is None
    assert data.meta["train_classes"] == [0, 1, 2]
    assert data.meta["super_class_of"] == {0: 0, 1: 0, 2: 1, 3: 1, 4: 0, 5: 1}
    assert data.meta["super_class_names"] == ["bicycle", "chair"]
    train, test = split(data, how="classes")
    assert train.classes.tolist() == [0, 1, 2] and len(test) == 6
    assert _red(test.x[torch.arange(2)]) == [4, 4]


def test_sop_trained_on_super_classes_keeps_products_in_sub(sop):
    data = load("sop", root=sop.parent, image_size=SIZE, labels="super")
    assert data.y.tolist() == [0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 1, 1]
    assert (
        data.sub.tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
        and "train_classes" not in data.meta
    )
    with pytest.raises(ValueError, match="labels must be one of product, super"):
        load("sop", root=sop, labels="coarse")


@pytest.mark.parametrize("name", ["cub200", "cars196", "sop", "folder"])
def test_missing_root_says_what_to_pass(name, tmp_path):
    with pytest.raises(ValueError, match="root"):
        load(name)
    with pytest.raises(ValueError, match="is not a folder"):
        load(name, root=tmp_path / "nowhere")


@pytest.mark.parametrize(
    "name, expected",
    [
        ("cub200", "images.txt"),
        ("cars196", "cars_annos.mat"),
        ("sop", "Ebay_train.txt"),
        ("folder", "no images"),
    ],
)
def test_wrong_layout_names_the_expected_file(name, expected, tmp_path):
    (tmp_path / "empty_class").mkdir()
    with pytest.raises(ValueError, match=expected):
        load(name, root=tmp_path)


def test_listed_images_that_are_missing_are_reported(cub):
    for path in (cub / "CUB_200_2011" / "images").rglob("*.png"):
        path.unlink()
    with pytest.raises(ValueError, match="does not exist"):
        load("cub200", root=cub)
    (cub / "CUB_200_2011" / "classes.txt").unlink()
    with pytest.raises(ValueError, match=r"classes.txt"):
        load("cub200", root=cub)
