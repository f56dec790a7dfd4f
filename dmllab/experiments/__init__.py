"""Experiments: a plan of variants x seeds, run one way, into one results table.

    plan.py     Plan: factors (a list of values, or named levels that set fields) x seeds -> jobs
    runner.py   run_job (one Config -> a measured Run), run_plan / run_variants (here or in workers)
    results.py  Results: one row per job, factors as columns; summary, readable, claims, contrasts
    spec.py     the one declarative reader of spec files (grids, search spaces): keys, lines, checks
    grid.py     a sweep's grid file (`notebook:` or `fit:`, parameters, seeds), checked before work
    search.py   a hyper-parameter search: a space over Config fields, variants, one budget
    tune.py     tune: one Optuna study per variant in a study database, then test-split claims
    cells.py    a sweep's cells on disk: folder names, shards, states, a folder's finished cells
    sweep.py    run_sweep: unfinished cells in worker processes (`fit:` cells through run_job)
    workers.py  worker processes that die with their parent (kept between plans by WorkerPool)

    from dmllab.experiments import Plan, run_plan, run_variants
    results = run_variants(config, {"baseline": {}, "lsd": {"lsd_alpha": 200.0}}, seeds=(0, 1, 2))

The names below are imported on first use, so that the command line and the sweep's worker
processes import torch only when they train.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dmllab import lazy

if TYPE_CHECKING:
    from dmllab.experiments.plan import Job, Plan
    from dmllab.experiments.results import Results
    from dmllab.experiments.runner import run_job, run_plan, run_variants

_HOMES = {
    "Job": "plan",
    "Plan": "plan",
    "Results": "results",
    "run_job": "runner",
    "run_plan": "runner",
    "run_variants": "runner",
}

__all__ = ["Job", "Plan", "Results", "run_job", "run_plan", "run_variants"]


__getattr__, __dir__ = lazy.attach(__name__, _HOMES)
