"""The experiment runner: a plan's jobs trained and measured one way, whoever asks.

    lsd = {"plain": {"lsd_alpha": 0.0}, "lsd": {"lsd_alpha": 200.0}}
    results = run_plan(config, Plan({"positives": ["random", "nearest"], "lsd": lsd},
                                    seeds=[0, 1, 2]))
    results.claims(results.contrasts("fine_recall@1", "positives", "nearest", "random"))

`run_job` is the one job: a Config (its seed included) trained and measured on its test split.
`run_plan` and `run_variants` run a plan's jobs in this process, or side by side in `workers`
processes that stay for the next plan (each job's result is the same either way: a job is fixed by
its Config and seed, and a worker trains with this process's threads shared out between the
workers); a sweep's `fit:` cells run the same `run_job` in worker processes
(`dmllab.experiments.sweep`), and so does `dmllab fit`.
"""

from __future__ import annotations

import atexit
import pickle
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from dmllab.config import Config
from dmllab.data.dataset import Dataset
from dmllab.distributed import is_main
from dmllab.experiments.plan import VARIANT, Plan
from dmllab.experiments.results import Results
from dmllab.experiments.workers import WorkerPool
from dmllab.metrics import evaluate
from dmllab.runs import Run
from dmllab.train import Callback, EpochCallback, fit, progress_bar


def run_job(
    config: Config,
    dataset: Dataset | None = None,
    *,
    progress: bool = False,
    callbacks: Iterable[Callback | EpochCallback] = (),
    checkpoint_dir: str | Path | None = None,
    resume: str | Path | None = None,
    **evaluate_options: Any,
) -> Run:
    """Train `config` (its seed fixes the generated data, a stratified split, the label noise and
    the initialisation; a given `dataset` wins over `config.dataset`) and measure the run on its
    test split.

    Returns the Run; its `metrics` hold what training measured (`best_epoch` under early
    stopping) updated with `evaluate(run, **evaluate_options)`. Under torchrun only rank 0
    evaluates. progress: the per-epoch bar of `fit`; checkpoint_dir, resume: as for `fit`;
    callbacks: as for `fit` (`dmllab.engine.Callback` objects, or plain f(run, epoch) called after
    every epoch with the epoch's row in `run.history[-1]`)."""
    run = fit(
        config,
        dataset,
        progress=progress,
        callbacks=callbacks,
        checkpoint_dir=checkpoint_dir,
        resume=resume,
    )
    if is_main():
        run.metrics.update(evaluate(run, **evaluate_options))
    return run


def run_plan(
    base: Config,
    plan: Plan,
    *,
    dataset: Dataset | None = None,
    keep_runs: bool = False,
    progress: bool = True,
    workers: int = 1,
    **evaluate_options: Any,
) -> Results:
    """Run every job of `plan` on `base` (`run_job`) into one Results table, in the plan's order.

    progress: one bar over the jobs (tqdm.auto: a widget in Jupyter, text on a terminal), its label
    naming the run in progress (or, with workers, the last one finished); off with progress=False
    or DMLLAB_PROGRESS=0 in the environment (`dmllab demo` sets it for the notebooks it executes).
    keep_runs: keep each Run in `results.runs[(variant, seed)]`.
    workers: train this many jobs at a time, each in a worker process (spawned once, then kept for
    the next plan of this process; small models on several cores train about `workers` times
    faster). Each worker trains with `torch.get_num_threads() // workers` threads (at least one):
    a job gives the same numbers as in this process at that many threads.
    Raises ValueError for an invalid job's Config, for two level combinations that read as one
    variant's name, and for workers < 1, before anything trains; a job's own error is raised
    here as it would be in this process (the other workers' jobs are stopped)."""
    if workers < 1:
        raise ValueError(f"workers must be at least 1 (got {workers})")
    jobs = plan.jobs()
    configs = [
        base.replace(**job.changes) for job in jobs
    ]  # every job's Config is valid, or nothing runs
    combinations: dict[str, dict[str, Any]] = {}
    for job in jobs:
        if combinations.setdefault(job.variant, job.levels) != job.levels:
            raise ValueError(
                f"levels {combinations[job.variant]} and {job.levels} both make the variant name "
                f"{job.variant!r}; rename a level so that each variant has its own name"
            )
    finished = (
        _in_this_process(jobs, configs, dataset, progress, evaluate_options)
        if workers == 1
        else _in_workers(jobs, configs, dataset, progress, workers, evaluate_options)
    )
    rows, runs = [], {}
    for job, run in zip(jobs, finished, strict=True):
        levels = {name: job.levels[name] for name in plan.names}
        rows.append({VARIANT: job.variant, **levels, "seed": job.seed, **run.metrics})
        if keep_runs:
            runs[(job.variant, job.seed)] = run
    return Results.from_rows(rows, plan.names, runs)


