"""Tuning: one Optuna study per variant of a search, in a real study database, then the best
configuration of each variant retrained over seeds and compared on the test split.

    tuned = tune("search.yaml", workers=2)      # the same as `dmllab tune search.yaml --workers 2`
    tuned.best                                  # variant -> its best searched values
    tuned.results.claims(tuned.comparisons("map@r"))   # test metrics, paired by seed

Fair comparisons (Musgrave, Belongie, Lim, "A Metric Learning Reality Check", ECCV 2020): every
variant gets a study with the same budget (`Search.trials` finished trials: complete or pruned;
a failed trial is not counted), its best configuration among its first `trials` finished trials
is retrained on the search's `seeds` and measured once on the test split, and variants are
compared by paired per-seed differences (`Results.difference`, `dmllab.claims`).

The study database: an SQLite file `OUT/study.db` by default (nothing to start; `optuna-dashboard
sqlite:///OUT/study.db` shows it), or any SQLAlchemy URL (`postgresql+psycopg://...`) that
workers on many machines share: each runs `tune` with the same search and storage, and every
worker takes the next trial of the same study. A study is resumed by running the same search
again: finished trials are kept once, a raised `trials` continues the same study, a study run
with another search is refused. A trial whose worker died (killed, a lost machine) stops sending
heartbeats; after `2 x heartbeat` seconds it is marked failed (never counted) and retried with
the same values
(`optuna.storages.RetryHeartbeatStaleTrialCallback`).

Sampling is pinned, so that a study never changes with Optuna's defaults: TPE with the search's
`sampler_seed` and `startup_trials`, univariate, with the constant liar for parallel workers. A
worker's sampler is seeded by (sampler_seed, worker, trials already in the study), so parallel
or resumed workers draw fresh values; a study run by one worker from scratch is reproducible.
The pruner (`median`: Optuna's MedianPruner after PRUNER_STARTUP trials and PRUNER_WARMUP
epochs) reads the validation metric of every epoch through `fit`'s callbacks and stops a
hopeless trial by raising `optuna.TrialPruned` there.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import secrets
import signal
import socket
import sys
import threading
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dmllab import records
from dmllab.errors import describe
from dmllab.experiments.plan import VARIANT
from dmllab.experiments.results import Results
from dmllab.experiments.search import Search, load_search, score
from dmllab.experiments.spec import SpecError
from dmllab.experiments.workers import run_tasks
from dmllab.values import BadValue, canonical

if TYPE_CHECKING:
    import optuna

    from dmllab.runs import Run

STUDY_FILE = "study.db"
HEARTBEAT_SECONDS = 30
PRUNER_STARTUP = 3  # trials completed before the median pruner stops any
PRUNER_WARMUP = 1  # epochs of a trial before it may be pruned
POLL_SECONDS = 1.0  # how often a waiting worker and the progress bars look at the database
SCHEMA_TRIES = 5  # tries to open a database whose tables another worker is making
REPRODUCTIONS = "reproductions"


class StudyMismatch(SpecError):
    """The study database holds a study of this name that was run with another search."""


class StorageError(BadValue):
    """A study database URL that cannot be used here: an unknown scheme, a driver that is not
    installed, or text that is no URL; the message names the URL (password hidden), the schemes
    that work and what to install."""


STORAGE_SCHEMES = (
    "sqlite:///FILE (built in), postgresql+psycopg://USER@HOST/DB (psycopg), or "
    "mysql+pymysql://USER@HOST/DB (pip install pymysql)"
)


@dataclass
class Tuned:
    """What `tune` found: the `best` searched values of each variant (among the first
    `search.trials` finished trials of its study), their validation scores `best_values`, and
    the test metrics of each best configuration retrained on `search.seeds` (`results`, one row
    per variant and seed; None when the search was stopped before the studies finished)."""

    search: Search
    storage: str
    best: dict[str, dict[str, Any]]
    best_values: dict[str, float]
    results: Results | None
    stopped: bool = False

    def comparisons(self, metric: str) -> list[tuple[str, str, str]]:
        """(metric, variant, first variant) for every other variant: the claims to read."""
        first, *others = list(self.search.variants)
        return [(metric, other, first) for other in others]

    def studies(self) -> dict[str, optuna.Study]:
        """Each variant's study, loaded from the database."""
        import optuna

        return {
            variant: optuna.load_study(
                study_name=self.search.study_name(variant), storage=self.storage
            )
            for variant in self.search.variants
        }


