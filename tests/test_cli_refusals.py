"""The command line refuses before any work, in one line that starts with `dmllab COMMAND:`, and
never lets two runs share a folder or leaves a half-written one behind (a fit's default folder is
claimed at start; an interrupted fit says how to resume; a terminated `--nproc` fit removes its
ranks' folder)."""

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dmllab import cli
from dmllab.config import Config

ROOT = Path(__file__).resolve().parents[1]
TOUR = str(ROOT / "notebooks" / "00_tour.ipynb")
LONG = Config(dataset="digits", epochs=5000, batches_per_epoch=5, checkpoint_every=1)


def refusal(argv, capsys) -> str:
    """The one line `dmllab` prints for argv, having done nothing (SystemExit or status 1)."""
    try:
        status = cli.main(argv)
    except SystemExit as error:
        line = str(error.code)
    else:
        assert status == 1
        line = capsys.readouterr().err.removesuffix("\n")
    assert "\n" not in line
    return line


@pytest.mark.parametrize(
    "argv, line",
    [
        (["run", TOUR, "-p", "epochs", "0"], "dmllab run: 00_tour.ipynb: parameter epochs:"),
        (["run", TOUR, "-p", "epochs", "1", "-p", "epochs", "2"], "dmllab run: -p epochs is"),
        (["run", TOUR, "-p", "epochs", "[1"], "dmllab run: -p epochs: cannot read"),
        (["run", "missing.ipynb"], "dmllab run: no such notebook: missing.ipynb"),
        (["run", TOUR, "-p", "output_dir", "/tmp/x"], "dmllab run: 00_tour.ipynb: output_dir is"),
        (["sweep", "grid.yaml", "--workers", "0"], "dmllab sweep: --workers must be >= 1"),
        (["fit", "c.json", "--resume"], "dmllab fit: --resume needs --out"),
        (["fit", "c.json", "--out", "afile"], "dmllab fit: --out afile is a file, not a folder"),
    ],
)
def test_a_refusal_before_any_work_is_one_prefixed_line(argv, line, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "c.json").write_text(Config().to_json())
    (tmp_path / "afile").write_text("not a folder")
    assert refusal(argv, capsys).startswith(line)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "c.json"]  # nothing written


@settings(max_examples=10, deadline=None)
@given(claims=st.integers(2, 8))
def test_run_folders_claimed_at_once_are_all_different(tmp_path_factory, claims):
    base = tmp_path_factory.mktemp("runs") / "c3-20260101-120000"
    found: list[Path] = []
    threads = [
        threading.Thread(target=lambda: found.append(cli.claim_run_folder(base)))
        for _ in range(claims)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(found)) == claims and all(f.is_dir() for f in found)
    assert base in found and base.with_name(base.name + "-2") in found


def test_the_default_fit_folder_is_claimed_before_training(tmp_path, monkeypatch):
    """Two fits of configs named alike in the same second (s1/c3.json, s2/c3.json): the second
    gets a folder of its own, claimed before its training starts."""
    monkeypatch.chdir(tmp_path)
    seen: list[Path] = []

    def run_job(config, progress, checkpoint_dir, resume):
        seen.append(Path(checkpoint_dir))
        assert Path(checkpoint_dir).is_dir() and not any(Path(checkpoint_dir).iterdir())
        raise KeyboardInterrupt  # stop before training: only the folders matter here

    monkeypatch.setattr("dmllab.experiments.run_job", run_job)
    monkeypatch.setattr(cli, "datetime", type("Frozen", (), {"now": staticmethod(_noon)}))
    for folder in ("s1", "s2"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "c3.json").write_text(Config().to_json())
        assert cli.main(["fit", f"{folder}/c3.json", "--quiet"]) == 130
    assert seen == [Path("runs/c3-20260101-120000"), Path("runs/c3-20260101-120000-2")]


def _noon():
    from datetime import datetime

    return datetime(2026, 1, 1, 12, 0, 0)


def _start_fit(tmp_path, *extra, env=None):
    (tmp_path / "c.json").write_text(LONG.to_json())
    return subprocess.Popen(
        [sys.executable, "-m", "dmllab", "fit", "c.json", "--quiet", *extra],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a terminal's foreground job
        env={**os.environ, **(env or {})},
    )


def _wait_for(predicate, seconds=120.0):
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


