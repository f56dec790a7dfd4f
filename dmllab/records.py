"""Files on disk that are complete or absent, and readers that name the file they could not read.

A record (a run, a sweep cell) is written into a hidden staging folder beside its final place
and renamed into place only when every file is written and synced, so a crash leaves either the
old record, the new one, or a staging folder that nothing reads. A manifest lists each file's
SHA-256, so a reader can tell an intact record from a damaged one.
"""

from __future__ import annotations

import hashlib
import math
import os
import secrets
import shutil
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dmllab.values import BadValue, load_json


class RecordError(ValueError):
    """A record file that is missing, empty, damaged or of the wrong kind; the message names it."""


# --------------------------------------------------------------------------- writing
@contextmanager
def replacing(path: Path) -> Iterator[Path]:
    """Yield a temporary name beside `path` to write to; when the block ends without an error the
    file is synced and renamed to `path` (replacing a file or symlink there, never writing through
    it); on an error the temporary file is removed and `path` is left as it was."""
    temporary = path.with_name(f".{path.name}.partial-{os.getpid()}-{secrets.token_hex(4)}")
    try:
        yield temporary
        with open(temporary, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def json_numbers(values: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a flat dict of measurements that JSON holds faithfully: numpy and torch scalars
    become Python numbers, NaN and +-inf become None (JSON has no such numbers), the rest is kept.

    >>> json_numbers({"recall@1": 0.5, "asymmetry": float("nan"), "best_epoch": 3})
    {'recall@1': 0.5, 'asymmetry': None, 'best_epoch': 3}
    """
    out = {}
    for key, value in values.items():
        if hasattr(value, "item") and callable(value.item):  # numpy or torch scalar
            value = value.item()
        out[key] = None if isinstance(value, float) and not math.isfinite(value) else value
    return out


def staging_dir(target: Path) -> Path:
    """A new, empty, hidden folder beside `target` to build its next version in."""
    staging = target.with_name(f".{target.name}.partial-{os.getpid()}-{secrets.token_hex(4)}")
    staging.mkdir(parents=True)
    return staging


def is_staging(path: Path) -> bool:
    """Whether `path` is a staging or set-aside folder of this module (never a record)."""
    return path.name.startswith(".") and (".partial-" in path.name or ".replaced-" in path.name)


def _sync_tree(folder: Path) -> None:
    """fsync every file in `folder` and the folder itself, so a rename publishes written bytes."""
    for path in folder.rglob("*"):
        if path.is_file() and not path.is_symlink():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())
    _sync_dir(folder)


def _sync_dir(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def publish(staging: Path, target: Path) -> None:
    """Move the finished `staging` folder to `target`, replacing what was there.

    An existing `target` is renamed aside first (`.NAME.replaced-PID`) and removed afterwards; a
    crash between the two renames leaves the old version there, which `missing_record` points to.
    Raises OSError (with the file name) when the folder cannot be renamed."""
    _sync_tree(staging)
    old = None
    if target.exists() or target.is_symlink():
        old = target.with_name(f".{target.name}.replaced-{os.getpid()}-{secrets.token_hex(4)}")
        os.rename(target, old)
    os.rename(staging, target)
    _sync_dir(target.parent)
    if old is not None:
        if old.is_symlink() or not old.is_dir():
            old.unlink()
        else:
            shutil.rmtree(old)


def _file_digest(path: Path) -> str:
    """The SHA-256 of a file's bytes, in hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def manifest(folder: Path, names: list[str]) -> dict[str, str]:
    """{file name: SHA-256} for `names` inside `folder` (sorted by name)."""
    return {name: _file_digest(folder / name) for name in sorted(names)}


def damaged_files(folder: Path, expected: dict[str, str]) -> list[str]:
    """The names in a manifest whose file is missing or whose bytes changed."""
    damaged = []
    for name, digest in expected.items():
        path = folder / name
        if not path.is_file() or _file_digest(path) != digest:
            damaged.append(name)
    return damaged


# --------------------------------------------------------------------------- reading
def missing_record(directory: Path, what: str) -> RecordError:
    """The error for a record folder that is not there, pointing at a set-aside old version if
    any."""
    aside = (
        sorted(directory.parent.glob(f".{directory.name}.replaced-*"))
        if directory.parent.is_dir()
        else []
    )
    if aside:
        return RecordError(
            f"{directory}: no {what} here, but an interrupted save left the previous one in "
            f"{aside[-1]}; rename it back to {directory.name}"
        )
    return RecordError(f"{directory}: no {what} here (no such folder)")


def read_text(path: Path, what: str) -> str:
    """The text of `path`; RecordError naming the file when it is missing, unreadable or empty."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RecordError(f"{path}: the {what} is missing") from None
    except (OSError, UnicodeDecodeError) as error:
        raise RecordError(
            f"{path}: cannot read the {what} ({getattr(error, 'strerror', None) or error})"
        ) from None
    if not text.strip():
        raise RecordError(
            f"{path}: the {what} is empty (an interrupted write?); rerun to rewrite it"
        )
    return text


def read_json(path: Path, what: str, kind: type = dict) -> Any:
    """The JSON in `path` (of type `kind`); RecordError naming the file for anything else."""
    try:
        data = load_json(read_text(path, what), str(path))
    except BadValue as error:
        raise RecordError(f"{error} (the {what}; damaged or cut short?)") from None
    if not isinstance(data, kind):
        raise RecordError(
            f"{path}: the {what} should be a JSON {kind.__name__}; got {type(data).__name__}"
        )
    return data