# --------------------------------------------------------------------------- the database
def storage_url(search: Search, storage: str | None = None) -> str:
    """`storage` (an SQLAlchemy URL), or the SQLite file `search.out/study.db`."""
    return storage or f"sqlite:///{(search.out / STUDY_FILE).resolve()}"


def _storage(url: str, heartbeat: int) -> optuna.storages.RDBStorage:
    """The study database at `url`, with heartbeats every `heartbeat` seconds and stale trials
    retried; its tables are made when absent (waiting for another worker making them)."""
    import optuna
    import sqlalchemy
    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

    engine = {}
    if url in ("sqlite://", "sqlite:///", "sqlite:///:memory:"):
        raise StorageError(
            f"--storage {url}: an in-memory database lives in one process and dies with it, so "
            "workers cannot share it and the study cannot be resumed; give a file "
            "(sqlite:///path/study.db) or leave --storage out for OUT/study.db"
        )
    if url.startswith("sqlite:///"):  # a file: its folder is made, and writers wait their turn
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        engine = {"connect_args": {"timeout": 60}}
    for attempt in range(SCHEMA_TRIES):
        try:
            with warnings.catch_warnings():  # heartbeats are marked experimental since Optuna 2.9
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return RDBStorage(
                    url,
                    engine_kwargs=engine,
                    heartbeat_interval=heartbeat,
                    grace_period=2 * heartbeat,
                    heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=3),
                )
        except sqlalchemy.exc.NoSuchModuleError:
            raise StorageError(
                f"--storage {_shown(url)}: SQLAlchemy knows no database of this scheme; "
                f"use {STORAGE_SCHEMES}"
            ) from None
        except sqlalchemy.exc.ArgumentError:
            raise StorageError(
                f"--storage {_shown(url)} is no SQLAlchemy URL; use {STORAGE_SCHEMES}"
            ) from None
        except ImportError:  # optuna: "Failed to import DB access module ..."
            raise StorageError(
                f"--storage {_shown(url)}: the database driver of this scheme is not installed; "
                f"install it, or name an installed one: {STORAGE_SCHEMES}"
            ) from None
        except sqlalchemy.exc.SQLAlchemyError:  # workers creating a new database's tables at once
            if attempt == SCHEMA_TRIES - 1:
                raise
            time.sleep(POLL_SECONDS)
    raise AssertionError("unreachable")


def _shown(url: str) -> str:
    """`url` with its password hidden (as ***), when it can be read as a URL."""
    import sqlalchemy

    try:
        return sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)
    except sqlalchemy.exc.ArgumentError:
        return url


def check_heartbeat(heartbeat: Any) -> int:
    """`heartbeat`, seconds between a running trial's heartbeats: an int >= 1. Raises BadValue."""
    if isinstance(heartbeat, bool) or not isinstance(heartbeat, int) or heartbeat < 1:
        raise BadValue(
            f"heartbeat={heartbeat!r}: give the seconds between a trial's heartbeats as an "
            "int >= 1 (a trial silent for twice as long is retried)"
        )
    return heartbeat


