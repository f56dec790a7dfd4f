"""The experiment runner: a plan's jobs trained and measured one way, whoever asks.

    lsd = {"plain": {"lsd_alpha": 0.0}, "lsd": {"lsd_alpha": 200.0}}
    results = run_plan(config, Plan({"positives": ["random", "nearest"], "lsd": lsd},
                                    seeds=[0, 1, 2]))
    results.claims(results.contrasts("fine_recall@1", "positives", "nearest", "random"))

`run_job` is the one job: a Config (its seed included) trained and measured on its test split.
The lessons and tests run a plan's jobs here in this process (`run_plan`, `run_variants`); a
sweep's `fit:` cells run the same `run_job` in worker processes (`dmllab.experiments.sweep`), and
so does `dmllab fit`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from dmllab.config import Config
from dmllab.data.dataset import Dataset
from dmllab.distributed import is_main
from dmllab.experiments.plan import VARIANT, Plan
from dmllab.experiments.results import Results
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
    **evaluate_options: Any,
) -> Results:
    """Run every job of `plan` on `base` (`run_job`), in the plan's order, into one Results table.

    progress: one bar over the jobs (tqdm.auto: a widget in Jupyter, text on a terminal), its label
    naming the run in progress; off with progress=False or DMLLAB_PROGRESS=0 in the environment
    (`dmllab demo` sets it for the notebooks it executes). keep_runs: keep each Run in
    `results.runs[(variant, seed)]`.
    Raises ValueError for an invalid job's Config, and for two level combinations that read as one
    variant's name, before anything trains."""
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
    rows, runs = [], {}
    bar = progress_bar(list(zip(jobs, configs, strict=True)), progress, desc="runs", leave=True)
    for job, config in bar:
        if hasattr(bar, "set_description"):
            bar.set_description(f"{job.variant}, seed {job.seed}")
        run = run_job(config, dataset, **evaluate_options)
        levels = {name: job.levels[name] for name in plan.names}
        rows.append({VARIANT: job.variant, **levels, "seed": job.seed, **run.metrics})
        if keep_runs:
            runs[(job.variant, job.seed)] = run
    return Results.from_rows(rows, plan.names, runs)


def run_variants(
    base: Config,
    variants: Mapping[str, Mapping[str, Any]],
    seeds: Sequence[int] = (0, 1, 2),
    *,
    dataset: Dataset | None = None,
    keep_runs: bool = False,
    progress: bool = True,
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
        **evaluate_options,
    )
