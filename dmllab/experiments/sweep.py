"""Running a sweep: a grid's unfinished cells in worker processes, each cell complete or absent.

`run_sweep(grid, workers, shard)` takes the output folder (`locks.FolderLock`: two sweeps never
write into one folder, but the shards of one sweep, `cells.Shard`, share it, each running its own
cells), refuses a folder that holds another grid's cells, probes that the disk takes a write,
and runs every cell of its shard that is not finished (`cells.survey`) in `workers` processes
(`workers.run_tasks`: a cell whose worker dies runs once more). A cell is built in a hidden
staging folder and renamed into place (`cells`); a `fit:` cell trains with `runner.run_job`, the
job function the lessons and tests use, and a `notebook:` cell is executed by papermill.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import traceback
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from dmllab import records
from dmllab.errors import describe
from dmllab.experiments.cells import CELL_RECORD, CellState, Shard, cell_name, survey
from dmllab.experiments.grid import Grid, GridError
from dmllab.experiments.workers import run_tasks
from dmllab.lessons import execute
from dmllab.locks import FolderBusy, FolderLock
from dmllab.paths import printable
from dmllab.records import RecordError

PROBE_BYTES = 1 << 20  # written and removed before any worker starts: a full disk fails here


def run_sweep(grid: Grid, workers: int = 1, shard: Shard | None = None) -> int:
    """Run `grid`'s unfinished cells (of `shard` only, when given) in `workers` processes, printing
    one line per cell; returns 1 when a cell failed (its folder keeps error.txt and the next sweep
    runs it again), else 0.

    The shards of one grid (`Shard(i, n)` for i < n: a cluster's array jobs) may run at the same
    time into one folder, on one machine or on several that share the folder (a file system with
    `flock`, e.g. NFSv4); a sweep without a shard is the one shard 0/1.
    Raises GridError (a ValueError) before any work for an output folder that
    cannot be written or holds another grid's cells, FolderBusy when another sweep holds it (or
    the same shard of it, or shards that split the grid another way)."""
    shard = shard or Shard()
    name = grid.path.name if grid.path is not None else str(grid.out)
    what = f"a sweep of {name}" + (f", shard {shard}" if shard.count > 1 else "")
    with ExitStack() as held:
        try:
            grid.out.mkdir(parents=True, exist_ok=True)
            held.callback(FolderLock(grid.out, what, shared=True).acquire().release)
            held.callback(FolderLock(grid.out, what, name=shard.lock_name).acquire().release)
        except OSError as error:
            raise GridError(
                f"sweep: cannot use the output folder {grid.out}: {describe(error)}"
            ) from error
        _check_other_shards(grid.out, shard)
        _check_writable(grid.out)
        states, foreign = survey(grid)
        _check_output(grid, states, foreign)
        ours = [state for state in states if shard.holds(state.cell)]
        names = None if shard.count == 1 else {state.path.name for state in ours}
        _remove_staging(grid.out, names)
        try:
            return _run_cells(
                grid, [s for s in ours if not s.finished], len(ours), workers, shard, len(states)
            )
        finally:  # what dead workers were building
            _remove_staging(grid.out, names)
    raise AssertionError("unreachable")  # pragma: no cover (mypy: ExitStack may swallow errors)


def _check_other_shards(folder: Path, shard: Shard) -> None:
    """FolderBusy when a sweep that splits the grid into another number of shards runs in
    `folder`: its cells and ours would overlap."""
    for path in sorted(folder.glob(".lock-shard-*-of-*")):
        if path.name.endswith(f"-of-{shard.count}"):
            continue
        owner = FolderLock(folder, "", name=path.name).held()
        if owner is not None:
            raise FolderBusy(
                f"{folder} is in use by {owner}, which splits the grid into other shards than "
                f"{shard}; give every shard of one folder the same N, or this one another "
                "output folder"
            )


def _run_cells(
    grid: Grid, todo: list[CellState], total: int, workers: int, shard: Shard, cells: int
) -> int:
    for state in todo:
        if state.damaged:
            print(f"  {state.path.name}: {state.damaged}; running it again", flush=True)
    which = f"shard {shard}: {total} of {cells} cells" if shard.count > 1 else f"{total} cells"
    print(
        f"sweep: {which}, {total - len(todo)} already done, {len(todo)} to run "
        f"with {workers} workers -> {grid.out}",
        flush=True,
    )
    threads = max(1, (os.cpu_count() or 1) // workers)
    failures = []
    tasks = [(grid, state.cell, threads) for state in todo]
    for outcome in run_tasks(run_cell, tasks, workers, retries=1):
        name = cell_name(outcome.task[1])
        if outcome.retrying:
            print(
                f"  worker died ({outcome.died}) while running {name}; running that cell once more",
                flush=True,
            )
            continue
        error = f"its worker died twice, last {outcome.died}" if outcome.died else outcome.result[1]
        print(
            f"  {'FAILED' if error else 'done'}: {name}" + (f" ({error})" if error else ""),
            flush=True,
        )
        if error:
            failures.append(name)
    if failures:
        print(
            f"{len(failures)} cell(s) failed; see error.txt in each; rerun the sweep to retry them"
        )
    return 1 if failures else 0


def _check_output(grid: Grid, states: list[CellState], foreign: list[str]) -> None:
    """Refuse a folder that holds another grid's results: finished cells of a different
    configuration (an edited grid) or cells this grid does not have (another sweep)."""
    stale = [s for s in states if s.stale]
    if stale:
        raise GridError(
            f"{grid.out}: {len(stale)} finished cell(s) "
            "ran with another configuration than this grid's "
            f"(e.g. {stale[0].path.name}: {stale[0].stale}); give the grid a new 'out:' folder, "
            "or delete those cells to run them again"
        )
    if foreign:
        raise GridError(
            f"{grid.out}: holds {len(foreign)} finished cell(s) that are not in this grid (e.g. "
            f"{foreign[0]}): one folder holds one sweep; give the grid a new 'out:' folder"
        )


def _check_writable(folder: Path) -> None:
    """Write, sync and remove a 1 MiB probe file in `folder`: a full, read-only or unwritable
    folder fails here, before any worker starts. Raises GridError naming the cause and file."""
    probe = folder / f".write-probe-{socket.gethostname()}-{os.getpid()}"
    try:
        with open(probe, "wb") as handle:
            handle.write(bytes(PROBE_BYTES))
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as error:
        raise GridError(
            f"sweep: cannot write {probe}: {describe(error)}; free some space or "
            "give the grid another 'out:' folder"
        ) from error
    finally:
        probe.unlink(missing_ok=True)


def _remove_staging(folder: Path, names: set[str] | None) -> None:
    """Remove staging folders that a killed sweep left behind: of the cells `names` (those of
    this shard, whose lock is held), or every one (None: a sweep that holds the whole folder)."""
    for path in folder.iterdir():
        if records.is_staging(path) and (
            names is None or re.split(r"\.(?:partial|replaced)-", path.name[1:])[0] in names
        ):
            shutil.rmtree(path, ignore_errors=True)


# --------------------------------------------------------------------------- running a cell
def run_cell(task: tuple[Grid, dict[str, Any], int]) -> tuple[str, str | None]:
    """Run one cell of a grid in this (worker) process; returns (cell folder name, None or a
    one-line error). The cell is built in a staging folder and renamed into place: finished with
    `cell.json`, or failed with `error.txt` (never counted, run again by the next sweep)."""
    grid, cell, threads = task
    os.environ["OMP_NUM_THREADS"] = str(threads)
    import torch  # after OMP_NUM_THREADS: this worker's OpenMP pool starts with that many threads

    from dmllab.experiments.runner import run_job

    torch.set_num_threads(threads)
    final = grid.out / cell_name(cell)
    staging = None
    try:
        staging = records.staging_dir(final)
        (staging / "params.json").write_text(json.dumps(cell, sort_keys=True))
        if grid.notebook is not None:
            execute(
                grid.notebook,
                staging / grid.notebook.name,
                {"quick": grid.quick, **cell, "output_dir": str(staging.resolve())},
            )
            if not (staging / "metrics.json").is_file():
                raise RecordError(f"{grid.notebook.name} wrote no metrics.json into its output_dir")
        else:
            run_job(grid.config(cell)).write_files(staging)
        files = [str(p.relative_to(staging)) for p in staging.rglob("*") if p.is_file()]
        record = {
            "params": cell,
            "recorded": grid.recorded(cell),
            "files": records.manifest(staging, files),
        }
        (staging / CELL_RECORD).write_text(json.dumps(record, indent=2, sort_keys=True))
        records.publish(staging, final)
        return final.name, None
    except Exception as error:  # reported by the parent; the cell stays unfinished
        _keep_failure(staging, final)
        message = describe(error)
        free = shutil.disk_usage(grid.out).free
        if free < PROBE_BYTES and "ENOSPC" not in message:  # torch and papermill hide a full disk
            message += f" (the disk holding {grid.out} is full: {free} bytes free)"
        return final.name, message


def _keep_failure(staging: Path | None, final: Path) -> None:
    """Publish a failed cell with its traceback in error.txt (and no completion record); on a
    full disk, where that cannot be written, remove the staging folder instead."""
    if staging is None:
        return
    try:
        (staging / CELL_RECORD).unlink(missing_ok=True)
        # a path of any bytes in the traceback is written as \x escapes, not refused
        (staging / "error.txt").write_text(printable(traceback.format_exc()))
        records.publish(staging, final)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
