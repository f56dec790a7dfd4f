"""Spec files (a sweep's grid, a search's space): read through one declarative description.

A `Schema` lists what a file holds, key by key (`Key`: its name, the reader that checks and
converts its value, its default); `Schema.read(path)` reads the YAML the lab's one way
(`dmllab.values`: YAML 1.2 core, duplicate keys refused), finds the line of every key and list
item, refuses a key the schema does not have (naming the nearest one it does), then runs each
key's reader. A reader gets the value and a `Where` (the value's place in the file); everything
it refuses is a `SpecError` "<file>:<line>: <message>" that names the key, raised before any work.

Readers shared by every spec live here: Config fields checked like the field
(`config.check_field`), lists of distinct values, seeds, flags, folder names.

    schema = Schema("grid file", (Key("fit", config_fields), Key("seeds", seeds, [0])), ...)
    values, where = schema.read("grid.yaml")
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from dmllab.config import Config, check_field
from dmllab.experiments.plan import first_repeat
from dmllab.values import BadValue, StrictLoader, load_yaml

REQUIRED = object()
"""The default of a key that a file must give."""

CONFIG_FIELDS = tuple(item.name for item in dataclasses.fields(Config))


class SpecError(BadValue):
    """A spec file (a grid, a search space) that cannot be run as it is; the message names the
    file, the line and the key at fault, and why. A ValueError."""


# --------------------------------------------------------------------------- places in a file
@dataclass(frozen=True)
class Where:
    """A value's place in a spec file: the file, the path of keys (and list positions) leading to
    it, and the lines of every such path (empty for a spec given as a Python mapping)."""

    source: str
    path: tuple[str | int, ...] = ()
    lines: Mapping[tuple[str | int, ...], int] = field(default_factory=dict)

    def at(self, *keys: str | int) -> Where:
        """The place of a key (or list position) inside this value."""
        return dataclasses.replace(self, path=(*self.path, *keys))

    @property
    def line(self) -> int | None:
        """The line of this place, else of the nearest enclosing one that has a line."""
        for end in range(len(self.path), 0, -1):
            if self.path[:end] in self.lines:
                return self.lines[self.path[:end]]
        return None

    @property
    def key(self) -> str:
        """The dotted name of this place (`space.lr.low`; list positions as `[0]`)."""
        parts: list[str] = []
        for part in self.path:
            if isinstance(part, int):
                parts[-1:] = [f"{parts[-1] if parts else ''}[{part}]"]
            else:
                parts.append(part)
        return ".".join(parts)

    def error(self, message: str) -> SpecError:
        """A SpecError "<file>:<line>: <message>" for this place (line 1 when a file's value has no
        line of its own; no line for a spec given as a mapping)."""
        line = self.line if self.line is not None else (1 if self.lines else None)
        return SpecError(f"{self.source}{f':{line}' if line is not None else ''}: {message}")


Reader = Callable[[Any, Where], Any]
"""Checks one key's value at its place and returns it (converted); raises SpecError."""


@dataclass(frozen=True)
class Key:
    """One key of a spec file: its `name`, the `read`er of its value, its `default` (REQUIRED
    when the file must give it) and what it holds, for the list of known keys."""

    name: str
    read: Reader
    default: Any = None
    help: str = ""


@dataclass(frozen=True)
class Schema:
    """What a spec file holds: its `keys`; `one_of` names keys of which exactly one is given;
    `shape` says what the file is, for a file that is not a mapping."""

    what: str
    keys: tuple[Key, ...]
    shape: str
    one_of: tuple[str, ...] = ()
    one_of_help: str = ""

    @property
    def names(self) -> list[str]:
        return sorted(key.name for key in self.keys)

    def read(self, source: str | Path | Mapping[str, Any]) -> tuple[dict[str, Any], Where]:
        """The checked values of a spec file (or of a mapping given in Python), every key present
        (missing ones at their default), and the file's `Where`.

        Raises SpecError naming the file, line and key: unreadable or invalid YAML, not a mapping,
        an unknown key, a missing or extra one of `one_of`, or a value its reader refuses."""
        data, where = _load(source, self.what)
        return self.check(data, where), where

    def check(self, data: Any, where: Where) -> dict[str, Any]:
        """The checked values of `data` found at `where` (a whole file, or a mapping inside one),
        every key present. Raises SpecError as `read` does."""
        if not isinstance(data, dict):
            if where.path:
                raise where.error(f"{where.key!r}: {self.shape}")
            raise SpecError(f"{where.source}: {self.shape}")
        for name in data:
            if name not in self.names:
                raise where.at(str(name)).error(
                    f"unknown key {name!r}{did_you_mean(str(name), self.names)}; "
                    f"a {self.what} takes: {', '.join(self.names)}"
                )
        if self.one_of and sum(name in data for name in self.one_of) != 1:
            raise where.error(self.one_of_help)
        values = {}
        for key in self.keys:
            if key.name not in data:
                if key.default is REQUIRED:
                    raise where.error(
                        f"{where.at(key.name).key!r} is missing: a {self.what} gives {key.help}"
                    )
                values[key.name] = key.default
                continue
            values[key.name] = key.read(data[key.name], where.at(key.name))
        return values


