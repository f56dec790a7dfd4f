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
- folder:  one sub-folder per class, images anywhere inside it (every suffix Pillow opens).

Images are decoded lazily (`LazyImages`): x[idx] -> float [n, 3, S, S], S = image_size.
`max_classes` keeps that many classes spread evenly over the sorted class list (so both halves
of a standard split stay represented); `max_per_class` keeps the first images of each class in
listing order. The standard split's training classes are recorded in `meta["train_classes"]`,
which `dmllab.data.split(how="classes")` uses. `seed` is accepted and ignored.

Bad files are reported while loading, before any training. Every kept image gets the cheap
check (`dmllab.data.images.check_files`: it exists, is not empty, Pillow reads its header, a JPEG
or PNG is not cut short), on all CPU cores; `verify=True` decodes every kept image in full instead
(as training would), so files broken inside are found too. Either way a `BadImagesError` (a
ValueError) lists them all in `.bad`. A file that breaks later is handled by
`Config.on_bad_image` (`dmllab.data.transforms`).

A class that contributes no image is refused before any training (`EmptyClassesError`, naming
each class, for folders with the suffixes found there): left out, it would shift the label of
every later class. Paths in messages are shown with `dmllab.paths.printable` (any bytes in a
file name).
"""

from __future__ import annotations

import functools
import warnings
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from dmllab.data._options import optional_positive_int, positive_int
from dmllab.data.dataset import Dataset
from dmllab.data.images import MISSING, BadImageError, LazyImages, check_files, find_bad_images
from dmllab.paths import printable

#: The common image suffixes, named in messages; a folder reads every suffix Pillow opens.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
SOP_LABELS = ("product", "super")
SHOWN_BAD = 20
BROKEN_LINK = "(broken link)"
NO_SUFFIX = "(no suffix)"
LINKED_FOLDER = "(linked folder, not followed)"
MACOS_ZIP = "__MACOSX"  # the folder of resource forks a zip made on macOS holds


@functools.cache
def image_suffixes() -> frozenset[str]:
    """The file suffixes (lower case, with the dot) of every format Pillow can open and decode
    here: `PIL.Image.registered_extensions()` without the formats it only writes (.pdf, ...) and
    without those it cannot decode on this machine (`undecodable_suffixes`)."""
    from PIL import Image

    undecodable = undecodable_suffixes()
    return frozenset(
        suffix
        for suffix, kind in Image.registered_extensions().items()
        if kind in Image.OPEN and suffix not in undecodable
    )


@functools.cache
def undecodable_suffixes() -> dict[str, str]:
    """{suffix: why}: the suffixes of formats Pillow recognises but cannot decode here, so their
    files would pass the cheap header check and fail when a batch decodes them: EPS / PS without
    Ghostscript (`PIL.EpsImagePlugin.has_ghostscript()`), and the stub formats (BUFR, GRIB, HDF5,
    WMF / EMF off Windows) whose decoder is an application-installed handler that is missing."""
    from PIL import EpsImagePlugin, Image, ImageFile

    why: dict[str, str] = {}
    for suffix, kind in Image.registered_extensions().items():
        factory = Image.OPEN.get(kind, (None,))[0]
        if kind == "EPS" and not EpsImagePlugin.has_ghostscript():
            why[suffix] = "Pillow reads EPS only through Ghostscript, which is not installed"
        elif (
            isinstance(factory, type)
            and issubclass(factory, ImageFile.StubImageFile)
            and getattr(factory, "_handler", None) is None
        ):
            why[suffix] = f"Pillow has no {kind} decoder installed"
    return why


class EmptyClassesError(ValueError):
    """Classes of a dataset that contribute no image, found while loading (before any training).

    `empty` lists (class, what was found there) for each of them, all of them.
    """

    def __init__(self, name: str, where: str, empty: Sequence[tuple[str, str]], fix: str) -> None:
        self.empty = list(empty)
        lines = [f"  {printable(label)}: {found}" for label, found in self.empty[:SHOWN_BAD]]
        if len(self.empty) > SHOWN_BAD:
            lines.append(f"  ... and {len(self.empty) - SHOWN_BAD} more")
        super().__init__(
            f"dataset {name!r}: {len(self.empty)} class(es) {where} contribute no image, so they "
            "would vanish and shift the label of every later class:\n"
            + "\n".join(lines)
            + f"\n{fix}"
        )


class BadImagesError(ValueError):
    """Image files of a dataset that cannot be used, found while loading (before any training).

    `bad` lists one `BadImageError` (with `.path` and `.reason`) per file, all of them; the
    message shows the first 20.
    """

    def __init__(self, name: str, base: Path, bad: Sequence[BadImageError], total: int) -> None:
        self.bad = list(bad)
        lines = [f"  {printable(error.path)}: {error.reason}" for error in self.bad[:SHOWN_BAD]]
        if len(self.bad) > SHOWN_BAD:
            lines.append(f"  ... and {len(self.bad) - SHOWN_BAD} more")
        hint = (
            f"; if none of the listed files exist, is root {printable(base)} the folder the list "
            "files expect?"
            if any(error.reason == MISSING for error in self.bad)
            else ""
        )
        super().__init__(
            f"dataset {name!r}: {len(self.bad)} of {total} image files cannot be used:\n"
            + "\n".join(lines)
            + f"\nDelete or replace them{hint} (`dmllab verify {printable(base)} "
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
            f"dataset {name!r}: images.txt and image_class_labels.txt in {printable(base)} share "
            "no image id"
        )
    unknown = sorted({int(labels[i]) for i in ids} - set(class_ids))
    if unknown:
        raise ValueError(
            f"dataset {name!r}: {printable(base / 'image_class_labels.txt')} uses class ids "
            f"{unknown[:5]} "
            f"that {printable(base / 'classes.txt')} does not list"
        )
    unlabelled = [image_id for image_id in paths if image_id not in labels]
    if unlabelled:
        raise ValueError(
            f"dataset {name!r}: {len(unlabelled)} image(s) of {printable(base / 'images.txt')} "
            f"have no class in {printable(base / 'image_class_labels.txt')} (ids "
            f"{', '.join(unlabelled[:5])}{' ...' if len(unlabelled) > 5 else ''}); give each a "
            "class there, or remove them from images.txt"
        )
    used = {int(labels[i]) for i in ids}
    empty = [(f"{cid} {label}", "no image") for cid, label in classes if int(cid) not in used]
    if empty:
        raise EmptyClassesError(
            name,
            f"of {printable(base / 'classes.txt')}",
            empty,
            "Give them images in image_class_labels.txt, or remove them from classes.txt",
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
            f"dataset {name!r}: cannot read {printable(base / 'cars_annos.mat')} "
            f"({type(error).__name__}: "
            f"{printable(str(error))}); replace it with the original file"
        ) from error
    try:
        annotations = mat["annotations"].ravel()
        rel_paths = [str(path) for path in annotations["relative_im_path"]]
        class_ids = [int(cid) for cid in annotations["class"]]
    except (KeyError, ValueError) as error:
        raise ValueError(
            f"dataset {name!r}: {printable(base / 'cars_annos.mat')} has no 'annotations' with "
            "fields "
            "relative_im_path and class; is it the 'all images' cars_annos.mat?"
        ) from error
    distinct = sorted(set(class_ids))
    names = [str(n) for n in mat["class_names"].ravel()] if "class_names" in mat else []
    present = set(distinct)
    empty = [
        (f"{cid} {label}", "no image")
        for cid, label in enumerate(names, start=1)
        if cid not in present
    ]
    if empty:
        raise EmptyClassesError(
            name,
            f"of {printable(base / 'cars_annos.mat')} (class_names)",
            empty,
            "Use the original cars_annos.mat, whose annotations give every class its images",
        )
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

    The images of a class are the files anywhere inside its folder whose suffix Pillow opens
    and decodes here (`image_suffixes()`: .jpg, .jpeg, .jfif, .jpe, .png, .webp, .tif, ...; .eps
    only with Ghostscript installed). Hidden entries (a
    name starting with ".": macOS `._name.jpg` resource forks, `.DS_Store`,
    `.ipynb_checkpoints/`; and `__MACOSX/`, which a zip made on macOS holds) are skipped at every
    depth, class folders included. A symbolic link
    to a class folder or to a file counts; links to folders inside a class folder are not
    followed. A class folder without an image (empty, only hidden files, or only other
    suffixes) raises `EmptyClassesError` naming it with what was found there (the hidden files by
    name); other files (of suffixes Pillow does not open or cannot decode here, with the reason;
    broken links; files beside the class folders) are left out with a warning that counts them
    by suffix.
    """
    name = "folder"
    base = _root(name, root, None, None, "a folder with one sub-folder per class")
    suffixes = image_suffixes()
    entries = sorted(path for path in base.iterdir() if not _hidden(path.relative_to(base)))
    broken = [path for path in entries if _kind(path) == BROKEN_LINK]
    left_out: Counter[str] = Counter(
        _kind(path) for path in entries if not path.is_dir() and path not in broken
    )
    files: list[Path] = []
    y: list[int] = []
    names: list[str] = []
    empty = [(str(path), "a broken symbolic link") for path in broken]
    for class_dir in (path for path in entries if path.is_dir()):
        images, others, hidden = [], Counter[str](), []
        for path in sorted(class_dir.rglob("*")):
            relative = path.relative_to(class_dir)
            if _hidden(relative):
                hidden.append(relative)
                continue
            if path.is_dir() and not path.is_symlink():
                continue
            if path.is_file() and path.suffix.lower() in suffixes:
                images.append(path)
            else:
                others[_kind(path)] += 1
        if not images:
            found = _counts(others) + " (none of them a suffix Pillow opens)" if others else "empty"
            if hidden:
                found = _hidden_found(hidden, class_dir, found if others else "")
            empty.append((str(class_dir), found))
            continue
        left_out.update(others)
        y += [len(names)] * len(images)
        names.append(printable(class_dir.name))  # a name to show: any bytes as \x escapes
        files += images
    if not files:
        found = "".join(f"\n  {printable(folder)}: {what}" for folder, what in empty[:SHOWN_BAD])
        raise ValueError(
            f"dataset 'folder': no images in {printable(base)}; expected one sub-folder per class "
            f"holding image files ({', '.join(IMAGE_SUFFIXES)}), e.g. "
            f"{printable(base / 'cat' / '0001.jpg')}"
            + (f"; its folders hold no image:{found}" if found else "")
        )
    if empty:
        raise EmptyClassesError(
            name,
            f"under {printable(base)}",
            empty,
            "Delete these folders or move them out of the root, or convert their files to a "
            f"format Pillow reads ({', '.join(IMAGE_SUFFIXES)}, ...)",
        )
    if left_out:
        warnings.warn(
            f"dataset 'folder': left out {sum(left_out.values())} file(s) under {printable(base)} "
            f"that are not images in a class folder: {_counts(left_out)}; convert them to a "
            "format Pillow reads, or move them into a class folder, to use them",
            stacklevel=3,
        )
    return _finish(
        name, base, files, y, names, None, image_size, max_per_class, max_classes, verify
    )