def open_study(
    search: Search, variant: str, url: str, heartbeat: int = HEARTBEAT_SECONDS, worker: int = 0
) -> optuna.Study:
    """The study of `variant` in the database at `url` (created when absent), with the search's
    pinned TPE sampler and pruner. Raises StudyMismatch when the database holds a study of this
    name that was run with another search."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        storage=_storage(url, heartbeat),
        study_name=search.study_name(variant),
        direction="maximize",
        load_if_exists=True,
        sampler=optuna.samplers.RandomSampler(seed=0),  # replaced below, once the study is read
        pruner=_pruner(search),
    )
    recorded = search.recorded(variant)
    if "search" not in study.user_attrs:
        study.set_user_attr("search", canonical(recorded))
    else:
        saved = json.loads(study.user_attrs["search"])
        budget = saved.pop("trials", None)
        if canonical(saved) != canonical({k: v for k, v in recorded.items() if k != "trials"}):
            raise StudyMismatch(
                f"{url}: the study {study.study_name!r} was run with another search than this "
                f"one ({_difference(saved, recorded)}); give the search another 'out:' folder "
                "or --storage, or run the search it was made with"
            )
        if isinstance(budget, int) and search.trials < budget:
            raise StudyMismatch(
                f"{url}: the study {study.study_name!r} has a budget of trials={budget}; raise "
                f"trials to search more (not {search.trials}), or keep it"
            )
        if budget != search.trials:  # a raised budget: the same study goes on, more trials
            study.set_user_attr("search", canonical(recorded))
    existing = len(study.get_trials(deepcopy=False))
    seed = int(np.random.SeedSequence([search.sampler_seed, worker, existing]).generate_state(1)[0])
    study.sampler = optuna.samplers.TPESampler(
        seed=seed,
        n_startup_trials=search.startup_trials,
        n_ei_candidates=24,
        multivariate=False,
        constant_liar=True,
    )
    return study


def _difference(old: dict[str, Any], new: dict[str, Any]) -> str:
    """Where two recorded searches differ, the space compared field by field (by its names)."""
    from dmllab.experiments.cells import difference

    def by_name(recorded: dict[str, Any]) -> dict[str, Any]:
        space = recorded.get("space")
        if isinstance(space, list) and all(isinstance(p, dict) and "name" in p for p in space):
            return {**recorded, "space": {p["name"]: p for p in space}}
        return recorded

    return difference(by_name(old), by_name(new))


def _pruner(search: Search) -> optuna.pruners.BasePruner:
    import optuna

    if search.pruner == "none":
        return optuna.pruners.NopPruner()
    return optuna.pruners.MedianPruner(
        n_startup_trials=PRUNER_STARTUP, n_warmup_steps=PRUNER_WARMUP
    )


def counts(study: optuna.Study) -> tuple[int, int]:
    """(finished trials: complete or pruned, running trials) of a study."""
    from optuna.trial import TrialState

    states = [trial.state for trial in study.get_trials(deepcopy=False)]
    finished = sum(state in (TrialState.COMPLETE, TrialState.PRUNED) for state in states)
    return finished, sum(state == TrialState.RUNNING for state in states)


def best_trial(study: optuna.Study, budget: int) -> optuna.trial.FrozenTrial | None:
    """The best complete trial among the first `budget` finished ones (by trial number; a
    parallel worker may have finished one more than the budget, which is not counted)."""
    from optuna.trial import TrialState

    finished = [
        trial
        for trial in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number)
        if trial.state in (TrialState.COMPLETE, TrialState.PRUNED)
    ][:budget]
    complete = [trial for trial in finished if trial.state == TrialState.COMPLETE]
    return max(complete, key=lambda t: (t.value, -t.number)) if complete else None


def fail_orphans(study: optuna.Study, heartbeat: int) -> list[int]:
    """Fail, and retry, the running trials whose worker died before the trial's first heartbeat
    (Optuna's stale-trial check skips a trial that never sent one): those that never reached
    the objective (no `worker` attribute) and started more than twice the grace period ago.
    Returns their numbers. Assumes the workers' clocks agree to within the grace period."""
    import datetime

    import optuna
    from optuna.storages import RetryHeartbeatStaleTrialCallback
    from optuna.trial import TrialState

    limit = datetime.datetime.now() - datetime.timedelta(seconds=4 * heartbeat)
    orphans = [
        trial
        for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        if "worker" not in trial.user_attrs
        and trial.datetime_start is not None
        and trial.datetime_start < limit
    ]
    failed = []
    for trial in orphans:
        try:
            study.tell(trial.number, state=TrialState.FAIL)
        except (ValueError, RuntimeError):  # another worker failed or finished it meanwhile
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            RetryHeartbeatStaleTrialCallback(max_retry=3)(study, study.trials[trial.number])
        failed.append(trial.number)
    return failed


# --------------------------------------------------------------------------- one trial
def pruning_callback(trial: optuna.Trial, key: str) -> Callable[[Run, int], None]:
    """A `fit` callback that reports each epoch's validation `key` (e.g. `val_map@r`) to the
    trial and raises `optuna.TrialPruned` (out of `fit`) when the pruner says the trial is
    hopeless. Epochs without a validation row (`eval_every` > 1) report nothing."""
    import optuna

    def report(run: Run, epoch: int) -> None:
        value = run.history[-1].get(key)
        if value is None:
            return
        trial.report(float(value), epoch)
        if trial.should_prune():
            raise optuna.TrialPruned(f"epoch {epoch}: {key} = {value:.4f}, below the median")

    return report


def objective(search: Search, variant: str, trial: optuna.Trial) -> float:
    """Train the trial's configuration of `variant` and score it on the validation split (the
    test split is never read). A configuration that Config refuses (a combination of values
    that no bound could rule out) or that diverges is pruned: counted, and the worst."""
    import optuna

    from dmllab.guards import DivergenceError
    from dmllab.train import NonFiniteLossError, fit

    trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
    try:
        config = search.config(variant, search.sample(trial, variant))
    except BadValue as error:
        raise optuna.TrialPruned(f"not a valid configuration: {error}") from None
    callbacks = [pruning_callback(trial, f"val_{search.metric}")] if search.pruner != "none" else []
    try:
        run = fit(config, progress=False, callbacks=callbacks)
    except (DivergenceError, NonFiniteLossError) as error:
        raise optuna.TrialPruned(f"diverged: {describe(error)}") from None
    return score(run, search.metric)


# --------------------------------------------------------------------------- workers
@dataclass(frozen=True)
class _Work:
    search: Search
    variant: str
    url: str
    heartbeat: int
    worker: int
    stop: Path


def work(task: _Work) -> str | None:
    """Run trials of one study until it has its budget of finished trials (waiting for trials
    that other workers run) or the stop file appears; returns None, or a one-line error."""
    import optuna

    if multiprocessing.parent_process() is not None:  # a worker: Ctrl-C is the parent's to handle
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        _threads()
    try:
        study = open_study(task.search, task.variant, task.url, task.heartbeat, task.worker)
        while not task.stop.exists():
            finished, running = counts(study)
            if finished >= task.search.trials:
                return None
            if finished + running >= task.search.trials:  # the rest run elsewhere (or died)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                    optuna.storages.fail_stale_trials(study)
                fail_orphans(study, task.heartbeat)
                time.sleep(POLL_SECONDS)
                continue
            study.optimize(lambda trial: objective(task.search, task.variant, trial), n_trials=1)
        return None
    except Exception as error:  # reported by the parent, one line
        return f"{task.search.study_name(task.variant)}: {describe(error)}"


def _threads() -> None:
    """One worker of several: the CPU's threads shared out (OMP_NUM_THREADS wins)."""
    import torch

    if "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(1)


def _reproduce(task: tuple[dict[str, Any], Path, Path | None]) -> str | None:
    """Train one best configuration (a reproduction) and measure it on the test split; its
    record is written to `path` (complete or absent); nothing once the stop file is there.
    Returns None, or a one-line error."""
    from dmllab.config import Config
    from dmllab.experiments.runner import run_job

    fields, path, stop = task
    if multiprocessing.parent_process() is not None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        _threads()
    if stop is not None and stop.exists():
        return None
    try:
        run = run_job(Config.from_dict(fields))
        record = {"config": fields, "metrics": records.json_numbers(run.metrics)}
        path.parent.mkdir(parents=True, exist_ok=True)
        with records.replacing(path) as temporary:
            temporary.write_text(canonical(record))
        return None
    except Exception as error:
        return describe(error)


# --------------------------------------------------------------------------- tune
def tune(
    search: Search | str | Path | Mapping[str, Any],
    *,
    workers: int = 1,
    storage: str | None = None,
    heartbeat: int = HEARTBEAT_SECONDS,
    progress: bool = True,
    reproduce_best: bool = True,
) -> Tuned:
    """Run one study per variant of `search` (a Search, a search-space file, or its mapping)
    until each has `search.trials` finished trials, then retrain each variant's best
    configuration on `search.seeds` and measure it on the test split.

    workers: local worker processes sharing each study (1: trials run in this process).
    storage: an SQLAlchemy URL shared by workers on other machines (default: OUT/study.db).
    heartbeat: seconds between a running trial's heartbeats; a trial silent for twice as long is
        marked failed and retried.
    progress: one bar per study, with the best validation score so far.
    reproduce_best: False on the extra machines of a shared study (`--search-only`): they run
        trials and leave the reproductions to one machine.

    Ctrl-C (SIGINT) stops after the running trial(s); run the same search again to resume. A
    second Ctrl-C stops at once (the running trials are retried when the search resumes).
    Raises SpecError for a bad search, StudyMismatch for a database holding another search's
    study, RuntimeError naming the study when a worker failed."""
    check_heartbeat(heartbeat)
    search = search if isinstance(search, Search) else load_search(search)
    if workers < 1:
        raise ValueError(f"workers must be >= 1; got {workers}")
    search.out.mkdir(parents=True, exist_ok=True)
    url = storage_url(search, storage)
    for variant in search.variants:  # refuse another search's study before any work
        open_study(search, variant, url, heartbeat)
    stop = search.out / f".stop-{os.getpid()}-{secrets.token_hex(4)}"
    with _StopOnInterrupt(stop), _Bars(search, url, heartbeat, progress):
        tasks = [
            _Work(search, variant, url, heartbeat, worker, stop)
            for variant in search.variants
            for worker in range(workers)
        ]
        errors = _run(work, tasks, workers)
        stopped = stop.exists()
        if errors:
            raise RuntimeError("; ".join(errors))
    best, values = {}, {}
    for variant, study in _studies(search, url, heartbeat).items():
        finished, _ = counts(study)
        trial = best_trial(study, search.trials)
        if trial is not None:
            best[variant], values[variant] = dict(trial.params), float(trial.value or 0.0)
        stopped = stopped or finished < search.trials
    results = None
    if not stopped and reproduce_best:
        if set(best) != set(search.variants):
            missing = sorted(set(search.variants) - set(best))
            raise RuntimeError(
                f"no trial of {', '.join(missing)} completed (every one was pruned); give the "
                "search more trials or pruner: none"
            )
        with _StopOnInterrupt(stop):
            results = reproduce(search, best, workers, stop)
        stopped = results is None
    stop.unlink(missing_ok=True)
    return Tuned(search, url, best, values, results, stopped)


def _studies(search: Search, url: str, heartbeat: int) -> dict[str, optuna.Study]:
    return {variant: open_study(search, variant, url, heartbeat) for variant in search.variants}


def _run(function: Callable[[Any], str | None], tasks: list[Any], workers: int) -> list[str]:
    """Run tasks in this process (one worker) or in worker processes; the errors they return."""
    if workers == 1:
        return [error for error in map(function, tasks) if error]
    errors = []
    for outcome in run_tasks(function, tasks, workers, retries=1):
        if outcome.retrying:
            print(f"a worker died ({outcome.died}); starting another", file=sys.stderr)
        elif outcome.died:
            errors.append(f"a worker died twice, last {outcome.died}")
        elif outcome.result:
            errors.append(outcome.result)
    return errors


def reproduce(
    search: Search,
    best: Mapping[str, Mapping[str, Any]],
    workers: int = 1,
    stop: Path | None = None,
) -> Results | None:
    """Each variant's best configuration retrained on every seed of `search.seeds` and measured
    on the test split: one row per variant and seed. Each run's record is kept in
    `OUT/reproductions/` and reused when the same configuration is asked again (a resumed
    search). None when the `stop` file appeared before all ran (the rest run on resuming)."""
    folder = search.out / REPRODUCTIONS
    jobs = []
    for variant in search.variants:
        for seed in search.seeds:
            fields = search.config(variant, {**best[variant], "seed": seed}).to_dict()
            jobs.append((variant, seed, fields, folder / f"{variant}-seed{seed}.json"))
    todo = [
        (fields, path, stop) for _, _, fields, path in jobs if _recorded(path) != canonical(fields)
    ]
    if todo:
        print(
            f"reproducing: {len(todo)} run(s) of the best configurations on the test split",
            flush=True,
        )
    errors = _run(_reproduce, todo, workers)
    if errors:
        raise RuntimeError("; ".join(errors))
    if stop is not None and stop.exists():
        return None
    rows = []
    for variant, seed, _, path in jobs:
        metrics = records.read_json(path, "reproduction's record")["metrics"]
        rows.append({VARIANT: variant, "seed": seed, **metrics})
    return Results.from_rows(rows)


def _recorded(path: Path) -> str | None:
    """The configuration a reproduction record holds (canonical JSON), or None."""
    if not path.exists():
        return None
    try:
        return canonical(records.read_json(path, "reproduction's record")["config"])
    except (BadValue, KeyError):
        return None


# --------------------------------------------------------------------------- Ctrl-C, progress
class _StopOnInterrupt:
    """While inside: the first SIGINT creates the stop file (the workers finish their trial and
    stop), the second raises KeyboardInterrupt. Only in the main thread (elsewhere: nothing)."""

    def __init__(self, stop: Path):
        self.stop = stop
        self.previous: Any = None

    def __enter__(self) -> None:
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self._interrupt)

    def __exit__(self, *exc: object) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)

    def _interrupt(self, signum: int, frame: Any) -> None:
        if self.stop.exists():
            raise KeyboardInterrupt
        self.stop.touch()
        print(
            "\nstopping after the running trial(s); run the same search again to resume "
            "(Ctrl-C again stops now)",
            file=sys.stderr,
            flush=True,
        )


