"""Grids over machines: `--shard I/N` splits a grid's cells with no coordinator; shards share one
folder (or report several folders together) and lose nothing."""

import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dmllab import cli
from dmllab.experiments import cells as sweep_cells
from dmllab.experiments.cells import Shard
from dmllab.experiments.grid import Grid
from dmllab.locks import FolderLock
from sweep_fixtures import fake_cell, fit_recorded

values = st.one_of(st.integers(-5, 5), st.text(max_size=3), st.floats(allow_nan=False))
grids = st.builds(
    Grid,
    parameters=st.dictionaries(
        st.sampled_from(["lr", "loss", "tag"]),
        st.lists(values, min_size=1, max_size=4, unique_by=repr),
        max_size=3,
    ),
    seeds=st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=4, unique=True),
    out=st.just(None),
)


@settings(max_examples=60, deadline=None)
@given(grids, st.integers(1, 7))
def test_the_shards_cover_every_cell_exactly_once(grid, count):
    cells = grid.cells()
    owners = [[i for i in range(count) if Shard(i, count).holds(cell)] for cell in cells]
    assert all(len(shard) == 1 for shard in owners)


@settings(max_examples=40, deadline=None)
@given(grids, st.integers(2, 5), st.lists(st.integers(0, 2**32 - 1), max_size=3, unique=True))
def test_a_cell_stays_in_its_shard_when_seeds_are_added_or_the_grid_reordered(grid, count, more):
    shard_of = {sweep_cells.cell_name(c): Shard.parse(f"0/{count}").holds(c) for c in grid.cells()}
    grown = Grid(
        dict(reversed(list(grid.parameters.items()))),
        list(reversed(grid.seeds)) + [s for s in more if s not in grid.seeds],
        None,
    )
    for cell in grown.cells():
        name = sweep_cells.cell_name(cell)
        if name in shard_of:
            assert Shard(0, count).holds(cell) == shard_of[name]


@pytest.mark.parametrize("text", ["3/3", "-1/2", "1", "a/b", "1/0", "1/2/3", ""])
def test_a_bad_shard_is_refused_naming_the_form(text):
    with pytest.raises(ValueError, match="give I/N with 0 <= I < N"):
        Shard.parse(text)


FIT_GRID = """\
fit:
  dataset: mixture
  dataset_options: {num_classes: 4, modes_per_class: 1, dim: 2, per_mode: 8}
  split: stratified
  epochs: 1
  batches_per_epoch: 1
  classes_per_batch: 2
  samples_per_class: 2
  embedding_dim: 2
parameters:
  loss: [triplet, contrastive]
  margin: [0.1, 0.2]
seeds: [0, 1]
out: out
"""


@pytest.mark.slow
def test_shards_run_in_parallel_into_one_folder_lose_nothing(tmp_path):
    (tmp_path / "grid.yaml").write_text(FIT_GRID)
    shards = [
        subprocess.Popen(
            [sys.executable, "-m", "dmllab", "sweep", "grid.yaml", "--shard", f"{i}/3"],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(3)
    ]
    outputs = [shard.communicate(timeout=300)[0] for shard in shards]
    assert [shard.returncode for shard in shards] == [0, 0, 0], outputs
    assert sum(output.count("done: ") for output in outputs) == 8
    assert all("of 8 cells, 0 already done" in output for output in outputs)
    cells, skipped = sweep_cells.finished_cells(tmp_path / "out")
    assert len(cells) == 8 and skipped == []
    assert len({cell.name for cell in cells}) == 8
    assert not [p.name for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]
    again = subprocess.run(
        [sys.executable, "-m", "dmllab", "sweep", "grid.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert "8 cells, 8 already done, 0 to run" in again.stdout, again.stdout + again.stderr


def test_one_shard_never_runs_twice_and_shards_of_one_folder_split_it_one_way(tmp_path, capsys):
    (tmp_path / "grid.yaml").write_text(FIT_GRID)
    out = tmp_path / "out"
    out.mkdir()
    grid = str(tmp_path / "grid.yaml")
    with FolderLock(out, "shard 0/2 elsewhere", name=Shard(0, 2).lock_name):
        assert cli.main(["sweep", grid, "--shard", "0/2"]) == 1
        assert "in use by PID" in capsys.readouterr().err
        for other in (["--shard", "1/3"], []):
            assert cli.main(["sweep", grid, *other]) == 1
            error = capsys.readouterr().err
            assert "shard 0/2 elsewhere" in error and "splits the grid into other shards" in error
    assert list(out.iterdir()) == []


def test_the_report_merges_the_folders_that_shards_ran_into(tmp_path, capsys):
    folders = [tmp_path / "sweep-0", tmp_path / "sweep-1"]
    for seed, folder in enumerate(folders):
        for loss in ("triplet", "contrastive"):
            params = {"loss": loss, "seed": seed}
            fake_cell(folder, params, fit_recorded(epochs=1), {"recall@1": 0.5 + 0.1 * seed})
    again = {"loss": "triplet", "seed": 0}  # a shard whose folder was copied twice
    fake_cell(tmp_path / "sweep-2", again, fit_recorded(epochs=1), {"recall@1": 0.5})
    folders.append(tmp_path / "sweep-2")
    assert cli.main(["report", *map(str, folders)]) == 0
    text = capsys.readouterr().out
    assert "also finished in" in text
    assert text.count("(n=2)") == 2 and "0.550" in text
    assert (tmp_path / "results.csv").exists() and (tmp_path / "results.html").exists()
    fake_cell(tmp_path / "other", {"loss": "triplet", "seed": 3}, fit_recorded(epochs=2), {})
    assert cli.main(["report", str(folders[0]), str(tmp_path / "other")]) == 1
    assert "mixes cells of different sweeps" in capsys.readouterr().err
