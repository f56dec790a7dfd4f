"""One experiment runner: a plan's factors kept as columns, and the same job function for the
lessons (in process) and a sweep's `fit:` cells (in worker processes), so their numbers agree."""

from __future__ import annotations

import json
import math
import warnings
from types import SimpleNamespace

import pandas as pd
import pytest
import torch

from dmllab.config import Config
from dmllab.experiments import Plan, Results, run_plan, run_variants, runner
from dmllab.experiments.cells import cell_name, finished_cells
from dmllab.experiments.grid import load_grid
from dmllab.experiments.sweep import run_cell

FACTORS = {
    "positives": ["random", "nearest"],
    "lsd": {"plain": {"lsd_alpha": 0.0}, "lsd": {"lsd_alpha": 2.0}},
    "geometry": ["euclidean", "cosine"],
}


def _measured(config: Config) -> float:
    """A metric with a known effect per factor and per seed (so paired differences are exact)."""
    return (
        0.5
        + 0.1 * (config.positives == "nearest")
        + 0.01 * config.lsd_alpha
        - 0.2 * (config.geometry == "cosine")
        + 0.03 * config.seed
    )


@pytest.fixture
def no_training(monkeypatch):
    monkeypatch.setattr(
        runner,
        "fit",
        lambda config, dataset=None, progress=True, **fit_options: SimpleNamespace(
            config=config, metrics={}
        ),
    )
    monkeypatch.setattr(runner, "evaluate", lambda run, **options: {"m": _measured(run.config)})


def test_a_plan_crosses_its_factors_in_order_then_the_seeds():
    jobs = Plan(FACTORS, seeds=[3, 4]).jobs()
    assert [(job.variant, job.seed) for job in jobs[:3]] == [
        ("random-plain-euclidean", 3),
        ("random-plain-euclidean", 4),
        ("random-plain-cosine", 3),
    ]
    assert len(jobs) == 16 and jobs[-1].variant == "nearest-lsd-cosine"
    assert jobs[2].levels == {"positives": "random", "lsd": "plain", "geometry": "cosine"}
    assert jobs[2].changes == {
        "positives": "random",
        "lsd_alpha": 0.0,
        "geometry": "cosine",
        "seed": 3,
    }
    named = Plan.named({"baseline": {}, "lsd": {"lsd_alpha": 2.0}}, seeds=[0])
    assert [(job.variant, job.changes) for job in named.jobs()] == [
        ("baseline", {"seed": 0}),
        ("lsd", {"lsd_alpha": 2.0, "seed": 0}),
    ]
    assert named.names == []


@pytest.mark.parametrize(
    "factors, seeds, message",
    [
        ({"loss": ["triplet"]}, [], "at least one seed"),
        ({"loss": ["triplet"]}, [0, 0], "repeat a seed"),
        ({"seed": [0, 1]}, [0], "'seed' is not a factor"),
        ({"loss": []}, [0], "has no levels"),
        ({"loss": ["triplet", "triplet"]}, [0], "lists 'triplet' twice"),
        ({"loss": "triplet"}, [0], "give a list of values or named levels"),
        ({"recipe": {"a": {"seed": 1}}}, [0], "set 'seed'"),
        ({"recipe": {"a": {"margin": 0.1}}, "margin": [0.2]}, [0], "both set 'margin'"),
        ({"variant": {"a": {}}, "loss": ["triplet"]}, [0], "'variant' names each row"),
    ],
)
def test_a_plan_refuses_an_unpaired_or_ambiguous_design(factors, seeds, message):
    with pytest.raises(ValueError, match=message):
        Plan(factors, seeds)


