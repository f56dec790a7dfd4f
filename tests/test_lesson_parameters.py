"""A lesson checks its own parameters (`lessons.read_parameters`), however it is run: papermill's
text values are read like `dmllab run -p` reads them, an injected name the lesson lacks and a value
of the wrong kind are errors before any work, `output_dir` follows DMLLAB_OUTPUT_DIR."""

import ast
import json
import re
import sys
from pathlib import Path

import nbformat
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dmllab.lessons import OUTPUT_ENV, read_parameters
from dmllab.values import BadValue

ROOT = Path(__file__).resolve().parents[1]
PARAMETERS = "seed = 0\nquick = False\noutput_dir = None\nnoises = (0.0, 0.1)\nlr = 1e-3  # step\n"
CHECK = 'read_parameters(globals(), "99_test")'


def kernel(*injected, **values):
    """A namespace as IPython leaves it: the parameters cell, papermill's injected cell(s), then
    the current cell, in `In`; the values the cells assigned."""
    namespace = {"seed": 0, "quick": False, "output_dir": None, "noises": (0.0, 0.1), "lr": 1e-3}
    namespace.update(values)
    namespace["In"] = ["", "import dmllab", PARAMETERS, *injected, CHECK]
    return namespace


def test_papermill_text_is_read_like_dmllab_run_reads_it():
    namespace = kernel(
        '# Parameters\nquick = "false"\nnoises = "[0.0, 0.2]"\n',
        quick="false",
        noises="[0.0, 0.2]",
    )
    checked = read_parameters(namespace, "99_test")
    assert namespace["quick"] is False and checked["quick"] is False
    assert namespace["noises"] == [0.0, 0.2]


@pytest.mark.parametrize("text, value", [("True", True), ("false", False), ("TRUE", True)])
def test_booleans_given_as_text_are_booleans(text, value):
    namespace = kernel(f'quick = "{text}"\n', quick=text)
    read_parameters(namespace, "99_test")
    assert namespace["quick"] is value


@pytest.mark.parametrize(
    "injected, values, message",
    [
        ("noise_rate = 0.2\n", {"noise_rate": 0.2}, "99_test has no parameter(s) noise_rate"),
        ('quick = "maybe"\n', {"quick": "maybe"}, "parameter quick must be true or false"),
        ("seed = 1.5\n", {"seed": 1.5}, "parameter seed must be an int"),
        ("seed = -1\n", {"seed": -1}, "Config.seed=-1 is outside"),
        ('lr = ".inf"\n', {"lr": ".inf"}, "parameter lr: cannot read '.inf'"),
        ('noises = "0.2"\n', {"noises": "0.2"}, "parameter noises must be a list"),
    ],
)
def test_a_wrong_name_or_value_is_one_error_naming_it(injected, values, message):
    with pytest.raises(BadValue, match=re.escape(message)) as raised:
        read_parameters(kernel(injected, **values), "99_test")
    assert "\n" not in str(raised.value)


def test_an_unknown_name_lists_the_lessons_parameters():
    with pytest.raises(BadValue, match="its parameters are: lr, noises, output_dir, quick, seed"):
        read_parameters(kernel("noise_rate = 0.2\n", noise_rate=0.2), "99_test")


def test_output_dir_follows_the_environment_only_when_none_is_given(monkeypatch, tmp_path):
    monkeypatch.setenv(OUTPUT_ENV, str(tmp_path))
    namespace = kernel()
    read_parameters(namespace, "99_test")
    assert namespace["output_dir"] == str(tmp_path / "99_test")
    given = kernel('output_dir = "mine"\n', output_dir="mine")
    read_parameters(given, "99_test")
    assert given["output_dir"] == "mine"
    monkeypatch.delenv(OUTPUT_ENV)
    untouched = kernel()
    read_parameters(untouched, "99_test")
    assert untouched["output_dir"] is None


def test_without_input_history_only_output_dir_is_resolved(monkeypatch, tmp_path):
    # nbval runs cells without storing them: nothing can have been injected
    monkeypatch.setenv(OUTPUT_ENV, str(tmp_path))
    namespace = {"quick": False, "output_dir": None, "In": [""]}
    assert read_parameters(namespace, "99_test") == {"output_dir": str(tmp_path / "99_test")}


def test_a_check_run_after_another_cell_takes_nothing_for_injected(monkeypatch):
    # a student re-runs the check cell after a training cell: the history holds no parameters
    # cell right before it, so nothing is read as injected and the values stay as they are
    monkeypatch.delenv(OUTPUT_ENV, raising=False)  # a caller's lesson folder would resolve
    namespace = kernel(quick=True)
    namespace["In"] = ["", PARAMETERS, "config = dl.Config(epochs=3)", CHECK]
    assert read_parameters(namespace, "99_test") == {}
    assert namespace["quick"] is True