def _load(source: str | Path | Mapping[str, Any], what: str) -> tuple[Any, Where]:
    if not isinstance(source, (str, Path)):  # a spec given in Python
        return (dict(source) if isinstance(source, Mapping) else source), Where(f"the {what}")
    path = Path(source)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as error:
        raise SpecError(
            f"{path}: cannot read the {what} ({getattr(error, 'strerror', None) or error})"
        ) from error
    try:
        data = load_yaml(text, str(path))
    except BadValue as error:
        raise SpecError(str(error)) from error
    lines: dict[tuple[str | int, ...], int] = {}
    if isinstance(data, dict):
        _record_lines(yaml.compose(text, Loader=StrictLoader), (), lines)
    return data, Where(str(path), (), lines)


def _record_lines(
    node: yaml.Node | None, path: tuple[str | int, ...], lines: dict[tuple[str | int, ...], int]
) -> None:
    """The line of every mapping key and list item under `node`, by its path."""
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            where = (*path, key.value)
            lines[where] = key.start_mark.line + 1
            _record_lines(value, where, lines)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            where = (*path, i)
            lines[where] = item.start_mark.line + 1
            _record_lines(item, where, lines)


def did_you_mean(name: str, known: Sequence[str]) -> str:
    """' (did you mean X?)' for the known name closest to a misspelt one, else ''."""
    close = difflib.get_close_matches(name, known, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


# --------------------------------------------------------------------------- shared readers
def flag(value: Any, where: Where) -> bool:
    """true or false (never 'no', 0 or 'false')."""
    if not isinstance(value, bool):
        raise where.error(f"{where.key!r} must be true or false; got {value!r}")
    return value


def folder(value: Any, where: Where) -> str | None:
    """A folder name, or null for the default."""
    if not isinstance(value, (str, type(None))):
        raise where.error(f"{where.key!r} is a folder name; got {value!r}")
    return value


def text(value: Any, where: Where) -> str:
    """A file name or other text."""
    if not isinstance(value, str):
        raise where.error(f"{where.key!r} is a file name; got {value!r}")
    return value


def count(low: int, high: int) -> Reader:
    """An int (not a bool, not 2.0) in [low, high]."""

    def read(value: Any, where: Where) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise where.error(f"{where.key!r} is an integer in [{low}, {high}]; got {value!r}")
        return value

    return read


def choice(allowed: Sequence[str]) -> Reader:
    """One of the `allowed` names."""

    def read(value: Any, where: Where) -> str:
        if value not in allowed:
            raise where.error(
                f"{where.key!r} is one of: {', '.join(allowed)}; got {value!r}"
                f"{did_you_mean(str(value), allowed)}"
            )
        return value

    return read


def seeds(value: Any, where: Where) -> list[int]:
    """A non-empty list of distinct seeds, each a valid `Config.seed`."""
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(s, int) and not isinstance(s, bool) for s in value)
    ):
        raise where.error(f"{where.key!r} is a non-empty list of integers")
    for i, seed in enumerate(value):
        try:
            check_field("seed", seed)
        except BadValue as error:
            raise where.at(i).error(f"{where.key!r}: {error}") from error
    repeated = first_repeat(value)
    if repeated is not None:
        raise where.error(f"{where.key!r} lists {repeated} twice; each seed runs once")
    return value


def config_fields(value: Any, where: Where) -> dict[str, Any]:
    """A mapping of Config fields to values, each checked like the field (`check_field`); the
    cross-field checks are the caller's (it knows which Configs will be built)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise where.error(f"{where.key!r} maps Config fields to values")
    for name, item in value.items():
        check_config_value(name, item, where.at(name))
    return value


def check_config_value(name: Any, value: Any, where: Where) -> None:
    """Refuse a name that is no Config field, or a value the field refuses, at `where`."""
    if name not in CONFIG_FIELDS:
        raise where.error(f"Config has no field {name!r}{did_you_mean(str(name), CONFIG_FIELDS)}")
    try:
        check_field(name, value)
    except BadValue as error:
        raise where.error(str(error)) from error


def value_lists(value: Any, where: Where) -> dict[str, list[Any]]:
    """A mapping of names to non-empty lists of distinct values (a grid's `parameters`)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise where.error(f"{where.key!r} maps each parameter to a list of values")
    for name, listed in value.items():
        if not isinstance(listed, list) or not listed:
            raise where.at(name).error(f"parameter {name!r} needs a non-empty list of values")
        repeated = first_repeat(listed)
        if repeated is not None:
            raise where.at(name).error(
                f"parameter {name!r} lists {repeated!r} twice; each value runs once"
            )
    return value
