"""The command line: sweeps (validation, parallel workers, resumability), report, run, fit."""

import argparse
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import nbformat
import pytest

from dmllab import cli, lessons
from dmllab.experiments.grid import GridError

FIT_GRID = """\
fit:
  dataset: mixture
  dataset_options: {num_classes: 6, modes_per_class: 2, dim: 4, per_mode: 20}
  split: stratified
  epochs: 2
  batches_per_epoch: 3
  classes_per_batch: 3
  samples_per_class: 4
  embedding_dim: 4
parameters:
  positives: [random, nearest]
  loss: [triplet, contrastive]
seeds: [0, 1]
out: sweep-out
"""


def dmllab(*args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "dmllab", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.slow
def test_sweep_runs_resumes_and_reports(tmp_path):
    (tmp_path / "grid.yaml").write_text(FIT_GRID)
    first = dmllab("sweep", "grid.yaml", "--workers", "2", cwd=tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "8 cells, 0 already done, 8 to run" in first.stdout
    cells = sorted((tmp_path / "sweep-out").iterdir())
    assert len(cells) == 8
    for cell in cells:
        assert {"config.json", "metrics.json", "history.csv", "model.pt", "params.json"} <= {
            p.name for p in cell.iterdir()
        }
    second = dmllab("sweep", "grid.yaml", "--workers", "2", cwd=tmp_path)
    assert "8 already done, 0 to run" in second.stdout
    report = dmllab("report", "sweep-out", cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    assert "recall@1" in report.stdout and "n=2" in report.stdout
    assert report.stdout.count("nearest") == 2 and report.stdout.count("random") == 2
    assert (tmp_path / "sweep-out" / "results.csv").exists()
    html = (tmp_path / "sweep-out" / "results.html").read_text()
    assert "plotly" in html.lower()


@pytest.mark.parametrize(
    "text, message",
    [
        (
            "fit: {epochs: 2}\nparameters:\n  positives: []\n",
            ":3: parameter 'positives' needs a non-empty list",
        ),
        ("fit: {epochs: 2}\nparameter:\n  positives: [random]\n", ":2: unknown key 'parameter'"),
        (
            "fit: {epochs: 2}\nparameters:\n  lsd_alpa: [1.0]\n",
            ":3: Config has no field 'lsd_alpa'",
        ),
        (
            "fit: {epochs: 2}\nparameters:\n  loss: [triplet, nope]\n",
            "Config.loss='nope' is not known",
        ),
        ("fit: [unclosed\n", "not valid YAML"),
        ("parameters:\n  loss: [triplet]\n", "give exactly one of 'notebook'"),
        ("fit: {epochs: 2}\nseeds: [a]\n", ":2: 'seeds' is a non-empty list of integers"),
    ],
)
def test_bad_grid_files_fail_before_any_run_with_the_line_at_fault(tmp_path, text, message):
    path = tmp_path / "grid.yaml"
    path.write_text(text)
    with pytest.raises(GridError) as error:
        cli.load_grid(path)
    assert message in str(error.value)
    assert not (tmp_path / "grid").exists()


def test_unreadable_grid_file(tmp_path):
    with pytest.raises(GridError, match="cannot read"):
        cli.load_grid(tmp_path / "missing.yaml")


def test_a_notebook_user_catches_a_bad_grid_as_a_value_error(tmp_path):
    # library code raises ordinary exceptions: `except ValueError` catches a bad grid, and nothing
    # ends the process (IPython shows the traceback)
    path = tmp_path / "grid.yaml"
    path.write_text("fit: {epochs: 2}\nparameters:\n  positives: []\n")
    caught = None
    try:
        cli.load_grid(path)
    except ValueError as error:
        caught = error
    assert caught is not None and not isinstance(caught, SystemExit)
    assert "grid.yaml:3: parameter 'positives' needs a non-empty list" in str(caught)


def test_library_errors_become_one_line_and_status_1_in_the_command_line(tmp_path, capsys):
    assert cli.main(["report", str(tmp_path / "nowhere")]) == 1
    error = capsys.readouterr().err
    assert (
        error
        == f"dmllab report: {tmp_path / 'nowhere'}: no such folder (--debug shows the traceback)\n"
    )
    with pytest.raises(GridError, match="no such folder"):
        cli.main(["--debug", "report", str(tmp_path / "nowhere")])
    assert cli.main(["demo", "--notebooks", str(tmp_path)]) == 1
    assert "no lesson notebooks" in capsys.readouterr().err


def tiny_notebook(path):
    notebook = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell("seed = 0\nquick = False\noutput_dir = None\nscale = 2")
    params.metadata["tags"] = ["parameters"]
    body = nbformat.v4.new_code_cell(
        textwrap.dedent("""\
        import dmllab as dl
        dl.report.save_lesson_outputs(output_dir, {"answer": scale * 21, "seed": seed})""")
    )
    notebook.cells = [params, body]
    notebook.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(notebook, path)


@pytest.mark.slow
def test_run_validates_parameters_and_writes_metrics(tmp_path):
    tiny_notebook(tmp_path / "lesson.ipynb")
    bad = dmllab("run", "lesson.ipynb", "-p", "scal", "3", cwd=tmp_path)
    assert bad.returncode != 0
    assert "no parameter(s) scal" in bad.stderr and "scale" in bad.stderr
    good = dmllab("run", "lesson.ipynb", "-p", "scale", "3", "--out", "out", cwd=tmp_path)
    assert good.returncode == 0, good.stderr
    metrics = json.loads(next((tmp_path / "out").rglob("metrics.json")).read_text())
    assert metrics == {"answer": 63.0, "seed": 0.0}


def test_parse_value_reads_yaml_scalars():
    assert cli.parse_value("0.2") == 0.2
    assert cli.parse_value("true") is True
    assert cli.parse_value("nearest") == "nearest"
    assert cli.parse_value("[1, 2]") == [1, 2]


@pytest.mark.slow
def test_fit_command_writes_a_run_record(tmp_path):
    from dmllab.config import Config

    config = Config(
        dataset="mixture",
        split="stratified",
        epochs=1,
        batches_per_epoch=2,
        classes_per_batch=3,
        samples_per_class=4,
        embedding_dim=4,
    )
    (tmp_path / "config.json").write_text(config.to_json())
    result = dmllab("fit", "config.json", "--out", "run", "--quiet", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["recall@1"] > 0


def test_executed_notebooks_run_without_progress_bars_and_the_setting_is_restored(
    tmp_path, monkeypatch
):
    import papermill

    seen = []
    monkeypatch.setattr(
        papermill,
        "execute_notebook",
        lambda *args, **kwargs: seen.append(os.environ.get("DMLLAB_PROGRESS")),
    )
    monkeypatch.setenv("DMLLAB_PROGRESS", "1")
    lessons.execute(tmp_path / "in.ipynb", tmp_path / "out" / "in.ipynb", {})
    assert seen == ["0"] and os.environ["DMLLAB_PROGRESS"] == "1"


def test_a_cell_that_sets_quick_runs_and_records_its_own_value(tmp_path):
    # the newcomer's case: `parameters: {quick: [true, false]}` recorded (and ran) the grid's quick
    notebook = tmp_path / "lesson.ipynb"
    nbformat.write(
        nbformat.v4.new_notebook(
            cells=[
                nbformat.v4.new_code_cell(
                    "seed = 0\nquick = False\noutput_dir = None", metadata={"tags": ["parameters"]}
                )
            ],
            metadata={
                "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
            },
        ),
        notebook,
    )
    grid_file = tmp_path / "grid.yaml"
    grid_file.write_text(f"notebook: {notebook}\nparameters:\n  quick: [true, false]\nseeds: [0]\n")
    grid = cli.load_grid(grid_file)
    assert grid.recorded({"quick": True, "seed": 0})["parameters"]["quick"] is True
    assert grid.recorded({"seed": 0})["parameters"]["quick"] is False


def test_every_argument_of_every_sub_command_says_what_it_is():
    parser = cli.parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, sub in commands.choices.items():
        for action in sub._actions:
            assert action.help, f"dmllab {name}: {'/'.join(action.option_strings) or action.dest}"


@pytest.mark.parametrize("where", ["before", "after"])
def test_debug_works_before_or_after_the_sub_command(tmp_path, where):
    args = ["report", str(tmp_path / "none.json")]
    args = ["--debug", *args] if where == "before" else [*args, "--debug"]
    parsed = cli.parser().parse_args(args)
    assert parsed.debug is True
    assert cli.parser().parse_args(["report", "x"]).debug is False


def test_report_of_a_demo_folder_says_where_its_report_is(tmp_path):
    (tmp_path / "report.html").write_text("<html></html>")
    with pytest.raises(SystemExit, match=r"is a `dmllab demo` folder: its report is .*report.html"):
        cli.main(["report", str(tmp_path)])


@pytest.mark.slow
def test_ctrl_c_in_a_sweep_prints_one_line(tmp_path):
    grid = FIT_GRID.replace("epochs: 2", "epochs: 200").replace("seeds: [0, 1]", "seeds: [0]")
    (tmp_path / "grid.yaml").write_text(grid)
    sweep = subprocess.Popen(
        [sys.executable, "-m", "dmllab", "sweep", "grid.yaml", "--workers", "2"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a terminal's foreground job
    )
    assert "to run" in sweep.stdout.readline() + sweep.stdout.readline()
    time.sleep(3)  # the workers are training
    os.killpg(sweep.pid, signal.SIGINT)  # what Ctrl-C in a terminal sends
    _, err = sweep.communicate(timeout=60)
    assert sweep.returncode == 130, err
    assert err.strip().splitlines() == [
        "dmllab sweep: interrupted; finished cells are kept: the same command runs the rest"
    ]


@pytest.mark.slow
def test_demo_runs_the_lessons_into_one_report(tmp_path):
    """`make demo` is `dmllab demo`: here on lesson 00's quick form (the lessons themselves run
    under nbval in `make test`)."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    result = dmllab(
        "demo",
        "--quick",
        "--only",
        "00",
        "--out",
        str(tmp_path),
        "--notebooks",
        os.path.join(root, "notebooks"),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (run,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    html = (run / "report.html").read_text()
    assert 'id="00_tour"' in html and "<table" in html
    assert (run / "00_tour" / "metrics.json").exists() and (run / "00_tour.ipynb").exists()
    executed = nbformat.read(run / "00_tour.ipynb", as_version=4)
    assert not [
        o for c in executed.cells for o in c.get("outputs", []) if o.get("output_type") == "error"
    ]
