"""Sweeps that survive their parts: killed workers, a killed sweep, full or read-only disks, edited
grids, colliding values, two sweeps on one folder, hostile values in the report; and what the
report shows: a single seed's mean, an unknown metric, a lesson's many keys."""

import json
import os
import re
import subprocess
import sys
import textwrap
import time
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dmllab import cli
from dmllab.experiments import cells as sweep_cells
from dmllab.locks import FolderBusy, FolderLock
from dmllab.values import canonical
from sweep_fixtures import fake_cell, fit_recorded

NOTEBOOK_BODY = """\
import os, pathlib, signal, time
out = pathlib.Path(output_dir)
flags = pathlib.Path(flag_dir)
if mode == "sleep":
    (flags / f"started-{seed}").write_text(str(os.getpid()))
    time.sleep(120)
died = flags / f"died-{mode}-{seed}"
if mode in ("once", "always") and (mode == "always" or not died.exists()):
    died.write_text("x")
    (out / "metrics.json").write_text('{"answer": 1}')
    with open(out / "model.pt", "wb") as handle:  # the worker dies in the middle of the model
        handle.write(b"PK partial")
        handle.flush()
        os.kill(os.getppid(), signal.SIGKILL)
        time.sleep(30)
if mode == "big":
    (out / "ballast.bin").write_bytes(bytes(3 << 20))
import dmllab as dl
(out / "model.pt").write_bytes(b"a whole model")
dl.report.save_lesson_outputs(output_dir, {"answer": 42.0 + seed})
if mode == "fail":
    raise RuntimeError("failed after writing its metrics")
"""


def write_notebook(path):
    notebook = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell(
        'seed = 0\nquick = False\noutput_dir = None\nmode = "ok"\nflag_dir = "."\ntag = "x"'
    )
    params.metadata["tags"] = ["parameters"]
    notebook.cells = [params, nbformat.v4.new_code_cell(NOTEBOOK_BODY)]
    notebook.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(notebook, path)


def grid_file(folder, modes, seeds=(0,), out="out", tags=None):
    write_notebook(folder / "lesson.ipynb")
    (folder / "flags").mkdir(exist_ok=True)
    tags = f"\n  tag: {json.dumps(tags)}" if tags else ""
    (folder / "grid.yaml").write_text(
        f"notebook: lesson.ipynb\nparameters:\n  mode: {json.dumps(modes)}\n"
        f"  flag_dir: [{json.dumps(str(folder / 'flags'))}]{tags}\n"
        f"seeds: {list(seeds)}\nout: {out}\n"
    )
    return folder / "grid.yaml"


