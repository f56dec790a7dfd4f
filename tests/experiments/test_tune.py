"""Tuning on a real study database: a tiny search finds a better-than-default configuration with
two worker processes on one SQLite file; a hopeless trial is pruned; the test split is never read
during the search; a search stopped by Ctrl-C or killed mid-trial resumes with every finished
trial kept once; every bad search-space file fails before any trial, naming the key and line."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from dmllab import cli
from dmllab import train as trainer
from dmllab.experiments import tune as tuning
from dmllab.experiments.search import load_search, score
from dmllab.experiments.spec import SpecError
from dmllab.experiments.tune import open_study, storage_url, tune

FIT = """\
fit:
  dataset: mixture
  dataset_options: {num_classes: 6, modes_per_class: 2, dim: 4, per_mode: 12, noise_dims: 4}
  split: stratified
  val_fraction: 0.3
  epochs: 3
  batches_per_epoch: 4
  classes_per_batch: 3
  samples_per_class: 4
  embedding_dim: 4
"""
SEARCH = (
    FIT
    + """\
space:
  lr: {low: 3.0e-3, high: 0.3, log: true}
  margin: {low: 0.05, high: 0.5}
variants:
  random: {positives: random}
  nearest: {positives: nearest}
trials: 3
startup_trials: 2
seeds: [0, 1]
"""
)


def write(tmp_path, text, name="search.yaml"):
    (tmp_path / name).write_text(text)
    return tmp_path / name


def trials_of(search, variant):
    storage = tuning._storage(storage_url(search), tuning.HEARTBEAT_SECONDS)
    return optuna.load_study(study_name=search.study_name(variant), storage=storage).get_trials()


@pytest.mark.slow
def test_two_workers_on_one_sqlite_file_find_a_better_than_default_configuration(tmp_path):
    search = load_search(write(tmp_path, SEARCH))
    tuned = tune(search, workers=2, progress=False)
    assert (tmp_path / "search" / "study.db").exists()
    for variant in search.variants:
        trials = trials_of(search, variant)
        finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
        assert len(finished) >= search.trials
        default = trainer.fit(search.config(variant), progress=False)  # lr 1e-3, margin 0.2
        assert tuned.best_values[variant] > score(default, search.metric)
    assert tuned.results is not None and not tuned.stopped
    assert sorted(tuned.results.table["seed"]) == [0, 0, 1, 1]
    claim = tuned.results.difference("map@r", "nearest", "random")
    assert claim.n == 2
    from dmllab.tuning_report import write_tuning_report

    page = write_tuning_report(tuned).read_text()
    assert page.count("plotly.min.js") == 1 and (tmp_path / "search" / "plotly.min.js").exists()
    assert "Paired differences" in page and "study search/nearest" in page.lower()


def test_a_hopeless_trial_is_pruned(tmp_path):
    search = load_search(
        write(
            tmp_path,
            FIT.replace("epochs: 3", "epochs: 4")
            + "space:\n  lr: {low: 1.0e-7, high: 0.1, log: true}\ntrials: 4\n"
            "seeds: [0]\n",
        )
    )
    study = open_study(search, "base", storage_url(search))
    for lr in (0.05, 0.05, 0.05, 1e-7):  # three that learn, then one that cannot
        study.enqueue_trial({"lr": lr})
    tuned = tune(search, progress=False)
    states = [t.state for t in sorted(trials_of(search, "base"), key=lambda t: t.number)]
    assert states == [TrialState.COMPLETE] * 3 + [TrialState.PRUNED]
    assert tuned.best["base"] == {"lr": 0.05}


def test_the_test_split_is_never_read_during_the_search(tmp_path, monkeypatch):
    search = load_search(write(tmp_path, SEARCH.replace("trials: 3", "trials: 2")))
    phase, reads, prepared = ["search"], [], []
    prepare, reproduce = trainer.prepare, tuning.reproduce

    class Watched:
        """The test split, which records every look at it during the search."""

        def __init__(self, data):
            object.__setattr__(self, "data", data)

        def __getattr__(self, name):
            reads.append((phase[0], name))
            return getattr(object.__getattribute__(self, "data"), name)

    def watched_prepare(config, dataset=None):
        splits = prepare(config, dataset)
        if phase[0] == "search":
            prepared.append(config.lr)
            splits.test = Watched(splits.test)
        return splits

    def reproduce_after_search(*args, **kwargs):
        phase[0] = "reproduce"
        return reproduce(*args, **kwargs)

    monkeypatch.setattr(trainer, "prepare", watched_prepare)
    monkeypatch.setattr(tuning, "reproduce", reproduce_after_search)
    tuned = tune(search, progress=False)
    assert len(prepared) >= 2 * search.trials  # every trial trained on instrumented splits
    assert reads == []
    assert tuned.results is not None and phase == ["reproduce"]


def wait_for(condition, seconds=240):
    deadline = time.time() + seconds
    while not condition():
        assert time.time() < deadline, "timed out"
        time.sleep(0.1)


def states(search):
    if not (search.out / "study.db").exists():
        return []
    try:
        return [t.state for t in trials_of(search, "base")]
    except KeyError:  # the study is not made yet
        return []


def finished(trials):
    done = (TrialState.COMPLETE, TrialState.PRUNED)
    return {t.number: (t.state, t.value, t.params) for t in trials if t.state in done}


@pytest.mark.slow
def test_a_stopped_or_killed_search_resumes_with_every_finished_trial_kept_once(tmp_path):
    text = FIT.replace("epochs: 3", "epochs: 5") + (
        "space:\n  lr: {low: 1.0e-3, high: 0.1, log: true}\ntrials: 8\nseeds: [0]\npruner: none\n"
    )
    search = load_search(write(tmp_path, text))
    command = [sys.executable, "-m", "dmllab", "tune", "search.yaml"]  # its trials in-process

    def start():
        return subprocess.Popen(
            [*command, "--heartbeat", "1"],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )

    def busy():
        now = states(search)
        return TrialState.RUNNING in now and TrialState.COMPLETE in now

    # Ctrl-C: the running trials finish, nothing is left running, the command says how to resume
    first = start()
    wait_for(busy)
    os.killpg(first.pid, signal.SIGINT)
    out, err = first.communicate(timeout=240)
    assert first.returncode == 1 and "stopping after the running trial" in err, out + err
    assert "run the same command to resume" in err and "Traceback" not in err
    after_stop = trials_of(search, "base")
    assert TrialState.RUNNING not in [t.state for t in after_stop]
    kept = finished(after_stop)
    assert 0 < len(kept) < search.trials

    # SIGKILL mid-trial: the parent and its workers die at once, their trials left running
    killed = []
    for _ in range(3):  # a kill that lands between two trials kills no trial: kill again
        second, done = start(), len(kept)
        wait_for(lambda done=done: busy() and len(finished(trials_of(search, "base"))) > done)
        os.killpg(second.pid, signal.SIGKILL)
        second.wait()
        killed = [t.number for t in trials_of(search, "base") if t.state == TrialState.RUNNING]
        kept = finished(trials_of(search, "base"))
        if killed:
            break
    assert killed and len(kept) < search.trials

    tuned = tune(search, heartbeat=1, progress=False)
    trials = trials_of(search, "base")
    now = finished(trials)
    assert {number: now[number] for number in kept} == kept  # kept, unchanged, once
    assert len(now) >= search.trials and not tuned.stopped
    by_number = {t.number: t for t in trials}
    for number in killed:  # failed, never counted, and retried with the same values
        assert by_number[number].state == TrialState.FAIL
        retries = [t for t in trials if t.system_attrs.get("failed_trial") == number]
        assert retries and by_number[number].params.items() <= retries[0].params.items()


BAD_SPECS = [
    ("space:\n  lr_rate: {low: 0.001, high: 0.1}\n", 12, "Config has no field 'lr_rate'"),
    ("space:\n  lr: {low: 0.01, high: 0.01}\n", 12, "'space.lr': the range [0.01, 0.01] is empty"),
    ("space:\n  margin: {low: 0.5, high: 0.1}\n", 12, "'space.margin': low > high"),
    ("space:\n  margin: {low: 0.0, high: 0.5, log: true}\n", 12, "a log scale needs a positive"),
    ("space:\n  loss: {values: [triplet]}\n", 12, "'space.loss.values' needs at least 2 different"),
    ("space:\n  lr: {low: 0.001, hihg: 0.1}\n", 12, "unknown key 'hihg' (did you mean 'high'?)"),
    (
        "spaces:\n  lr: {low: 0.001, high: 0.1}\n",
        11,
        "unknown key 'spaces' (did you mean 'space'?)",
    ),
    ("space:\n  lr: {low: 0.0, high: 0.1}\n", 12, "Config.lr=0.0 is outside (0, inf]"),
    ("space:\n  loss: {low: 1, high: 2}\n", 12, "Config.loss is not a number; give 'values'"),
    ("space:\n  lr:\n    values: [0.1, 0.1]\n", 13, "'space.lr.values' lists 0.1 twice"),
    ("space:\n  seed: {values: [0, 1]}\n", 12, "'seed' cannot be searched"),
    (
        (
            "space:\n  k_positives: {low: 1, high: 4, when: {positives: nearest}}\n"
            "variants:\n  near: {positives: nearest}\n  far: {positives: random}\n"
        ),
        12,
        "k_positives=4 in variant 'near'",
    ),
    ("space:\n  lr: {low: 0.001, high: 0.1}\ntrials: 0\n", 13, "'trials' is an integer in [1"),
    ("space:\n  lr: {low: 0.001, high: 0.1}\nmetric: accuracy\n", 13, "'metric' is one of"),
]


@pytest.mark.parametrize("text, line, message", BAD_SPECS)
def test_every_bad_search_space_fails_before_any_trial_naming_the_key_and_line(
    tmp_path, text, line, message
):
    path = write(tmp_path, FIT + text)
    with pytest.raises(SpecError) as error:
        tune(path, progress=False)
    assert f"search.yaml:{line}: " in str(error.value), str(error.value)
    assert message in str(error.value)
    assert "\n" not in str(error.value)
    assert not (tmp_path / "search").exists()


def test_a_search_needs_a_validation_split_and_never_monitors_the_test_split(tmp_path, capsys):
    text = FIT.replace("  val_fraction: 0.3\n", "") + "space:\n  lr: {low: 0.001, high: 0.1}\n"
    with pytest.raises(ValueError, match=r"search.yaml:1: .*set fit.val_fraction > 0"):
        load_search(write(tmp_path, text))
    text = FIT + "  monitor_test: true\nspace:\n  lr: {low: 0.001, high: 0.1}\n"
    assert cli.main(["tune", str(write(tmp_path, text))]) == 1
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "search.yaml:11: 'monitor_test' cannot be on" in error


def test_a_database_holding_another_searchs_study_is_refused(tmp_path):
    search = load_search(write(tmp_path, FIT + "space:\n  lr: {low: 0.001, high: 0.1}\n"))
    open_study(search, "base", storage_url(search))
    edited = load_search(write(tmp_path, FIT + "space:\n  lr: {low: 0.001, high: 0.2}\n"))
    with pytest.raises(ValueError, match=r"was run with another search .*space"):
        tune(edited, progress=False)


def test_a_search_reads_the_same_from_python():
    search = load_search(
        {
            "fit": {"dataset": "mixture", "val_fraction": 0.3},
            "space": {"lr": {"low": 1e-3, "high": 0.1, "log": True}},
            "variants": {"plain": {}, "lsd": {"lsd_alpha": 10.0}},
        }
    )
    assert search.config("lsd").lsd_alpha == 10.0 and search.space[0].log
    with pytest.raises(ValueError, match=r"^the search-space file: 'space.lr': low > high"):
        load_search({"fit": {"val_fraction": 0.3}, "space": {"lr": {"low": 0.1, "high": 0.01}}})


def test_the_readme_search_space_is_a_valid_search():
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    block = readme.split("Fair comparisons by search")[1].split("```yaml\n")[1].split("```")[0]
    search = load_search(yaml.safe_load(textwrap.dedent(block)))
    assert set(search.variants) == {"random", "nearest"} and search.trials == 30


def test_a_condition_searches_a_field_only_where_it_applies(tmp_path):
    search = load_search(
        write(
            tmp_path,
            FIT
            + "space:\n  lr: {low: 0.001, high: 0.1, log: true}\n"
            + "  k_positives: {low: 1, high: 3, when: {positives: nearest}}\n"
            + "variants:\n  near: {positives: nearest}\n  far: {positives: random}\n",
        )
    )
    trial = optuna.trial.FixedTrial({"lr": 0.01, "k_positives": 2})
    assert search.sample(trial, "near") == {"lr": 0.01, "k_positives": 2}
    assert search.sample(trial, "far") == {"lr": 0.01}


def test_a_study_is_pinned_to_its_seeded_sampler_not_to_optunas_defaults(tmp_path):
    text = FIT + "space:\n  lr: {low: 0.001, high: 0.1, log: true}\nstartup_trials: 2\n"
    drawn = []
    for folder in ("a", "b"):
        search = load_search(write(tmp_path, text + f"out: {folder}\n"))
        study = open_study(search, "base", storage_url(search))
        assert isinstance(study.sampler, optuna.samplers.TPESampler)
        assert isinstance(study.pruner, optuna.pruners.MedianPruner)
        study.optimize(lambda trial, s=search: -abs(s.sample(trial, "base")["lr"] - 0.01), 6)
        drawn.append([t.params["lr"] for t in study.trials])
    assert drawn[0] == drawn[1] and len(set(drawn[0])) == 6


@pytest.mark.filterwarnings(
    "ignore:Heartbeat of storage is supposed to be used with Study.optimize"
)
def test_a_trial_killed_before_its_first_heartbeat_is_failed_and_retried(tmp_path):
    # Optuna's own stale-trial check skips a running trial that never sent a heartbeat: a worker
    # killed between creating a trial and starting its heartbeat would hold the budget forever
    search = load_search(write(tmp_path, FIT + "space:\n  lr: {low: 0.001, high: 0.1}\n"))
    study = open_study(search, "base", storage_url(search), heartbeat=1)
    orphan = study.ask()
    assert tuning.fail_orphans(study, 60) == []  # too young to call dead
    assert tuning.fail_orphans(study, 0) == [orphan.number]
    states = [t.state for t in study.get_trials()]
    assert states == [TrialState.FAIL, TrialState.WAITING]
    assert study.get_trials()[1].system_attrs["failed_trial"] == orphan.number