def test_a_factor_grid_keeps_one_column_per_factor_and_pairs_differences_across_factors(
    no_training,
):
    results = run_plan(Config(), Plan(FACTORS, seeds=[0, 1, 2]), progress=False)
    assert list(results.table.columns) == ["variant", "positives", "lsd", "geometry", "seed", "m"]
    assert results.factors == ["positives", "lsd", "geometry"] and results.metric_names() == ["m"]
    row = results.table.iloc[0]
    assert (row["variant"], row["positives"], row["lsd"], row["geometry"]) == (
        "random-plain-euclidean",
        "random",
        "plain",
        "euclidean",
    )
    nearest = results.contrasts("m", "positives", "nearest", "random")
    assert nearest == [
        ("m", f"nearest-{lsd}-{geometry}", f"random-{lsd}-{geometry}")
        for lsd in ("plain", "lsd")
        for geometry in ("euclidean", "cosine")
    ]
    claims = results.claims(nearest + results.contrasts("m", "geometry", "cosine", "euclidean"))
    assert claims["mean"].tolist() == [0.1] * 4 + [-0.2] * 4 and claims["n"].tolist() == [3] * 8
    assert results.difference(
        "m", "random-lsd-euclidean", "random-plain-euclidean"
    ).mean == pytest.approx(0.02)
    by_factor = results.summary(["m"], by=["positives"])
    assert by_factor["positives"].tolist() == ["nearest", "random"]
    assert by_factor["m_mean"].tolist() == pytest.approx([0.54, 0.44])
    with pytest.raises(ValueError, match="no variant with geometry='bregman'"):
        results.contrasts("m", "geometry", "bregman", "euclidean")
    with pytest.raises(ValueError, match="no factor 'loss'"):
        results.contrasts("m", "loss", "a", "b")


def test_levels_that_read_as_one_name_are_refused_before_training(no_training):
    with pytest.raises(ValueError, match="both make the variant name 'a-b-c'"):
        run_plan(
            Config(),
            Plan(
                {
                    "tag": {"a-b": {}, "a": {"lsd_alpha": 1.0}},
                    "kind": {"c": {}, "b-c": {"margin": 0.3}},
                },
                seeds=[0],
            ),
        )


def test_run_variants_is_the_named_plan(no_training):
    variants = {"baseline": {}, "lsd": {"lsd_alpha": 2.0}}
    results = run_variants(Config(), variants, seeds=(0, 1), progress=False)
    assert list(results.table.columns) == ["variant", "seed", "m"] and results.factors == []
    pd.testing.assert_frame_equal(
        results.table, run_plan(Config(), Plan.named(variants, [0, 1]), progress=False).table
    )


TINY = {
    "dataset": "mixture",
    "dataset_options": {"num_classes": 4, "modes_per_class": 2, "dim": 4, "per_mode": 12},
    "split": "stratified",
    "epochs": 2,
    "batches_per_epoch": 2,
    "classes_per_batch": 2,
    "samples_per_class": 3,
    "embedding_dim": 4,
}


@pytest.fixture
def swept(tmp_path, monkeypatch):
    """A `fit:` sweep's cells, each run by the sweep's own cell function in this process."""
    grid_file = tmp_path / "grid.yaml"
    grid_file.write_text(
        json.dumps(
            {
                "fit": TINY,
                "parameters": {"positives": ["random", "nearest"]},
                "seeds": [0, 1],
                "out": "out",
            }
        )
    )
    grid = load_grid(grid_file)
    threads = torch.get_num_threads()
    monkeypatch.setenv("OMP_NUM_THREADS", str(threads))  # run_cell sets it; restored afterwards
    try:
        for cell in grid.cells():
            assert run_cell((grid, cell, threads)) == (cell_name(cell), None)
    finally:
        torch.set_num_threads(threads)
    return grid


def _same(a, b):
    return a == b or (a is None and isinstance(b, float) and math.isnan(b))


def test_a_sweep_fit_cell_and_run_variants_measure_the_same_config_and_seed_alike(swept):
    base = Config.from_dict(TINY)
    results = run_variants(
        base, {p: {"positives": p} for p in ("random", "nearest")}, seeds=(0, 1), progress=False
    )
    cells, skipped = finished_cells(swept.out)
    assert len(cells) == 4 and not skipped
    for cell in cells:
        row = results.table.set_index(["variant", "seed"]).loc[
            (cell.params["positives"], cell.params["seed"])
        ]
        assert set(cell.metrics) == set(row.index)
        mismatched = [k for k, v in cell.metrics.items() if not _same(v, row[k])]
        assert not mismatched, mismatched


def test_results_from_a_sweep_folder_equal_the_same_plan_run_in_process(swept):
    from_folder = Results.from_cells(finished_cells(swept.out)[0])
    in_process = run_plan(Config.from_dict(TINY), swept.plan(), progress=False)
    assert from_folder.factors == in_process.factors == ["positives"]

    def ordered(results):
        table = results.table.sort_values(["positives", "seed"]).reset_index(drop=True)
        return table[sorted(table.columns)]

    pd.testing.assert_frame_equal(ordered(from_folder), ordered(in_process))
    metrics = ["recall@1", "map@r"]
    pd.testing.assert_frame_equal(
        from_folder.summary(metrics, by=["positives"]),
        in_process.summary(metrics, by=["positives"]),
    )
    assert (
        from_folder.readable(metrics).sort_index().equals(in_process.readable(metrics).sort_index())
    )