class _Bars:
    """One progress bar per study (finished trials of the budget, best validation score so far),
    refreshed from the database by a thread while the studies run."""

    def __init__(self, search: Search, url: str, heartbeat: int, show: bool):
        from dmllab.train import PROGRESS_ENV

        self.search, self.url, self.heartbeat = search, url, heartbeat
        self.show = show and os.environ.get(PROGRESS_ENV, "1") != "0"
        self.done = threading.Event()
        self.thread: threading.Thread | None = None

    def __enter__(self) -> None:
        if self.show:
            self.thread = threading.Thread(target=self._refresh, daemon=True)
            self.thread.start()

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        if self.thread is not None:
            self.thread.join()

    def _refresh(self) -> None:
        from tqdm.auto import tqdm

        studies = _studies(self.search, self.url, self.heartbeat)
        bars = {
            variant: tqdm(total=self.search.trials, desc=variant, position=i, leave=True)
            for i, variant in enumerate(studies)
        }
        while True:
            finished_all = self.done.is_set()
            for variant, study in studies.items():
                finished, _ = counts(study)
                trial = best_trial(study, self.search.trials)
                best = f"best {self.search.metric} {trial.value:.4f}" if trial is not None else ""
                bar = bars[variant]
                if (bar.n, bar.postfix) != (min(finished, self.search.trials), best or None):
                    bar.n = min(finished, self.search.trials)
                    bar.set_postfix_str(best, refresh=False)
                    bar.refresh()
            if finished_all:
                break
            self.done.wait(POLL_SECONDS)
        for bar in bars.values():
            bar.close()


__all__ = [
    "STUDY_FILE",
    "StudyMismatch",
    "Tuned",
    "best_trial",
    "objective",
    "open_study",
    "pruning_callback",
    "reproduce",
    "storage_url",
    "tune",
]
