"""Sweep cells on disk: one folder per cell of a grid, complete or absent, and the results they
hold.

Each cell gets the folder `OUT/<readable>-<hash>`: the readable part shows the parameters, the
hash (of their JSON) keeps different values apart, and `params.json` inside holds them exactly. A
cell is built in a hidden staging folder and renamed into place; it is finished only when it
holds `cell.json` (written last): the cell's parameters, the configuration it ran with (every
Config field, or the notebook's name, defaults and parameters) and the SHA-256 of each file. A
cell counts only when that record is intact and its configuration equals the grid's; a failed
cell keeps its `error.txt` and is run again.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dmllab import records
from dmllab.config import Config
from dmllab.experiments.grid import Grid, GridError
from dmllab.records import RecordError
from dmllab.values import BadValue, canonical

CELL_RECORD = "cell.json"


# --------------------------------------------------------------------------- cell folders
def cell_name(cell: dict[str, Any]) -> str:
    """`<readable>-<hash>`: the parameters in a file-name-safe form, then 12 hex digits of the
    SHA-256 of their JSON, so values that read alike ('a b', 'a/b', 'a_b') get their own folders."""
    readable = ",".join(f"{k}={_short(cell[k])}" for k in sorted(cell))
    readable = re.sub(r"[^A-Za-z0-9_.,=-]+", "_", readable).strip("._")[:80]
    return f"{readable}-{_cell_hash(cell)[:12]}"


def _short(value: Any) -> str:
    return value if isinstance(value, str) else canonical(value)


def _cell_hash(cell: dict[str, Any]) -> str:
    return hashlib.sha256(canonical(cell).encode()).hexdigest()


# --------------------------------------------------------------------------- shards
@dataclass(frozen=True)
class Shard:
    """Share `index` of `count` of a grid's cells (0 <= index < count), for a cluster's array
    jobs: `dmllab sweep grid.yaml --shard $SLURM_ARRAY_TASK_ID/4` on `--array=0-3`.

    A cell belongs to shard SHA-256(its parameters and seed, as JSON) mod `count`: it depends on
    nothing but the cell itself, so reordering the grid, adding values or adding seeds leaves
    every existing cell in its shard (changing `count` moves them). Every cell is in exactly one
    shard; shards are balanced on average, not exactly."""

    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if not (
            isinstance(self.index, int)
            and isinstance(self.count, int)
            and 0 <= self.index < self.count
        ):
            raise BadValue(
                f"shard {self.index}/{self.count}: give I/N with 0 <= I < N "
                "(e.g. --shard $SLURM_ARRAY_TASK_ID/4 for --array=0-3)"
            )

    @classmethod
    def parse(cls, text: str) -> Shard:
        """`I/N` as a Shard; BadValue for anything else."""
        index, slash, count = text.partition("/")
        if not (slash and index.strip().isdigit() and count.strip().isdigit()):
            raise BadValue(
                f"shard {text!r}: give I/N with 0 <= I < N "
                "(e.g. --shard $SLURM_ARRAY_TASK_ID/4 for --array=0-3)"
            )
        return cls(int(index), int(count))

    def holds(self, cell: dict[str, Any]) -> bool:
        """Whether `cell` (its parameters and seed) is in this shard."""
        return int(_cell_hash(cell), 16) % self.count == self.index

    @property
    def lock_name(self) -> str:
        """The lock file that one process running this shard of a folder holds."""
        return f".lock-shard-{self.index}-of-{self.count}"

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


@dataclass
class CellState:
    """A grid cell's folder: `finished` (intact and of this grid's configuration), or why not."""

    cell: dict[str, Any]
    path: Path
    finished: bool = False
    stale: str | None = None  # finished with another configuration: the first difference
    damaged: str | None = None  # finished, but a file changed or went missing since


def _read_cell(folder: Path) -> dict[str, Any] | None:
    """A finished cell's record (`params`, `recorded`, `files`), or None when the folder holds no
    finished cell. Raises RecordError naming the file when the record is damaged."""
    path = folder / CELL_RECORD
    if not path.exists():
        return None
    record = records.read_json(path, "cell's completion record")
    missing = {"params", "recorded", "files"} - set(record)
    if missing:
        raise RecordError(
            f"{path}: the cell's completion record has no {', '.join(sorted(missing))}"
        )
    return record


def survey(grid: Grid) -> tuple[list[CellState], list[str]]:
    """Each grid cell's state, and the names of finished cells in `grid.out` not in this grid."""
    states = []
    for cell in grid.cells():
        state = CellState(cell, grid.out / cell_name(cell))
        try:
            record = _read_cell(state.path)
        except RecordError as error:
            state.damaged = str(error)
            record = None
        if record is not None:
            changed = records.damaged_files(state.path, record["files"])
            if changed:
                state.damaged = f"{', '.join(changed)} changed or missing since it finished"
            elif completed(record["recorded"]) != grid.recorded(cell):
                state.stale = difference(completed(record["recorded"]), grid.recorded(cell))
            else:
                state.finished = True
        states.append(state)
    names = {state.path.name for state in states}
    foreign = sorted(
        p.name
        for p in grid.out.iterdir()
        if p.is_dir()
        and p.name not in names
        and not records.is_staging(p)
        and (p / CELL_RECORD).exists()
    )
    return states, foreign