def dmllab(*args, cwd, timeout=300):
    return subprocess.run(
        [sys.executable, "-m", "dmllab", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def finished(folder):
    return sorted(cell.params["mode"] for cell in sweep_cells.finished_cells(folder)[0])


@pytest.mark.slow
def test_a_worker_killed_while_writing_the_model_is_retried_and_failed_cells_are_never_counted(
    tmp_path,
):
    grid = grid_file(tmp_path, ["once", "fail"])
    result = dmllab("sweep", "grid.yaml", "--workers", "2", cwd=tmp_path)
    out = result.stdout
    assert result.returncode == 1, out + result.stderr
    assert "worker died (killed by SIGKILL)" in out and "running that cell once more" in out
    assert (
        "FAILED" in out
        and "failed after writing its metrics" in out
        and "Traceback" not in out + result.stderr
    )
    cells, skipped = sweep_cells.finished_cells(tmp_path / "out")
    assert [cell.params["mode"] for cell in cells] == [
        "once"
    ]  # the retried cell, with its whole model
    assert (tmp_path / "out" / cells[0].name / "model.pt").read_bytes() == b"a whole model"
    assert (
        len(skipped) == 1 and "not finished" in skipped[0]
    )  # the failed cell keeps error.txt, uncounted
    states, _ = sweep_cells.survey(cli.load_grid(grid))
    failed = next(s for s in states if s.cell["mode"] == "fail")
    assert (
        not failed.finished and (failed.path / "error.txt").exists()
    )  # so the next sweep runs it again
    assert not [
        p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")
    ]  # no lock, no staging left


def test_a_task_whose_worker_dies_twice_fails_alone_and_the_others_go_on():
    from dmllab.experiments.workers import run_tasks
    from pool_tasks import die

    outcomes = list(run_tasks(die, ["a", "die", "b"], workers=2))
    assert sorted(o.result for o in outcomes if o.result) == ["A", "B"]
    deaths = [(o.task, o.died, o.retrying) for o in outcomes if o.died]
    assert deaths == [("die", "killed by SIGKILL", True), ("die", "killed by SIGKILL", False)]


def descendants(pid):
    children = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def alive(pid):
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.slow
def test_killing_the_sweep_takes_its_workers_and_kernels_with_it(tmp_path):
    grid_file(tmp_path, ["sleep"], seeds=[0])
    main = subprocess.Popen(
        [sys.executable, "-m", "dmllab", "sweep", "grid.yaml"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.time() + 120
    while not list((tmp_path / "flags").glob("started-*")) and time.time() < deadline:
        time.sleep(0.2)
    family = descendants(main.pid)
    kernels = [int(p.read_text()) for p in (tmp_path / "flags").glob("started-*")]
    assert len(kernels) == 1 and set(kernels) < set(family)  # the worker and its kernel
    main.kill()
    main.wait()
    time.sleep(5)
    assert [pid for pid in family if alive(pid)] == []
    # the lock died with its owner
    FolderLock(tmp_path / "out", "the next sweep").acquire().release()


def test_two_sweeps_never_share_a_folder(tmp_path, capsys):
    grid = grid_file(tmp_path, ["ok"])
    (tmp_path / "out").mkdir()
    with FolderLock(tmp_path / "out", "a test"):
        assert cli.main(["sweep", str(grid)]) == 1
        assert re.search(f"in use by PID {os.getpid()} .*a test", capsys.readouterr().err)
        with pytest.raises(FolderBusy, match=f"in use by PID {os.getpid()} .*a test"):
            cli.main(["--debug", "sweep", str(grid)])
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
        import time
        from pathlib import Path
        from dmllab.locks import FolderLock
        FolderLock(Path({str(tmp_path / "out")!r}), "a killed sweep").acquire()
        print("held", flush=True)
        time.sleep(60)"""),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(FolderBusy, match=f"PID {holder.pid}"):
        FolderLock(tmp_path / "out", "a test").acquire()
    holder.kill()
    holder.wait()
    with FolderLock(
        tmp_path / "out", "a test"
    ):  # the operating system released the dead owner's lock
        pass
    assert not (tmp_path / "out" / ".lock").exists()


def test_edited_grid_and_foreign_cells_are_refused_before_any_work(tmp_path, capsys):
    (tmp_path / "grid.yaml").write_text(
        "fit: {epochs: 2}\nparameters:\n  loss: [triplet]\nseeds: [0]\nout: out\n"
    )
    grid = cli.load_grid(tmp_path / "grid.yaml")
    fake_cell(
        grid.out,
        {"loss": "triplet", "seed": 0},
        fit_recorded(epochs=1, loss="triplet"),
        {"recall@1": 0.5},
    )
    assert cli.main(["sweep", str(tmp_path / "grid.yaml")]) == 1
    assert re.search(
        r"1 finished cell.*another configuration.*fit.epochs: 1 -> 2", capsys.readouterr().err
    )
    (tmp_path / "grid.yaml").write_text(
        "fit: {epochs: 1}\nparameters:\n  loss: [margin]\nseeds: [0]\nout: out\n"
    )
    assert cli.main(["sweep", str(tmp_path / "grid.yaml")]) == 1
    assert re.search(r"not in this grid.*loss=triplet", capsys.readouterr().err)
    assert sorted(p.name for p in grid.out.iterdir()) == [
        sweep_cells.cell_name({"loss": "triplet", "seed": 0})
    ]


def test_the_report_never_mixes_two_sweeps_or_counts_damaged_cells(tmp_path):
    out = tmp_path / "out"
    fake_cell(out, {"loss": "triplet", "seed": 0}, fit_recorded(epochs=1), {"recall@1": 0.5})
    damaged = fake_cell(
        out, {"loss": "triplet", "seed": 1}, fit_recorded(epochs=1), {"recall@1": 0.7}
    )
    (damaged / "metrics.json").write_text('{"recall@1": 0.99}')
    cells, skipped = sweep_cells.finished_cells(out)
    assert len(cells) == 1 and "metrics.json changed" in skipped[0]
    fake_cell(out, {"loss": "triplet", "seed": 2}, fit_recorded(epochs=5), {"recall@1": 0.6})
    with pytest.raises(ValueError, match=r"mixes cells of different sweeps.*fit.epochs: 1 -> 5"):
        sweep_cells.finished_cells(out)


HOSTILE = [
    "<img src=x onerror=alert(1)>",
    "</script><script>alert(2)</script>",
    "<a href='javascript:alert(3)'>x</a>",
]


class Elements(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.scripts = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        if self.lasttag == "script":
            self.scripts.append(data)


def test_report_takes_any_json_parameter_and_escapes_every_value(tmp_path):
    out = tmp_path / "out"
    values = [{"mu": 0.05}, {"mu": 1e6}, [1, 2], *HOSTILE]
    for i, value in enumerate(values):
        for seed in (0, 1):
            fake_cell(
                out,
                {"geometry_options": value, "seed": seed},
                {
                    "notebook": "n.ipynb",
                    "defaults": {},
                    "parameters": {"geometry_options": value, "seed": seed, "quick": False},
                },
                {"recall@1": 0.1 * i + 0.01 * seed},
            )
    assert cli.main(["report", str(out)]) == 0
    page = (out / "results.html").read_text()
    elements = Elements()
    elements.feed(page)
    assert not [tag for tag, _ in elements.tags if tag in ("img", "a")]
    assert not [attrs for _, attrs in elements.tags if any(name.startswith("on") for name in attrs)]
    assert not [script for script in elements.scripts if script.lstrip().startswith("alert(")]
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    table = (out / "results.csv").read_text()
    assert '{""mu"": 0.05}' in table and "[1, 2]" in table


def test_report_of_one_seed_shows_the_mean_alone_and_of_two_its_interval(tmp_path, capsys):
    out = tmp_path / "out"
    for loss, r1 in (("triplet", 0.169), ("contrastive", 0.25)):
        fake_cell(out, {"loss": loss, "seed": 0}, fit_recorded(epochs=1), {"recall@1": r1})
    assert cli.main(["report", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["loss", "recall@1"]
    assert lines[1].split() == ["contrastive", "0.250", "(n=1)"]  # no "± 0.000": no spread
    assert lines[2].split() == ["triplet", "0.169", "(n=1)"]
    fake_cell(out, {"loss": "triplet", "seed": 1}, fit_recorded(epochs=1), {"recall@1": 0.171})
    assert cli.main(["report", str(out)]) == 0
    assert "0.170 ± 0.013 (n=2)" in capsys.readouterr().out


def test_report_of_an_unknown_metric_names_it_and_the_known_ones_in_one_line(tmp_path, capsys):
    out = tmp_path / "out"
    metrics = {"recall@1": 0.5, "map@r": 0.25}
    fake_cell(out, {"loss": "triplet", "seed": 0}, fit_recorded(epochs=1), metrics)
    assert cli.main(["report", str(out), "--metric", "map@r", "--metric", "bogus"]) == 1
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "KeyError" not in error
    assert "no metric(s) ['bogus']" in error and "metrics: ['recall@1', 'map@r']" in error


def test_report_of_a_lesson_sweep_puts_the_swept_values_side_by_side_with_their_difference(
    tmp_path, capsys
):
    out = tmp_path / "out"
    variants = [f"{data}-{pos}" for data in ("circle", "parity") for pos in ("random", "nearest")]
    names = ["recall@1", "fine_recall@1", "fine_nmi", "subcluster_ari"]
    for epochs in (5, 10):
        for seed in (0, 1, 2):
            metrics = {}
            for variant in variants:
                for name in names:  # 10 epochs gain 0.02 on every seed, up to 0.002
                    metrics[f"{variant}/{name}"] = (
                        0.5 + 0.01 * seed + (epochs == 10) * (0.02 + 0.001 * seed)
                    )
                    metrics[f"{variant}/{name}_std"] = 0.02
            metrics["circle-nearest - random/fine_recall@1"] = 0.1
            metrics["circle-nearest - random/fine_recall@1_lower"] = 0.05
            parameters = {"epochs": epochs, "seed": seed, "quick": False}
            recorded = {"notebook": "01.ipynb", "defaults": {}, "parameters": parameters}
            fake_cell(out, {"epochs": epochs, "seed": seed}, recorded, metrics)
    assert cli.main(["report", str(out)]) == 0
    text = capsys.readouterr().out
    lines = text.split("\n\nwrote")[0].splitlines()
    assert max(map(len, lines)) < 160
    assert "_std" not in text and "_lower" not in text
    # one row per metric, the two swept values side by side, then their paired difference
    assert lines[0].split() == ["metric", "epochs=5", "epochs=10", "epochs=10", "-", "epochs=5"]
    assert len(lines) == 1 + len(variants) * len(names) + 1
    row = next(line for line in lines if line.startswith("parity-nearest/fine_nmi "))
    assert "0.510 ± 0.025 (n=3)" in row and "0.531 ± 0.027 (n=3)" in row
    assert row.endswith("+0.021 (+0.019, +0.023)")  # the claim rule: paired, with both bounds
    summary = pd.read_csv(out / "results.csv")  # results.csv keeps every key
    assert "circle-random/recall@1_std_mean" in summary
    assert "circle-nearest - random/fine_recall@1_lower_mean" in summary


@settings(max_examples=25, deadline=None)
@given(
    st.lists(
        st.dictionaries(
            st.sampled_from(["tag", "lr", "opts"]),
            st.one_of(
                st.text(max_size=6),
                st.integers(),
                st.floats(allow_nan=False),
                st.lists(st.integers(), max_size=2),
            ),
            min_size=1,
        ),
        min_size=2,
        max_size=6,
    )
)
def test_cell_folder_names_are_distinct_safe_and_stable(cells):
    distinct = {canonical(cell): sweep_cells.cell_name(cell) for cell in cells}
    assert len(set(distinct.values())) == len(distinct)
    for cell in cells:
        name = sweep_cells.cell_name(cell)
        assert name == sweep_cells.cell_name(dict(reversed(list(cell.items()))))
        assert "/" not in name and not name.startswith(".") and len(name) <= 93


def test_values_that_print_alike_get_their_own_cells():
    names = {sweep_cells.cell_name({"tag": tag, "seed": 0}) for tag in ("a b", "a/b", "a?b", "a_b")}
    assert len(names) == 4


def tmpfs(path, options):
    path.mkdir(exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.decode().strip()})")


@pytest.mark.slow
def test_full_and_read_only_disks_fail_before_any_work_then_cells_fail_in_one_line(tmp_path):
    grid = grid_file(tmp_path, ["big"], out=str(tmp_path / "disk" / "out"))
    try:
        tmpfs(tmp_path / "disk", "size=512k")
        result = dmllab("sweep", str(grid), cwd=tmp_path)
        assert result.returncode == 1 and result.stderr.count("\n") == 1, result.stderr
        assert (
            "No space left on device (ENOSPC)" in result.stderr and ".write-probe-" in result.stderr
        )
        assert list((tmp_path / "disk" / "out").iterdir()) == []
        subprocess.run(["umount", str(tmp_path / "disk")], check=True)
        tmpfs(tmp_path / "disk", "size=2m")
        result = dmllab("sweep", str(grid), cwd=tmp_path)
        assert result.returncode == 1
        assert "FAILED" in result.stdout and "No space left on device" in result.stdout
        assert "Traceback" not in result.stdout + result.stderr
        assert finished(tmp_path / "disk" / "out") == []
        subprocess.run(["mount", "-o", "remount,ro", str(tmp_path / "disk")], check=True)
        result = dmllab("sweep", str(grid), cwd=tmp_path)
        assert result.returncode == 1 and "Read-only file system (EROFS)" in result.stderr, (
            result.stderr
        )
    finally:
        subprocess.run(["umount", str(tmp_path / "disk")], capture_output=True)


def test_the_demo_report_escapes_every_value(tmp_path):
    from dmllab.report import LessonResult, save_lesson_outputs, write_report

    name = HOSTILE[0]
    save_lesson_outputs(tmp_path / "lesson", {f"{HOSTILE[1]}/recall@1": 0.5})
    lesson = LessonResult(
        name=name,
        notebook=tmp_path / "lesson.ipynb",
        output_dir=tmp_path / "lesson",
        seconds=1.0,
        error=HOSTILE[2],
    )
    page = write_report(tmp_path, [lesson], title=HOSTILE[0]).read_text()
    elements = Elements()
    elements.feed(page)
    assert [tag for tag, _ in elements.tags if tag == "img"] == []
    assert [
        attrs
        for tag, attrs in elements.tags
        if tag == "a" and "javascript" in attrs.get("href", "")
    ] == []
    assert not [script for script in elements.scripts if script.lstrip().startswith("alert(")]
