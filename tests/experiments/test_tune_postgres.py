"""A study shared through a real PostgreSQL server, as workers on several machines share one: the
test starts a server on 127.0.0.1 only (a fresh data folder, a free port), runs two `dmllab tune
--search-only` processes on one study, reproduces from a third, and stops the server.

PostgreSQL refuses to run as root (as CI does): then the server runs as the unprivileged
`postgres` user (Debian's package makes it) through `runuser`. Skipped, with the reason, where
no server binaries, no such user or no driver (psycopg) is there."""

import glob
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from dmllab.experiments.search import load_search
from dmllab.experiments.tune import tune

SEARCH = """\
fit:
  dataset: mixture
  dataset_options: {num_classes: 6, modes_per_class: 2, dim: 4, per_mode: 12}
  split: stratified
  val_fraction: 0.3
  epochs: 3
  batches_per_epoch: 3
  classes_per_batch: 3
  samples_per_class: 4
  embedding_dim: 4
space:
  lr: {low: 1.0e-3, high: 0.1, log: true}
trials: 4
startup_trials: 2
seeds: [0, 1]
"""


def server_binary(name):
    found = shutil.which(name) or next(
        iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None
    )
    if found is None:
        pytest.skip(
            f"no PostgreSQL server here ({name} not found; Debian: apt-get install postgresql)"
        )
    return found


def as_server_user(command):
    """`command` as the user the server may run as: this one, or `postgres` when this is root."""
    if os.getuid() != 0:
        return command
    return ["runuser", "-u", "postgres", "--", *command]


@pytest.fixture
def postgres():
    pytest.importorskip("psycopg", reason="no PostgreSQL driver (pip install 'psycopg[binary]')")
    initdb, pg_ctl = server_binary("initdb"), server_binary("pg_ctl")
    if os.getuid() == 0:
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root, and no 'postgres' user to run the server as")
        if shutil.which("runuser") is None:
            pytest.skip("running as root, and no runuser to start the server as 'postgres'")
    folder = Path(tempfile.mkdtemp(prefix="dmllab-pg-"))  # outside root's private tmp folders
    if os.getuid() == 0:
        os.chown(folder, user.pw_uid, user.pw_gid)
    data = folder / "data"
    with socket.socket() as probe:  # a free port on loopback
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    subprocess.run(
        as_server_user([initdb, "-D", str(data), "-U", "postgres", "-A", "trust", "--no-sync"]),
        check=True,
        capture_output=True,
    )
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {folder} -c fsync=off"
    start = as_server_user(
        [pg_ctl, "-D", str(data), "-o", options, "-l", str(folder / "log"), "-w", "start"]
    )
    started = subprocess.run(start, capture_output=True, text=True)
    if started.returncode != 0:
        shutil.rmtree(folder, ignore_errors=True)
        pytest.fail(f"PostgreSQL did not start: {started.stdout}{started.stderr}")
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            as_server_user([pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"]),
            capture_output=True,
        )
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.slow
def test_two_workers_share_one_study_on_a_postgresql_server(tmp_path, postgres):
    (tmp_path / "search.yaml").write_text(SEARCH)
    command = [sys.executable, "-m", "dmllab", "tune", "search.yaml", "--storage", postgres]
    workers = [
        subprocess.Popen(
            [*command, "--search-only"],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    for worker in workers:
        out, err = worker.communicate(timeout=300)
        assert worker.returncode == 0, out + err
        assert "search done: base" in out
    assert not (tmp_path / "search" / "study.db").exists()  # the study lives on the server
    search = load_search(tmp_path / "search.yaml")
    trials = optuna.load_study(study_name=search.study_name("base"), storage=postgres).get_trials()
    done = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert search.trials <= len(done) <= search.trials + 1  # the last two may start together
    assert {t.user_attrs["worker"].split(":")[1] for t in done} <= {str(w.pid) for w in workers}
    tuned = tune(search, storage=postgres, progress=False)  # nothing left to search: reproduce
    assert len(optuna.load_study(study_name="search/base", storage=postgres).trials) == len(trials)
    assert tuned.results is not None and sorted(tuned.results.table["seed"]) == [0, 1]