def _in_this_process(
    jobs: list[Any],
    configs: list[Config],
    dataset: Dataset | None,
    progress: bool,
    evaluate_options: dict[str, Any],
) -> list[Run]:
    finished = []
    bar = progress_bar(list(zip(jobs, configs, strict=True)), progress, desc="runs", leave=True)
    for job, config in bar:
        if hasattr(bar, "set_description"):
            bar.set_description(f"{job.variant}, seed {job.seed}")
        finished.append(run_job(config, dataset, **evaluate_options))
    return finished


_POOLS: dict[int, WorkerPool] = {}


def _in_workers(
    jobs: list[Any],
    configs: list[Config],
    dataset: Dataset | None,
    progress: bool,
    workers: int,
    evaluate_options: dict[str, Any],
) -> list[Run]:
    """The jobs' Runs, in the jobs' order, trained in the pool of `workers` processes."""
    if workers not in _POOLS:
        if not _POOLS:
            atexit.register(_close_pools)
        _close_pools()  # one pool at a time: a pool of another size would sit idle
        _POOLS[workers] = WorkerPool(_job_in_worker, workers)
    threads = max(1, torch.get_num_threads() // workers)
    tasks = [(i, config, dataset, threads, evaluate_options) for i, config in enumerate(configs)]
    finished: list[Run | None] = [None] * len(jobs)
    bar: Any = progress_bar(jobs, progress, desc="runs", leave=True)  # moved on by hand below
    outcomes = _POOLS[workers].map(tasks, retries=0)
    try:
        for outcome in outcomes:
            job = jobs[outcome.task[0]]
            if outcome.died is not None:
                raise RuntimeError(
                    f"the worker training {job.variant}, seed {job.seed} {outcome.died} (in a "
                    'script, call run_plan with workers under `if __name__ == "__main__":`: '
                    "each spawned worker imports the script again)"
                )
            error, run, caught = outcome.result
            for message, category, filename, lineno in caught:  # as if raised here
                warnings.warn_explicit(message, category, filename, lineno)
            if error is not None:
                raise error
            finished[outcome.task[0]] = run
            if hasattr(bar, "set_description"):
                bar.set_description(f"{job.variant}, seed {job.seed}")
                bar.update()
    finally:
        outcomes.close()  # stops the workers still training
        if hasattr(bar, "close"):
            bar.close()
    return [run for run in finished if run is not None]


def _job_in_worker(task: tuple[int, Config, Dataset | None, int, dict[str, Any]]) -> Any:
    """One job in a worker process: (None, its measured Run, warnings) or (the error it raised,
    None, warnings); the warnings it raised, as (message, category, file, line), are raised
    again in the caller's process, so its filters, `catch_warnings` and `-W error` see them."""
    _, config, dataset, threads, evaluate_options = task
    torch.set_num_threads(threads)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # the caller's filters decide
        try:
            result: tuple[Any, Any] = (None, run_job(config, dataset, **evaluate_options))
        except Exception as error:  # raised again in the caller's process, as run_job would
            try:
                pickle.dumps(error)
            except Exception:
                error = RuntimeError(f"{type(error).__name__}: {error}")
            result = (error, None)
    found = []
    for item in caught:
        category = item.category
        try:
            pickle.dumps(category)
        except Exception:
            category = UserWarning
        found.append((str(item.message), category, item.filename, item.lineno))
    return (*result, found)


def _close_pools() -> None:
    for pool in _POOLS.values():
        pool.close()
    _POOLS.clear()


def run_variants(
    base: Config,
    variants: Mapping[str, Mapping[str, Any]],
    seeds: Sequence[int] = (0, 1, 2),
    *,
    dataset: Dataset | None = None,
    keep_runs: bool = False,
    progress: bool = True,
    workers: int = 1,
    **evaluate_options: Any,
) -> Results:
    """Train `base` with each named variant's field changes for each seed and evaluate on the test
    split: `run_plan` of `Plan.named(variants, seeds)`.

    Raises ValueError for no variants, no seeds, a repeated seed (it would count one run as
    several paired seeds), a variant that sets `seed` (seeds come from `seeds`, so that every
    variant is paired with every other on the same ones) or an invalid variant, before anything
    trains."""
    if not variants:
        raise ValueError("run_variants needs at least one variant, e.g. {'baseline': {}}")
    return run_plan(
        base,
        Plan.named(variants, seeds),
        dataset=dataset,
        keep_runs=keep_runs,
        progress=progress,
        workers=workers,
        **evaluate_options,
    )
