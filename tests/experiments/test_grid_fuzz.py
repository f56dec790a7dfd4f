"""Fuzzed grid files and `-p` values: every malformed one fails before any work, in one line.

Run with `-s` to see how many malformed inputs were tried and how many were rejected before work.
"""

import json

import nbformat
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dmllab import cli, lessons

BASE = {
    "dataset": "mixture",
    "epochs": 2,
    "classes_per_batch": 3,
    "samples_per_class": 4,
    "embedding_dim": 4,
}

BAD_BOOLEANS = ["'false'", "'true'", "no", "yes", "on", "off", "0", "1", "nope", "null", "[true]"]
BAD_FLOATS = [
    ".inf",
    "-.inf",
    ".nan",
    "'0.1'",
    "-1",
    "1e400",
    "0x10",
    "true",
    "[0.1]",
    "{a: 1}",
    "fast",
]
BAD_INTS = [
    "0",
    "-3",
    "2.5",
    "1e9",
    "0x1F",
    "1_000",
    "'8'",
    "true",
    "100000000000",
    ".inf",
    "null",
    "[4]",
]
BAD_SEEDS = [
    "[-5]",
    "[0, 0]",
    "[1.5]",
    "[a]",
    "[]",
    "5",
    "[true]",
    "[4294967296]",
    "[0x1]",
    "[.inf]",
]
FIELDS = {
    "normalize": BAD_BOOLEANS,
    "monitor_test": BAD_BOOLEANS,
    "lsd_include_self": BAD_BOOLEANS,
    "lr": BAD_FLOATS,
    "margin": BAD_FLOATS,
    "noise_rate": BAD_FLOATS,
    "weight_decay": BAD_FLOATS,
    "test_fraction": BAD_FLOATS,
    "lsd_tau": BAD_FLOATS,
    "epochs": BAD_INTS,
    "embedding_dim": BAD_INTS,
    "samples_per_class": BAD_INTS,
    "probe_size": BAD_INTS,
    "batches_per_epoch": [v for v in BAD_INTS if v != "null"],
    "loss": ["tripplet", "1", "true", "[triplet]", "null"],
    "geometry": ["manhattan", "0x1", "{a: 1}"],
}
STRUCTURE = [  # (where, text): whole-grid faults
    "fit: {epochs: 2}\nfit: {epochs: 3}\n",
    "fit: {epochs: 2, epochs: 3}\n",
    "fit: {epochs: 2}\nparameters:\n  loss: [triplet, triplet]\n",
    "fit: {epochs: 2}\nparameters:\n  loss: []\n",
    "fit: {epochs: 2}\nparameters:\n  loss: triplet\n",
    "fit: {epochs: 2}\nquick: 'no'\n",
    "fit: {epochs: 2}\nparameters:\n  seed: [1, 2]\n",
    "fit: {epochs: 2}\nparameters:\n  lsd_alpa: [1.0]\n",
    "fit: [epochs]\n",
    "fit: {epochs: 2}\nnotebook: x.ipynb\n",
    "- a\n- b\n",
    "fit: {epochs: 2\n",
]

PARAMETERS = (
    "seed = 0\nquick = False\noutput_dir = None\nlr = 1e-3\nepochs = 20\nembedding_dim = 32\n"
    'projection = "umap"\nnoises = (0.0, 0.1)'
)
BAD_PARAMETERS = {
    "quick": BAD_BOOLEANS,
    "lr": BAD_FLOATS,
    "epochs": [*BAD_INTS[:-2], "1e3"],
    "embedding_dim": BAD_INTS,
    "seed": ["-5", "4294967296", "1.5", "abc", "True", "0x1F"],
    "projection": ["1", "true", "[1]", "1.5", "null"],
    "noises": ["0.1", "abc", "{a: 1}"],
    "output_dir": [".inf", "[.nan]", "[1, 2"],
    "lrr": ["0.1"],
}


@pytest.fixture(scope="module")
def lesson(tmp_path_factory):
    path = tmp_path_factory.mktemp("lesson") / "lesson.ipynb"
    notebook = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell(PARAMETERS)
    cell.metadata["tags"] = ["parameters"]
    notebook.cells = [cell]
    notebook.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(notebook, path)
    return path


counts = {"grid files": [0, 0], "-p values": [0, 0]}


def fit_text(fit, parameters=None, seeds="[0, 1]"):
    lines = ["fit:"] + [f"  {k}: {v}" for k, v in fit.items()]
    if parameters:
        lines.append("parameters:")
        lines += [f"  {k}: [{', '.join(v)}]" for k, v in parameters.items()]
    return "\n".join([*lines, f"seeds: {seeds}", "out: out", ""])