@pytest.mark.slow
def test_ctrl_c_of_fit_says_where_the_checkpoint_is_and_how_to_resume(tmp_path):
    fit = _start_fit(tmp_path)
    _wait_for(lambda: any((tmp_path / "runs").glob("c-*/checkpoint.pt")))
    os.killpg(fit.pid, signal.SIGINT)  # what Ctrl-C in a terminal sends
    _, err = fit.communicate(timeout=60)
    (folder,) = (tmp_path / "runs").iterdir()
    out = f"runs/{folder.name}"
    assert fit.returncode == 130, err
    hint = f"the checkpoint is {out}/checkpoint.pt: continue with dmllab fit c.json --out {out}"
    assert err.strip().splitlines() == [f"dmllab fit: interrupted; {hint} --resume"]


@pytest.mark.slow
def test_sigterm_of_a_local_ranks_fit_removes_the_ranks_folder(tmp_path):
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    fit = _start_fit(tmp_path, "--out", "run", "--nproc", "2", env={"TMPDIR": str(scratch)})
    _wait_for(lambda: (tmp_path / "run" / "checkpoint.pt").exists())
    assert list(scratch.glob("dmllab-ranks-*"))
    fit.send_signal(signal.SIGTERM)  # the launcher only, as a scheduler or `kill` does
    fit.communicate(timeout=60)
    assert fit.returncode == 143
    assert not list(scratch.glob("dmllab-ranks-*"))
    ranks = ["pgrep", "-s", str(fit.pid), "-f", "spawn_main"]
    assert subprocess.run(ranks, capture_output=True).stdout == b"", "a rank outlived it"


def test_help_texts_read_as_printed(capsys):
    with pytest.raises(SystemExit):
        cli.main(["report", "--help"])
    assert "95% CI" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    assert "report, tune, fit" in capsys.readouterr().out


@pytest.mark.parametrize("argv", [["--shard", "-1/3"], ["--shard=-1/3"], ["--shard", "3/3"]])
def test_a_bad_shard_is_our_own_line_before_the_grid_is_read(argv, tmp_path, capsys):
    # argparse read `--shard -1/3` as a second option ("expected one argument")
    line = refusal(["sweep", str(tmp_path / "missing.yaml"), *argv], capsys)
    assert line.startswith("dmllab sweep: shard") and "0 <= I < N" in line, line


def test_the_tuning_table_shows_ints_as_ints():
    from types import SimpleNamespace

    from dmllab.tuning_report import best_table

    tuned = SimpleNamespace(
        search=SimpleNamespace(metric="map@r"),
        best_values={"nearest": 0.5, "random": 0.4},
        best={"nearest": {"k_positives": 3, "lr": 0.01}, "random": {"lr": 0.02}},
    )
    text = best_table(tuned).to_string()
    assert " 3 " in text + " " and "3.0" not in text


def test_run_save_refuses_another_configs_record_unless_told(tmp_path):
    import dmllab as dl
    from dmllab.records import RecordError

    config = Config(dataset="mixture", split="stratified", epochs=1, batches_per_epoch=1,
                    classes_per_batch=3, samples_per_class=2, embedding_dim=4)  # fmt: skip
    run = dl.fit(config, progress=False)
    run.save(tmp_path / "run")
    run.save(tmp_path / "run")  # the same Config again (a resumed run saves again)
    other = dl.fit(config.replace(lr=0.5), progress=False)
    with pytest.raises(RecordError, match="holds another configuration's run record"):
        other.save(tmp_path / "run")
    assert dl.runs.load(tmp_path / "run").config == config
    other.save(tmp_path / "run", overwrite=True)
    assert dl.runs.load(tmp_path / "run").config.lr == 0.5


def test_a_warning_during_fit_is_one_line_from_rank_zero_only(capsys, monkeypatch):
    import warnings

    from dmllab import distributed
    from dmllab.engine.batchnorm import BatchNormWarning

    for main, expected in ((True, 1), (False, 0)):
        monkeypatch.setattr(distributed, "is_main", lambda main=main: main)
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.showwarning = cli._rank_zero_warning
            warnings.warn("per-rank statistics", BatchNormWarning, stacklevel=1)
        err = capsys.readouterr().err
        assert err.count("\n") == expected
        assert err == expected * "dmllab fit: BatchNormWarning: per-rank statistics\n"