def test_results_from_cells_keep_parameter_values_as_given_and_read_none_as_nan():
    cells = [
        SimpleNamespace(
            params={"lr": lr, "opts": {"mu": 1}, "seed": seed},
            metrics={"recall@1": 0.5 + lr, "asymmetry": None},
        )
        for lr in (1, 0.5)
        for seed in (0, 1)
    ]
    results = Results.from_cells(cells)
    assert results.factors == ["lr", "opts"] and results.variants == ['1-{"mu":1}', '0.5-{"mu":1}']
    assert [type(v) for v in results.table["lr"]] == [int, int, float, float]
    assert results.table["asymmetry"].isna().all() and results.metric_names() == [
        "recall@1",
        "asymmetry",
    ]
    assert results.summary(["recall@1"], by=["lr"])["lr"].tolist() == [0.5, 1]


# ----------------------------------------------------------------------------- worker processes
SMALL = Config(
    dataset="digits", samples_per_class=4, epochs=2, batches_per_epoch=3, snapshot_every=1
)
TIMING = {"seconds", "images_per_s", "peak_memory_mb", "epoch_seconds"}


def _rows(run):
    return [{k: repr(v) for k, v in row.items() if k not in TIMING} for row in run.history]


def test_jobs_in_worker_processes_give_the_numbers_of_this_process_and_the_workers_stay():
    variants = {"baseline": {}, "lsd": {"lsd_alpha": 2.0}, "nearest": {"positives": "nearest"}}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # what each of the two workers gets from a 2-thread caller
    try:
        here = run_variants(SMALL, variants, seeds=(0, 1), progress=False, keep_runs=True)
    finally:
        torch.set_num_threads(threads)
    torch.set_num_threads(2)
    try:
        there = run_variants(
            SMALL, variants, seeds=(0, 1), progress=False, keep_runs=True, workers=2
        )
        pids = sorted(w.process.pid for w in runner._POOLS[2]._idle)
        # a job's own error comes back as itself, after training, and the pool survives it
        with pytest.raises(ValueError, match="ks must be a non-empty sequence"):
            run_variants(SMALL, {"baseline": {}}, seeds=(0,), progress=False, workers=2, ks=(0,))
        again = run_variants(SMALL, {"baseline": {}}, seeds=(3,), progress=False, workers=2)
        assert sorted(w.process.pid for w in runner._POOLS[2]._idle) == pids
    finally:
        torch.set_num_threads(threads)
    pd.testing.assert_frame_equal(here.table, there.table)  # the plan's order, every value
    assert list(there.runs) == list(here.runs)
    for key, run in here.runs.items():
        assert _rows(there.runs[key]) == _rows(run), key
        # what a run keeps carries no autograd graph (a worker could not send it back)
        assert not any(z.requires_grad for z in run.snapshots.values()), key
        assert not run.embed(run.data.test.x).requires_grad
        assert torch.equal(there.runs[key].model(run.data.test.x), run.model(run.data.test.x))
    alone = run_variants(SMALL, {"baseline": {}}, seeds=(3,), progress=False)
    assert alone.table["recall@1"].tolist() == again.table["recall@1"].tolist()


def test_a_warning_raised_in_a_worker_reaches_the_callers_warning_filters():
    """The second newcomer's instance: under catch_warnings(record=True) a diverging plan
    recorded its DivergenceWarnings in this process and none through workers."""
    from dmllab.guards import DivergenceWarning

    diverging = SMALL.replace(divergence="warn", lr=1e6)
    counts = []
    for workers in (1, 2):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            run_variants(diverging, {"a": {}}, seeds=(0, 1), progress=False, workers=workers)
        counts.append(sum(issubclass(w.category, DivergenceWarning) for w in caught))
    assert counts[0] > 0 and counts[1] == counts[0]
    with warnings.catch_warnings():
        warnings.simplefilter("error", DivergenceWarning)  # -W error reaches them too
        with pytest.raises(DivergenceWarning):
            run_variants(diverging, {"a": {}}, seeds=(0,), progress=False, workers=2)


def test_workers_below_one_are_refused_before_anything_trains(no_training):
    with pytest.raises(ValueError, match="workers must be at least 1"):
        run_variants(SMALL, {"baseline": {}}, seeds=(0,), workers=0)