def completed(recorded: dict[str, Any]) -> dict[str, Any]:
    """A cell's recorded configuration with a `fit:` Config's fields added since it ran at their
    defaults (`Config.completed`): a cell of before a new field is not stale for that field."""
    if isinstance(recorded.get("fit"), dict):
        return {**recorded, "fit": Config.completed(recorded["fit"])}
    return recorded


def difference(old: Any, new: Any, where: str = "") -> str:
    """The first place two recorded configurations differ, as 'where: old -> new' (a sweep's
    cells, a study's search), or 'where: added' / 'where: removed' for a key one of them lacks
    (its value is not dumped).

    >>> difference({"space": {"lr": {"high": 0.1}}}, {"space": {"lr": {"high": 0.2}, "m": {}}})
    'space.lr.high: 0.1 -> 0.2'
    >>> difference({"a": 1}, {"a": 1, "b": {"low": 0}})
    'b: added'
    """
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new)):
            here = f"{where}.{key}" if where else key
            if key not in old or key not in new:
                return f"{here}: {'added' if key not in old else 'removed'}"
            if canonical(old[key]) != canonical(new[key]):
                return difference(old[key], new[key], here)
    return f"{where}: {canonical(old)} -> {canonical(new)}"


# --------------------------------------------------------------------------- reading results
@dataclass
class Finished:
    """One finished, intact cell of a sweep folder: its parameters, metrics and configuration."""

    name: str
    params: dict[str, Any]
    metrics: dict[str, Any]
    recorded: dict[str, Any]


def finished_cells(directory: Path) -> tuple[list[Finished], list[str]]:
    """The finished, intact cells in a sweep folder, and one line per cell folder left out (no
    completion record: unfinished or failed; a file changed since; a damaged record).

    Raises GridError when the finished cells come from different sweeps (other parameters, or
    another base configuration): one table never mixes them."""
    cells, skipped = [], []
    for folder in sorted(
        p for p in directory.iterdir() if p.is_dir() and not p.name.startswith(".")
    ):
        if not (folder / CELL_RECORD).exists() and not (folder / "params.json").exists():
            continue
        try:
            record = _read_cell(folder)
            if record is None:
                skipped.append(
                    f"{folder.name}: not finished (failed, running or killed; no {CELL_RECORD})"
                )
                continue
            changed = records.damaged_files(folder, record["files"])
            if changed:
                skipped.append(
                    f"{folder.name}: {', '.join(changed)} changed or missing since it finished"
                )
                continue
            metrics = records.read_json(folder / "metrics.json", "cell's metrics")
        except RecordError as error:
            skipped.append(str(error))
            continue
        cells.append(
            Finished(folder.name, record["params"], metrics, completed(record["recorded"]))
        )
    _check_one_sweep(directory, cells)
    return cells, skipped


def finished_cells_of(directories: Sequence[Path]) -> tuple[list[Finished], list[str]]:
    """The finished cells of one sweep whose shards ran into several folders (`finished_cells` of
    each, in order), and one line per cell folder left out; a cell finished in two folders (a
    shard run twice, folders copied together) counts once, from the first folder.

    Raises GridError when the cells come from different sweeps."""
    cells: list[Finished] = []
    skipped: list[str] = []
    seen: dict[str, Path] = {}
    for directory in directories:
        found, left_out = finished_cells(directory)
        skipped += [f"{directory}/{line}" if len(directories) > 1 else line for line in left_out]
        for cell in found:
            if cell.name in seen:
                skipped.append(f"{directory}/{cell.name}: also finished in {seen[cell.name]}")
                continue
            seen[cell.name] = directory
            cells.append(cell)
    if len(directories) > 1:
        _check_one_sweep(Path(", ".join(map(str, directories))), cells)
    return cells, skipped


def _base(cell: Finished) -> dict[str, Any]:
    """A cell's configuration without its own parameters: equal for every cell of one sweep."""
    recorded = json.loads(canonical(cell.recorded))
    for part in ("fit", "parameters"):
        for name in cell.params:
            recorded.get(part, {}).pop(name, None)
    return recorded


def _check_one_sweep(directory: Path, cells: list[Finished]) -> None:
    if not cells:
        return
    first = cells[0]
    for cell in cells[1:]:
        if sorted(cell.params) != sorted(first.params):
            raise GridError(
                f"{directory} mixes cells of different sweeps ({first.name} varies "
                f"{', '.join(sorted(first.params))}; "
                f"{cell.name} varies {', '.join(sorted(cell.params))}); "
                "report each sweep's folder on its own"
            )
        if canonical(_base(cell)) != canonical(_base(first)):
            raise GridError(
                f"{directory} mixes cells of different sweeps "
                f"({first.name} and {cell.name} differ in "
                f"{difference(_base(first), _base(cell))}); report each sweep's folder on its own"
            )
