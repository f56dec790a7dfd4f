"""`write_example_folder`: a tiny generated image dataset on disk, in a standard DML layout.

Each class is one shape (disc, triangle, square, ring, cross, ...) in one colour, drawn with
random position, size, rotation, colour jitter and a noisy background, so a small CNN can
learn something and still has to generalise. The files follow the layouts the loaders in
`dmllab.data.folders` read, so the whole image pipeline (lazy decoding, standard splits, the
command line) can be tried without downloading CUB-200-2011, Cars196 or SOP:

    root = write_example_folder("/tmp/shapes", layout="cub200")
    data = dmllab.data.load("cub200", root=root, image_size=32)

Layouts (the dataset name to load it with is the layout's name):
- "folder":  root/<class name>/<i>.png
- "cub200":  root/CUB_200_2011/{images.txt, image_class_labels.txt, classes.txt, images/...}
- "cars196": root/{cars_annos.mat, car_ims/<n>.png}
- "sop":     root/Stanford_Online_Products/{Ebay_train.txt, Ebay_test.txt, <super>_final/...};
             the products (classes) come in pairs of one shape in two colours, each pair one
             super-class; the first half of the products are listed in Ebay_train.txt.

>>> import tempfile, dmllab
>>> with tempfile.TemporaryDirectory() as tmp:
...     root = write_example_folder(tmp, layout="folder", classes=3, per_class=2, size=16)
...     data = dmllab.data.load("folder", root=root, image_size=16)
>>> len(data), data.num_classes, data.meta["class_names"]
(6, 3, ['00_disc', '01_triangle', '02_square'])
"""

from __future__ import annotations

import colorsys
import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # Pillow is imported where images are drawn
    import PIL.Image
    import PIL.ImageDraw

    Pictures = list[list[PIL.Image.Image]]  # per class, its images

LAYOUTS = ("folder", "cub200", "cars196", "sop")
SHAPES = (
    "disc",
    "triangle",
    "square",
    "ring",
    "cross",
    "pentagon",
    "bars",
    "diamond",
    "hexagon",
    "star",
)