def _kind(path: Path) -> str:
    """What a left-out entry is, for messages: its suffix (with the reason when Pillow knows the
    format but cannot decode it here), a broken link or a linked folder."""
    if path.is_symlink() and not path.exists():
        return BROKEN_LINK
    if path.is_dir():
        return LINKED_FOLDER
    suffix = path.suffix.lower()
    why = undecodable_suffixes().get(suffix)
    return f"{printable(suffix)} ({why})" if why else printable(suffix) or NO_SUFFIX


#: Hidden files named in a message about a class folder that holds nothing else.
SHOWN_HIDDEN = 5


def _hidden_found(hidden: list[Path], class_dir: Path, others: str) -> str:
    """What a class folder without an image holds, naming its hidden entries (files, or hidden
    folders when they hold no file), which are skipped by design."""
    files = [path for path in hidden if (class_dir / path).is_file()]
    named = [str(path) for path in files] or [f"{path}/" for path in hidden if len(path.parts) == 1]
    shown = ", ".join(printable(name) for name in named[:SHOWN_HIDDEN])
    shown += f", ... ({len(named)} in all)" if len(named) > SHOWN_HIDDEN else ""
    what = "files" if files else "folders"
    if others:
        return f"{others}; and hidden {what} ({shown}), which are skipped"
    return (
        f"holds only hidden {what} ({shown}), which are skipped (a name starting with '.', "
        f"or {MACOS_ZIP}, is never read): rename the images if they are real ones"
    )