def one_line_rejection(call, kind, capsys=None):
    """A library call raises a ValueError (never SystemExit); the command line (`capsys` given)
    exits with a one-line message: its own SystemExit, or status 1 and one line on stderr."""
    counts[kind][0] += 1
    if capsys is None:
        with pytest.raises(ValueError) as error:
            call()
        message = str(error.value)
    else:
        capsys.readouterr()
        try:
            status = call()
        except SystemExit as error:
            message = str(error.code)
        else:
            assert status == 1
            message = capsys.readouterr().err.removesuffix("\n")
    assert message and "\n" not in message and "Traceback" not in message, message
    counts[kind][1] += 1


@st.composite
def bad_grids(draw, lesson):
    kind = draw(st.sampled_from(["fit", "parameters", "seeds", "structure", "notebook"]))
    if kind == "notebook":
        name = draw(st.sampled_from(sorted(set(BAD_PARAMETERS) - {"seed"})))
        value = draw(st.sampled_from(BAD_PARAMETERS[name]))
        seeds = draw(st.sampled_from(["[0]", *BAD_SEEDS]))
        return f"notebook: {lesson}\nparameters:\n  {name}: [{value}]\nseeds: {seeds}\nout: out\n"
    base = {k: str(v) for k, v in BASE.items()}
    if kind == "structure":
        return draw(st.sampled_from(STRUCTURE))
    if kind == "seeds":
        return fit_text(base, seeds=draw(st.sampled_from(BAD_SEEDS)))
    field = draw(st.sampled_from(sorted(FIELDS)))
    bad = draw(st.sampled_from(FIELDS[field]))
    if kind == "fit":
        return fit_text({**base, field: bad})
    good = {"normalize": "true", "lr": "0.01", "epochs": "2"}.get(field)
    listed = [good, bad] if good and draw(st.booleans()) else [bad]
    return fit_text({k: v for k, v in base.items() if k != field}, {field: listed})


def test_every_malformed_grid_file_fails_before_any_work_in_one_line(tmp_path, lesson):
    @settings(
        max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
    )
    @given(bad_grids(lesson))
    def check(text):
        (tmp_path / "grid.yaml").write_text(text)
        one_line_rejection(lambda: cli.load_grid(tmp_path / "grid.yaml"), "grid files")
        assert not (tmp_path / "out").exists()

    check()
    print(
        f"\ngrid files: {counts['grid files'][0]} malformed tried, "
        f"{counts['grid files'][1]} rejected before work"
    )
    assert counts["grid files"][0] == counts["grid files"][1] > 0


@settings(max_examples=40, deadline=None)
@given(
    st.floats(1e-6, 10),
    st.integers(1, 50),
    st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=3, unique=True),
)
def test_well_formed_grids_are_accepted(tmp_path_factory, lr, epochs, seeds):
    path = tmp_path_factory.mktemp("grid") / "grid.yaml"
    path.write_text(
        fit_text({**BASE, "lr": repr(lr), "epochs": f"0{epochs}"}, seeds=json.dumps(seeds))
    )
    grid = cli.load_grid(path)
    assert grid.fit["lr"] == lr and grid.fit["epochs"] == epochs and grid.seeds == seeds


def test_every_malformed_command_line_value_fails_before_any_work_in_one_line(
    lesson, monkeypatch, capsys
):
    def no_work(*args, **kwargs):
        raise AssertionError("the notebook started with a malformed value")

    monkeypatch.setattr(lessons, "execute", no_work)

    @settings(
        max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
    )
    @given(
        st.sampled_from(sorted(BAD_PARAMETERS)).flatmap(
            lambda n: st.tuples(st.just(n), st.sampled_from(BAD_PARAMETERS[n]))
        ),
        st.lists(
            st.sampled_from([("lr", "1e-3"), ("seed", "010"), ("quick", "true")]),
            max_size=2,
            unique=True,
        ),
        st.booleans(),
    )
    def check(bad, good, twice):
        pairs = [*good, bad] + ([bad] if twice else [])
        argv = ["run", str(lesson), "--out", str(lesson.parent / "out")]
        for name, value in pairs:
            argv += ["-p", name, value]
        one_line_rejection(lambda: cli.main(argv), "-p values", capsys)
        assert not (lesson.parent / "out").exists()

    check()
    print(
        f"\n-p values: {counts['-p values'][0]} malformed tried, "
        f"{counts['-p values'][1]} rejected before work"
    )
    assert counts["-p values"][0] == counts["-p values"][1] > 0


def test_command_line_values_read_as_papermill_reads_them(lesson):
    parameters = cli.run_parameters(
        lesson, [("lr", "1e-3"), ("seed", "010"), ("quick", "True"), ("noises", "[0.2, 0.3]")]
    )
    assert parameters == {"lr": 0.001, "seed": 10, "quick": True, "noises": [0.2, 0.3]}
    assert type(parameters["seed"]) is int