def write_example_folder(
    root: str | Path,
    layout: str = "folder",
    *,
    classes: int = 6,
    per_class: int = 12,
    size: int = 32,
    seed: int = 0,
) -> Path:
    """Write `classes` x `per_class` generated PNG images of side `size` under `root` in `layout`.

    Class c is shape SHAPES[c % 10] in hue (0.37 c) mod 1 (one colour per class; with more than
    10 classes the shapes repeat in new colours); in the "sop" layout products 2s and 2s + 1
    share shape SHAPES[s % 10] and super-class s + 1, and differ in colour. Returns `root` as a
    Path: pass it as `dataset_options={"root": ...}` with `dataset=layout`. The folder may already
    exist, but must not already hold a dataset in the same layout.
    """
    if layout not in LAYOUTS:
        raise ValueError(
            f"write_example_folder: layout={layout!r} is not known; "
            f"choose one of: {', '.join(LAYOUTS)}"
        )
    for name, value, low in (
        ("classes", classes, 2),
        ("per_class", per_class, 1),
        ("size", size, 8),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"write_example_folder: {name} must be an int >= {low}; got {value!r}")
    if layout == "sop" and classes % 2:
        raise ValueError(
            f"write_example_folder: layout='sop' pairs products into super-classes, so classes "
            f"must be even; got {classes}"
        )
    root = Path(root).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    shape_of = (lambda c: c // 2) if layout == "sop" else (lambda c: c)
    images = [
        [_draw(shape_of(c), (0.37 * c) % 1.0, size, rng) for _ in range(per_class)]
        for c in range(classes)
    ]
    writer = {"folder": _folder, "cub200": _cub200, "cars196": _cars196, "sop": _sop}[layout]
    writer(root, images)
    return root


DRAWING = 2
"""The version of the drawing, part of a cached folder's name: a folder drawn by an older version
(version 1 drew its diamonds as upright squares) is not reused."""


def cached_example_folder(
    layout: str = "folder", *, classes: int = 6, per_class: int = 12, size: int = 32, seed: int = 0
) -> Path:
    """`write_example_folder` of these arguments, written once into the lab's cache
    (`dmllab.cache.cache_dir("example-folders")`) and read from there afterwards: a lesson that
    needs example images without an output folder of its own leaves no temporary folder behind.
    Two processes writing it at once each write a copy aside and the first rename wins."""
    import shutil
    import tempfile

    from dmllab.cache import cache_dir

    name = f"{layout}-{classes}x{per_class}-{size}px-seed{seed}-drawing{DRAWING}"
    folder = cache_dir("example-folders") / name
    if folder.is_dir():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        write_example_folder(
            staging, layout, classes=classes, per_class=per_class, size=size, seed=seed
        )
        staging.rename(folder)
    except OSError:
        if not folder.is_dir():  # not another writer's win: a real failure
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder


def class_name(c: int) -> str:
    """The folder-friendly name of generated class c, e.g. '03_ring'."""
    return f"{c:02d}_{SHAPES[c % len(SHAPES)]}"


# ---------------------------------------------------------------------------- drawing
def _draw(shape: int, hue: float, size: int, rng: np.random.Generator) -> PIL.Image.Image:
    from PIL import Image, ImageDraw

    background = rng.uniform(0.55, 0.85, size=3)
    pixels = background + rng.normal(0.0, 0.06, size=(size, size, 3))
    image = Image.fromarray((np.clip(pixels, 0, 1) * 255).astype(np.uint8))
    r, g, b = colorsys.hsv_to_rgb(
        (hue + rng.normal(0, 0.02)) % 1.0, rng.uniform(0.75, 1.0), rng.uniform(0.6, 0.95)
    )
    colour = (int(255 * r), int(255 * g), int(255 * b))
    centre = size / 2 + rng.uniform(-size / 8, size / 8, size=2)
    radius = size * rng.uniform(0.24, 0.36)
    angle = rng.uniform(0, 2 * math.pi)
    _shape(ImageDraw.Draw(image), SHAPES[shape % len(SHAPES)], centre, radius, angle, colour)
    return image


def _polygon(
    centre: np.ndarray, radius: float, sides: int, angle: float, inner: float | None = None
) -> list[tuple[float, float]]:
    """Vertices of a regular polygon (or, with `inner`, a star alternating two radii)."""
    points, count = [], sides * (2 if inner else 1)
    for k in range(count):
        rad = radius if not inner or k % 2 == 0 else radius * inner
        theta = angle + 2 * math.pi * k / count
        points.append((centre[0] + rad * math.cos(theta), centre[1] + rad * math.sin(theta)))
    return points


def _shape(
    draw: PIL.ImageDraw.ImageDraw,
    shape: str,
    centre: np.ndarray,
    radius: float,
    angle: float,
    colour: tuple[int, int, int],
) -> None:
    x, y = centre
    box = (x - radius, y - radius, x + radius, y + radius)
    if shape == "disc":
        draw.ellipse(box, fill=colour)
    elif shape == "ring":
        draw.ellipse(box, outline=colour, width=max(2, int(radius / 3)))
    elif shape == "cross":
        w = radius / 3
        draw.rectangle((x - radius, y - w, x + radius, y + w), fill=colour)
        draw.rectangle((x - w, y - radius, x + w, y + radius), fill=colour)
    elif shape == "bars":
        w = radius / 4
        for offset in (-2 * w, 0.0, 2 * w):
            draw.rectangle(
                (x - radius, y + offset - w / 2, x + radius, y + offset + w / 2), fill=colour
            )
    elif shape == "star":
        draw.polygon(_polygon(centre, radius, 5, angle, inner=0.45), fill=colour)
    else:
        sides = {"triangle": 3, "square": 4, "diamond": 4, "pentagon": 5, "hexagon": 6}[shape]
        turn = math.pi / 2 if shape == "diamond" else angle  # a diamond stands on a corner
        draw.polygon(_polygon(centre, radius, sides, turn), fill=colour)


# ---------------------------------------------------------------------------- layouts
def _folder(root: Path, images: Pictures) -> None:
    for c, pictures in enumerate(images):
        _save(root / class_name(c), pictures, "{i:03d}.png")


def _cub200(root: Path, images: Pictures) -> None:
    base = root / "CUB_200_2011"
    _refuse_existing(base / "images.txt")
    listing: list[str] = []
    labels: list[str] = []
    classes: list[str] = []
    for c, pictures in enumerate(images):
        folder = f"{c + 1:03d}.{class_name(c)}"
        classes.append(f"{c + 1} {folder}")
        for i, picture in enumerate(pictures):
            image_id = len(listing) + 1
            _save_one(base / "images" / folder / f"{i:03d}.png", picture)
            listing.append(f"{image_id} {folder}/{i:03d}.png")
            labels.append(f"{image_id} {c + 1}")
    for name, lines in (
        ("images.txt", listing),
        ("image_class_labels.txt", labels),
        ("classes.txt", classes),
    ):
        (base / name).write_text("\n".join(lines) + "\n")


def _cars196(root: Path, images: Pictures) -> None:
    from scipy.io import savemat

    _refuse_existing(root / "cars_annos.mat")
    paths: list[str] = []
    labels: list[int] = []
    for c, pictures in enumerate(images):
        for picture in pictures:
            path = f"car_ims/{len(paths) + 1:06d}.png"
            _save_one(root / path, picture)
            paths.append(path)
            labels.append(c + 1)
    annotations = np.zeros(len(paths), dtype=[("relative_im_path", object), ("class", object)])
    annotations["relative_im_path"] = paths
    annotations["class"] = labels
    names = np.array([class_name(c) for c in range(len(images))], dtype=object)
    savemat(
        root / "cars_annos.mat",
        {"annotations": annotations.reshape(1, -1), "class_names": names.reshape(1, -1)},
    )


def _sop(root: Path, images: Pictures) -> None:
    base = root / "Stanford_Online_Products"
    _refuse_existing(base / "Ebay_train.txt")
    header = "image_id class_id super_class_id path"
    train, test = [header], [header]
    image_id = 0
    for c, pictures in enumerate(images):
        product, super_id = c + 1, c // 2 + 1
        folder = f"{SHAPES[(c // 2) % len(SHAPES)]}{super_id}_final"
        for i, picture in enumerate(pictures):
            image_id += 1
            path = f"{folder}/{product:03d}_{i}.png"
            _save_one(base / path, picture)
            (train if c < len(images) // 2 else test).append(
                f"{image_id} {product} {super_id} {path}"
            )
    (base / "Ebay_train.txt").write_text("\n".join(train) + "\n")
    (base / "Ebay_test.txt").write_text("\n".join(test) + "\n")


def _save(folder: Path, pictures: list[PIL.Image.Image], pattern: str) -> None:
    _refuse_existing(folder / pattern.format(i=0))
    for i, picture in enumerate(pictures):
        _save_one(folder / pattern.format(i=i), picture)


def _save_one(path: Path, picture: PIL.Image.Image) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    picture.save(path)


def _refuse_existing(path: Path) -> None:
    if path.exists():
        raise ValueError(
            f"write_example_folder: {path} already exists; pass an empty or new root folder"
        )