def _counts(counts: Counter[str]) -> str:
    return ", ".join(f"{kind} x {count}" for kind, count in sorted(counts.items()))


def _hidden(relative: Path) -> bool:
    return any(part.startswith(".") or part == MACOS_ZIP for part in relative.parts)


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
        f"dataset {name!r}: expected {printable(base / marker)} (root should be {what}); not found"
    )


def _table(
    path: Path, columns: int, name: str, *, header: bool = False, integers: tuple[int, ...] = ()
) -> list[list[str]]:
    """The whitespace-separated rows of a list file, each with `columns` fields; the fields at
    `integers` must be integers. Any problem is a ValueError naming the file and the line."""
    if not path.is_file():
        raise ValueError(f"dataset {name!r}: expected the file {printable(path)}; not found")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(
            f"dataset {name!r}: cannot read {printable(path)} as UTF-8 text "
            f"({printable(str(error))}); is it the original list file?"
        ) from error
    numbered = [
        (number, line.split(maxsplit=columns - 1))
        for number, line in enumerate(lines, start=1)
        if line.strip() and not (header and number == 1)
    ]
    for number, row in numbered:
        if len(row) != columns:
            raise ValueError(
                f"dataset {name!r}: {printable(path)} should have {columns} columns per line; "
                f"line {number} has {len(row)}"
            )
        if not all(row[column].lstrip("-").isdigit() for column in integers):
            which = ", ".join(str(column + 1) for column in integers)
            raise ValueError(
                f"dataset {name!r}: {printable(path)} line {number}: column(s) {which} must be "
                "integers; "
                f"got {' '.join(row)!r}"
            )
    if not numbered:
        raise ValueError(
            f"dataset {name!r}: {printable(path)} should have {columns} columns per line; it is "
            "empty"
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
    bad = find_bad_images(kept) if verify else check_files(kept)
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