@settings(max_examples=40, deadline=None)
@given(
    value=st.one_of(
        st.booleans(),
        st.integers(-5, 5),
        st.floats(-10, 10, allow_nan=False),
        st.lists(st.floats(0, 1, allow_nan=False), max_size=3),
    )
)
def test_any_value_given_as_its_yaml_text_reads_back_as_itself(value):
    text = json.dumps(value)
    default = {bool: False, int: 0, float: 0.5, list: (0.0,)}[type(value)]
    namespace = {"p": text, "In": ["", f"p = {default!r}\n", f"p = {text!r}\n", CHECK]}
    read_parameters(namespace, "99_test")
    assert namespace["p"] == value and type(namespace["p"]) is type(value)


# ------------------------------------------------------------------ in a real kernel (papermill)
@pytest.fixture(scope="module")
def tiny_lesson(tmp_path_factory):
    folder = tmp_path_factory.mktemp("lesson")
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    notebook.cells = [
        nbformat.v4.new_code_cell("import json\n\nfrom dmllab.lessons import read_parameters"),
        nbformat.v4.new_code_cell(PARAMETERS, metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell(
            CHECK + '\nprint(json.dumps({"quick": quick, "noises": noises}))'
        ),
    ]
    path = folder / "99_test.ipynb"
    nbformat.write(notebook, path)
    return path


def papermill(notebook, *args):
    import subprocess

    return subprocess.run(
        [
            sys.executable,
            "-m",
            "papermill",
            str(notebook),
            str(notebook.with_name("out.ipynb")),
            *args,
            "--cwd",
            str(notebook.parent),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_plain_papermill_quick_false_runs_the_full_lesson(tiny_lesson):
    result = papermill(tiny_lesson, "-p", "quick", "false", "-p", "noises", "[0.0, 0.2]")
    assert result.returncode == 0, result.stderr[-2000:]
    out = nbformat.read(tiny_lesson.with_name("out.ipynb"), as_version=4)
    printed = json.loads(out.cells[-1].outputs[0]["text"])
    assert printed == {"quick": False, "noises": [0.0, 0.2]}


def test_plain_papermill_with_a_wrong_name_stops_at_the_check(tiny_lesson):
    result = papermill(tiny_lesson, "-p", "noise_rate", "0.2")
    assert result.returncode != 0
    assert "BadValue: 99_test has no parameter(s) noise_rate" in result.stderr


def test_every_lesson_checks_its_parameters_first_under_its_own_name():
    for path in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        cells = [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]
        index = next(i for i, c in enumerate(cells) if "parameters" in c.metadata.get("tags", []))
        first = ast.parse(cells[index + 1].source).body[0]
        assert isinstance(first, ast.Expr) and isinstance(first.value, ast.Call), path.name
        call = first.value
        assert ast.unparse(call.func) == "dl.lessons.read_parameters", path.name
        assert [ast.unparse(a) for a in call.args] == ["globals()", repr(path.stem)], path.name


# ------------------------------------------------- each lesson's own ranges, in its check cell
CUDA = __import__("torch").cuda.is_available()
BAD_VALUES = [  # (lesson, parameter, bad value, the start of the one-line error)
    ("00_tour", "epochs", 0, "parameter epochs: Config.epochs=0"),
    ("00_tour", "embedding_dim", 0, "parameter embedding_dim: Config.embedding_dim=0"),
    ("00_tour", "projection", "tsne", "parameter projection='tsne' is not known"),
    ("01_class_collapse", "circle_noise", -0.1, "parameter circle_noise=-0.1: Config.noise_rate"),
    (
        "01_class_collapse",
        "parity_noises",
        [0.0, 1.5],
        "parameter parity_noises=[0.0, 1.5]: Config.noise_rate=1.5 is outside [0, 1)",
    ),
    ("01_class_collapse", "parity_noises", [], "parameter parity_noises=[] must hold at least"),
    ("01_class_collapse", "circle_epochs", 0, "parameter circle_epochs=0: Config.epochs=0"),
    ("01_class_collapse", "parity_epochs", 0, "parameter parity_epochs=0: Config.epochs=0"),
    ("01_class_collapse", "projection", "tsne", "parameter projection='tsne' is not known"),
    ("02_listwise_self_distillation", "noise_rate", 0.0, "parameter noise_rate=0.0 is outside (0"),
    ("02_listwise_self_distillation", "lsd_alpha", -1.0, "parameter lsd_alpha: Config.lsd_alpha"),
    ("02_listwise_self_distillation", "lsd_tau", 0.0, "parameter lsd_tau: Config.lsd_tau"),
    ("02_listwise_self_distillation", "epochs", 0, "parameter epochs: Config.epochs"),
    (
        "02_listwise_self_distillation",
        "batches_per_epoch",
        0,
        "parameter batches_per_epoch: Config.batches_per_epoch",
    ),
    ("02_listwise_self_distillation", "num_seeds", 1, "parameter num_seeds=1 must be an int >= 2"),
    ("02_listwise_self_distillation", "workers", 0, "parameter workers=0 must be an int >= 1"),
    ("03_bregman_geometry", "large_mu", -1.0, "parameter large_mu=-1.0 is outside [0, inf]"),
    ("03_bregman_geometry", "num_seeds", 1, "parameter num_seeds=1 must be an int >= 2"),
    ("04_combinations", "noise_rate", 0.0, "parameter noise_rate=0.0 is outside (0, 1)"),
    ("04_combinations", "lsd_alpha", -1.0, "parameter lsd_alpha: Config.lsd_alpha"),
    ("04_combinations", "epochs", 0, "parameter epochs: Config.epochs"),
    ("04_combinations", "batches_per_epoch", 0, "parameter batches_per_epoch: Config"),
    ("04_combinations", "num_seeds", 1, "parameter num_seeds=1 must be an int >= 2"),
    ("04_combinations", "workers", 0, "parameter workers=0 must be an int >= 1"),
    ("05_your_data", "data_root", "/nonexistent/x", "parameter data_root='/nonexistent/x' is no"),
    ("05_your_data", "layout", "bogus", "parameter layout='bogus' is not known"),
    ("05_your_data", "image_size", 3, "parameter image_size=3 must be an int >= 8"),
    ("05_your_data", "model", "bogus", "parameter model: Config.model='bogus'"),
    ("05_your_data", "epochs", 0, "parameter epochs: Config.epochs"),
    ("05_your_data", "projection", "tsne", "parameter projection='tsne' is not known"),
    ("05_your_data", "device", "tpu", "parameter device: Config.device='tpu' is not"),
    ("06_reality_checks", "noise_rate", 1.0, "parameter noise_rate: Config.noise_rate=1.0"),
    ("06_reality_checks", "lsd_alpha", -1.0, "parameter lsd_alpha: Config.lsd_alpha"),
    ("06_reality_checks", "epochs", 0, "parameter epochs: Config.epochs"),
    ("06_reality_checks", "zero_shot_seeds", 1, "parameter zero_shot_seeds=1 must be an int >= 2"),
    ("06_reality_checks", "num_seeds", 1, "parameter num_seeds=1 must be an int >= 2"),
    ("06_reality_checks", "trials", 0, "parameter trials=0 must be an int >= 1"),
    ("06_reality_checks", "workers", 0, "parameter workers=0 must be an int >= 1"),
]
if not CUDA:
    BAD_VALUES.append(
        ("05_your_data", "device", "cuda", "parameter device='cuda': Config.device='cuda' but")
    )
COMMON = {"seed", "quick", "output_dir"}  # checked like Config.seed, a bool, any folder


def run_check_cell(lesson: str, injected: dict) -> dict:
    """The lesson's cells up to its check as a kernel runs them (imports, the parameters cell,
    papermill's cell with `injected`), then the check cell's first statement (the
    read_parameters call, before any work); returns the namespace."""
    path = ROOT / "notebooks" / f"{lesson}.ipynb"
    cells = [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]
    index = next(i for i, c in enumerate(cells) if "parameters" in c.metadata.get("tags", []))
    check = ast.get_source_segment(
        cells[index + 1].source, ast.parse(cells[index + 1].source).body[0]
    )
    injection = "".join(f"{name} = {value!r}\n" for name, value in injected.items())
    namespace: dict = {"In": ["", cells[0].source, cells[index].source]}
    for source in (cells[0].source, cells[index].source, injection):
        exec(source, namespace)
    if injection:
        namespace["In"].append(injection)
    namespace["In"].append(check)
    exec(check, namespace)
    return namespace


@pytest.mark.parametrize("lesson, name, value, message", BAD_VALUES)
def test_each_lessons_check_cell_refuses_a_bad_value_in_one_line(lesson, name, value, message):
    with pytest.raises(BadValue) as raised:
        run_check_cell(lesson, {name: value})
    assert str(raised.value).startswith(message), str(raised.value)
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize(
    "lesson", sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
)
def test_each_lessons_defaults_pass_its_check_and_every_parameter_has_a_bad_value_test(lesson):
    from dmllab.lessons import notebook_parameters

    namespace = run_check_cell(lesson, {})
    parameters = set(notebook_parameters(ROOT / "notebooks" / f"{lesson}.ipynb"))
    assert parameters <= set(namespace)
    tested = {name for name_of, name, *_ in BAD_VALUES if name_of == lesson}
    assert parameters - COMMON == tested, "give each new parameter a range and a bad value here"
