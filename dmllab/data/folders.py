"""Standard deep-metric-learning image datasets read from a local folder (never downloaded).

Layouts (see data/README.md):
- cub200:  CUB_200_2011/ with images.txt, image_class_labels.txt, classes.txt and images/;
           standard split: the first 100 of the 200 sorted classes train.
- cars196: the folder with cars_annos.mat and car_ims/ (the "all images" Stanford Cars release
           used by DML papers); standard split: the first 98 of the 196 sorted classes train.
- sop:     Stanford_Online_Products/ with Ebay_train.txt, Ebay_test.txt and the image folders;
           standard split: the classes of Ebay_train.txt (11,318) train, Ebay_test.txt's test.
           labels="product" (default) trains on the 22,634 products; labels="super" on the 12
           super-classes with `sub` = the product.
- folder:  one sub-folder per class, images anywhere inside it.

Images are decoded lazily (`LazyImages`): x[idx] -> float [n, 3, S, S], S = image_size.
`max_classes` keeps that many classes spread evenly over the sorted class list (so both halves
of a standard split stay represented); `max_per_class` keeps the first images of each class in
listing order. The standard split's training classes are recorded in `meta["train_classes"]`,
which `dmllab.data.split(how="classes")` uses. `seed` is accepted and ignored.

Bad files are reported while loading, before any training: every listed image must exist, and
`verify=True` decodes every kept image in full (as training would, on all CPU cores) so truncated,
unreadable or refused files are found too. Either way a `BadImagesError` (a ValueError) lists
them all in `.bad`. Without `verify`, a file that breaks later raises `BadImageError` naming it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from dmllab.data._options import optional_positive_int, positive_int
from dmllab.data.dataset import Dataset
from dmllab.data.images import MISSING, BadImageError, LazyImages, find_bad_images

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
SOP_LABELS = ("product", "super")
SHOWN_BAD = 20


class BadImagesError(ValueError):
    """Image files of a dataset that cannot be used, found while loading (before any training).

    `bad` lists one `BadImageError` (with `.path` and `.reason`) per file, all of them; the
    message shows the first 20.
    """

    def __init__(self, name: str, base: Path, bad: Sequence[BadImageError], total: int) -> None:
        self.bad = list(bad)
        lines = [f"  {error.path}: {error.reason}" for error in self.bad[:SHOWN_BAD]]
        if len(self.bad) > SHOWN_BAD:
            lines.append(f"  ... and {len(self.bad) - SHOWN_BAD} more")
        hint = (
            f"; if none of the listed files exist, is root {base} the folder the list files expect?"
            if any(error.reason == MISSING for error in self.bad)
            else ""
        )
        super().__init__(
            f"dataset {name!r}: {len(self.bad)} of {total} image files cannot be used:\n"
            + "\n".join(lines)
            + f"\nDelete or replace them{hint} (`dmllab verify {base} "
            f"--layout {name}` lists them all"
        )


def cub200(
    *,
    seed: int = 0,
    root: str | Path | None = None,
    image_size: int = 64,
    max_per_class: int | None = None,
    max_classes: int | None = None,
    verify: bool = False,
) -> Dataset:
    """CUB-200-2011 birds (200 classes, 11,788 images); y = class position in classes.txt order."""
    name = "cub200"
    base = _root(name, root, "images.txt", "CUB_200_2011", "the CUB_200_2011 folder")
    classes = _table(base / "classes.txt", 2, name, integers=(0,))
    class_ids = [int(row[0]) for row in classes]
    names = [row[1] for row in classes]
    paths = dict(_table(base / "images.txt", 2, name))
    labels = dict(_table(base / "image_class_labels.txt", 2, name, integers=(1,)))
    position = {cid: i for i, cid in enumerate(sorted(class_ids))}
    ids = [image_id for image_id in paths if image_id in labels]
    if not ids:
        raise ValueError(
            f"dataset {name!r}: images.txt and image_class_labels.txt in {base} share no image id"
        )
    unknown = sorted({int(labels[i]) for i in ids} - set(class_ids))
    if unknown:
        raise ValueError(
            f"dataset {name!r}: {base / 'image_class_labels.txt'} uses class ids {unknown[:5]} "
            f"that {base / 'classes.txt'} does not list"
        )
    y = [position[int(labels[image_id])] for image_id in ids]
    files = [base / "images" / paths[image_id] for image_id in ids]
    by_position = [names[class_ids.index(cid)] for cid in sorted(class_ids)]
    return _finish(
        name,
        base,
        files,
        y,
        by_position,
        _first_half(len(class_ids)),
        image_size,
        max_per_class,
        max_classes,
        verify,
    )


def cars196(
    *,
    seed: int = 0,
    root: str | Path | None = None,
    image_size: int = 64,
    max_per_class: int | None = None,
    max_classes: int | None = None,
    verify: bool = False,
) -> Dataset:
    """Stanford Cars (196 classes, 16,185 images) from cars_annos.mat + car_ims/."""
    from scipy.io import loadmat

    name = "cars196"
    base = _root(
        name, root, "cars_annos.mat", "cars196", "the folder holding cars_annos.mat and car_ims/"
    )
    try:
        mat = loadmat(base / "cars_annos.mat", squeeze_me=True)
    except Exception as error:  # scipy raises several types for a damaged .mat; all mean the same
        raise ValueError(
            f"dataset {name!r}: cannot read {base / 'cars_annos.mat'} ({type(error).__name__}: "
            f"{error}); replace it with the original file"
        ) from error
    try:
        annotations = mat["annotations"].ravel()
        rel_paths = [str(path) for path in annotations["relative_im_path"]]
        class_ids = [int(cid) for cid in annotations["class"]]
    except (KeyError, ValueError) as error:
        raise ValueError(
            f"dataset {name!r}: {base / 'cars_annos.mat'} has no 'annotations' with fields "
            "relative_im_path and class; is it the 'all images' cars_annos.mat?"
        ) from error
    distinct = sorted(set(class_ids))
    names = [str(n) for n in mat["class_names"].ravel()] if "class_names" in mat else []
    names = [names[cid - 1] if 0 < cid <= len(names) else str(cid) for cid in distinct]
    position = {cid: i for i, cid in enumerate(distinct)}
    return _finish(
        name,
        base,
        [base / path for path in rel_paths],
        [position[c] for c in class_ids],
        names,
        _first_half(len(distinct)),
        image_size,
        max_per_class,
        max_classes,
        verify,
    )


def sop(
    *,
    seed: int = 0,
    root: str | Path | None = None,
    image_size: int = 64,
    max_per_class: int | None = None,
    max_classes: int | None = None,
    labels: str = "product",
    verify: bool = False,
) -> Dataset:
    """Stanford Online Products (22,634 products in 12 super-classes, 120,053 images).

    labels="product": y = product, `meta["super_class_of"]` = {product label: super-class label}.
    labels="super":   y = super-class, `sub` = product (a real-data class-collapse lesson); the
                      standard product split does not apply, so split by super-class or stratified.
    """
    name = "sop"
    if labels not in SOP_LABELS:
        raise ValueError(
            f"dataset 'sop': option labels must be one of {', '.join(SOP_LABELS)}; got {labels!r}"
        )
    base = _root(
        name,
        root,
        "Ebay_train.txt",
        "Stanford_Online_Products",
        "the Stanford_Online_Products folder",
    )
    rows = []
    train_ids = set()
    for file in ("Ebay_train.txt", "Ebay_test.txt"):
        table = _table(base / file, 4, name, header=True, integers=(1, 2))
        rows += table
        if file == "Ebay_train.txt":
            train_ids = {int(row[1]) for row in table}
    products = sorted({int(row[1]) for row in rows})
    position = {pid: i for i, pid in enumerate(products)}
    supers = sorted({int(row[2]) for row in rows})
    super_position = {sid: i for i, sid in enumerate(supers)}
    y = [position[int(row[1])] for row in rows]
    coarse = [super_position[int(row[2])] for row in rows]
    super_names = {
        super_position[int(row[2])]: row[3].split("/")[0].removesuffix("_final") for row in rows
    }
    train = [position[pid] for pid in sorted(train_ids)]
    dataset = _finish(
        name,
        base,
        [base / row[3] for row in rows],
        y,
        [str(p) for p in products],
        train,
        image_size,
        max_per_class,
        max_classes,
        verify,
        sub=coarse,
    )
    coarse_ids = dataset.sub
    assert coarse_ids is not None  # _finish was given sub=coarse
    super_of = dict(zip(dataset.y.tolist(), coarse_ids.tolist(), strict=True))
    meta = {
        **dataset.meta,
        "super_class_names": [super_names[i] for i in sorted(super_names)],
        "labels": labels,
    }
    if labels == "product":
        return Dataset(
            x=dataset.x,
            y=dataset.y,
            image_shape=dataset.image_shape,
            name=name,
            meta={**meta, "super_class_of": super_of},
        )
    meta.pop("train_classes")
    return Dataset(
        x=dataset.x,
        y=coarse_ids,
        sub=dataset.y,
        image_shape=dataset.image_shape,
        name=name,
        meta=meta,
    )


def folder(
    *,
    seed: int = 0,
    root: str | Path | None = None,
    image_size: int = 64,
    max_per_class: int | None = None,
    max_classes: int | None = None,
    verify: bool = False,
) -> Dataset:
    """Any image folder with one sub-folder per class (sorted folder names -> labels 0, 1, ...).

    Hidden entries (a name starting with ".": macOS `._name.jpg` resource forks, `.DS_Store`,
    `.ipynb_checkpoints/`) are skipped at every depth, class folders included.
    """
    name = "folder"
    base = _root(name, root, None, None, "a folder with one sub-folder per class")
    class_dirs = sorted(
        path for path in base.iterdir() if path.is_dir() and not path.name.startswith(".")
    )
    files: list[Path] = []
    y: list[int] = []
    names: list[str] = []
    for class_dir in class_dirs:
        images = sorted(
            path
            for path in class_dir.rglob("*")
            if path.suffix.lower() in IMAGE_SUFFIXES
            and path.is_file()
            and not _hidden(path.relative_to(class_dir))
        )
        if images:
            y += [len(names)] * len(images)
            names.append(class_dir.name)
            files += images
    if not files:
        raise ValueError(
            f"dataset 'folder': no images in {base}; expected one sub-folder per class holding "
            f"image files ({', '.join(IMAGE_SUFFIXES)}), e.g. {base / 'cat' / '0001.jpg'}"
        )
    return _finish(
        name, base, files, y, names, None, image_size, max_per_class, max_classes, verify
    )


def _hidden(relative: Path) -> bool:
    return any(part.startswith(".") for part in relative.parts)


def _root(name: str, root: Any, marker: str | None, subdir: str | None, what: str) -> Path:
    """The dataset folder: `root` itself, or `root/subdir` when the marker file sits there."""
    if root is None:
        raise ValueError(
            f"dataset {name!r} reads local files: pass dataset_options={{'root': <path>}} "
            f"pointing at {what} (see data/README.md for the layout)"
        )
    base = Path(root).expanduser()
    if not base.is_dir():
        raise ValueError(
            f"dataset {name!r}: root {str(base)!r} is not a folder; point it at {what}"
        )
    if marker is None or (base / marker).is_file():
        return base
    if subdir is not None and (base / subdir / marker).is_file():
        return base / subdir
    raise ValueError(
        f"dataset {name!r}: expected {base / marker} (root should be {what}); not found"
    )


def _table(
    path: Path, columns: int, name: str, *, header: bool = False, integers: tuple[int, ...] = ()
) -> list[list[str]]:
    """The whitespace-separated rows of a list file, each with `columns` fields; the fields at
    `integers` must be integers. Any problem is a ValueError naming the file and the line."""
    if not path.is_file():
        raise ValueError(f"dataset {name!r}: expected the file {path}; not found")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(
            f"dataset {name!r}: cannot read {path} as UTF-8 text ({error}); is it the "
            "original list file?"
        ) from error
    numbered = [
        (number, line.split(maxsplit=columns - 1))
        for number, line in enumerate(lines, start=1)
        if line.strip() and not (header and number == 1)
    ]
    for number, row in numbered:
        if len(row) != columns:
            raise ValueError(
                f"dataset {name!r}: {path} should have {columns} columns per line; "
                f"line {number} has {len(row)}"
            )
        if not all(row[column].lstrip("-").isdigit() for column in integers):
            which = ", ".join(str(column + 1) for column in integers)
            raise ValueError(
                f"dataset {name!r}: {path} line {number}: column(s) {which} must be integers; "
                f"got {' '.join(row)!r}"
            )
    if not numbered:
        raise ValueError(
            f"dataset {name!r}: {path} should have {columns} columns per line; it is empty"
        )
    return [row for _, row in numbered]


def _first_half(num_classes: int) -> list[int]:
    return list(range(num_classes // 2))


def _finish(
    name: str,
    base: Path,
    files: Sequence[Path],
    y: Sequence[int],
    class_names: Sequence[str],
    train_classes: Sequence[int] | None,
    image_size: int,
    max_per_class: int | None,
    max_classes: int | None,
    verify: bool,
    *,
    sub: Sequence[int] | None = None,
) -> Dataset:
    positive_int(name, "image_size", image_size)
    if not isinstance(verify, bool):
        raise ValueError(f"dataset {name!r}: option verify must be True or False; got {verify!r}")
    optional_positive_int(name, "max_per_class", max_per_class)
    optional_positive_int(name, "max_classes", max_classes)
    labels = torch.tensor(list(y), dtype=torch.long)
    keep = torch.ones(len(labels), dtype=torch.bool)
    if max_classes is not None:
        present = torch.unique(labels)
        spots = torch.linspace(0, len(present) - 1, min(max_classes, len(present))).round().long()
        keep &= torch.isin(labels, present[spots])
    if max_per_class is not None:
        order = torch.argsort(labels, stable=True)
        _, counts = torch.unique_consecutive(labels[order], return_counts=True)
        rank = torch.arange(len(labels)) - (counts.cumsum(0) - counts).repeat_interleave(counts)
        within = torch.empty_like(rank)
        within[order] = rank
        keep &= within < max_per_class
    index = keep.nonzero().flatten().tolist()
    kept = [files[i] for i in index]
    bad = (
        find_bad_images(kept)
        if verify
        else [BadImageError(path, MISSING) for path in kept if not Path(path).is_file()]
    )
    if bad:
        raise BadImagesError(name, base, bad, len(kept))
    labels = labels[keep]
    meta: dict[str, Any] = {"root": str(base), "class_names": list(class_names)}
    if train_classes is not None:
        present = set(torch.unique(labels).tolist())
        meta["train_classes"] = [c for c in train_classes if c in present]
    # class id i is named class_names[i] (the folder's or the annotations' name): tables and
    # plots show it instead of the id
    named = len(class_names) > 0 and (len(labels) == 0 or int(labels.max()) < len(class_names))
    return Dataset(
        x=LazyImages(kept, image_size),
        y=labels,
        sub=None if sub is None else torch.tensor(list(sub), dtype=torch.long)[keep],
        image_shape=(3, image_size, image_size),
        name=name,
        meta=meta,
        class_names=tuple(class_names) if named else None,
    )
