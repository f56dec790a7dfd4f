"""`dmllab demo` runs every lesson once, at its default parameters, and every test here reads
that run.

- the report lists every lesson with numbers, and no executed notebook has an error cell;
- each lesson's claims hold on paired per-seed differences: the one-sided 95 % lower confidence
  bound (`dmllab.claims`) clears zero (or, for "does not hurt", a stated non-inferiority margin);
- a lesson's prose states no number its run does not produce: "What we saw" is rendered from the
  lesson's metrics (`dmllab.findings`), its source holds no hand-written measurement, and every
  number in the rendered text is a value of the lesson's metrics.json at the printed precision.

This is the only place the notebooks are executed by `make test`.
"""

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from dmllab.claims import t_quantile

ROOT = Path(__file__).resolve().parents[2]
LESSONS = sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
NUMBER = re.compile(r"[-+]?\d+\.\d+")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    result = subprocess.run(
        [sys.executable, "-m", "dmllab", "demo", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=2400,
    )
    runs = list(out.iterdir())
    assert len(runs) == 1, result.stdout + result.stderr
    return runs[0], result


def metrics(demo, lesson_prefix):
    directory = next(
        p for p in demo[0].iterdir() if p.is_dir() and p.name.startswith(lesson_prefix)
    )
    return json.loads((directory / "metrics.json").read_text())


def test_demo_succeeds_and_reports_every_lesson(demo):
    folder, result = demo
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    assert "report:" in result.stdout
    html = (folder / "report.html").read_text()
    for lesson in LESSONS:
        assert f'id="{lesson}"' in html
        assert (folder / lesson / "metrics.json").exists(), lesson
    assert html.count("<table") >= len(LESSONS)


@pytest.mark.parametrize("lesson", LESSONS)
def test_executed_notebooks_have_no_error_cells(demo, lesson):
    notebook = nbformat.read(demo[0] / f"{lesson}.ipynb", as_version=4)
    errors = [
        o
        for c in notebook.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
        if o.get("output_type") == "error"
    ]
    assert not errors


# ----------------------------------------------------------------------------- prose = run
NEXT_SECTION = re.compile(r"^## (?!What we saw)", re.MULTILINE)


def what_we_saw(cells):
    """(cell type, text) from the '## What we saw' heading up to the next section's heading
    ('## Exercises', or a section that follows it, such as lesson 04's tuned comparison)."""
    inside, found = False, []
    for cell in cells:
        text = cell.source
        if cell.cell_type == "markdown" and "## What we saw" in text:
            inside, text = True, text[text.index("## What we saw") :]
        end = NEXT_SECTION.search(text) if cell.cell_type == "markdown" else None
        if end is not None:
            if inside:
                found.append((cell.cell_type, text[: end.start()]))
            inside = False
        elif inside:
            found.append((cell.cell_type, text))
    return found


@pytest.mark.parametrize("lesson", LESSONS)
def test_what_we_saw_states_no_hand_written_measurement(lesson):
    notebook = nbformat.read(ROOT / "notebooks" / f"{lesson}.ipynb", as_version=4)
    sections = what_we_saw(notebook.cells)
    assert sections, f"{lesson} has no '## What we saw' section"
    for kind, text in sections:
        if kind == "code":  # a findings template: numbers only inside placeholders
            text = re.sub(r"\{[^{}]*\}", "", text)
        assert not NUMBER.findall(text), (lesson, NUMBER.findall(text), text[:300])


def rendered_findings(notebook):
    for cell in notebook.cells:
        if cell.cell_type == "code" and "findings(" in cell.source:
            for output in cell.get("outputs", []):
                text = output.get("data", {}).get("text/markdown")
                if text:
                    yield text


def matches_a_metric(number, values):
    decimals = len(number.split(".")[1])
    target = float(number)
    return any(
        abs(round(value, decimals) - target) < 0.5 * 10**-decimals + 1e-12
        for value in values
        if value is not None
    )


@pytest.mark.parametrize("lesson", LESSONS)
def test_every_rendered_number_is_a_value_of_the_lessons_metrics(demo, lesson):
    notebook = nbformat.read(demo[0] / f"{lesson}.ipynb", as_version=4)
    values = list(metrics(demo, lesson[:3]).values())
    texts = list(rendered_findings(notebook))
    has_template = any("findings(" in c.source for c in notebook.cells if c.cell_type == "code")
    assert len(texts) == sum(
        "findings(" in c.source for c in notebook.cells if c.cell_type == "code"
    )
    for text in texts:
        for number in NUMBER.findall(text):
            assert matches_a_metric(number, values), (lesson, number)
    assert has_template or lesson.startswith("05"), f"{lesson} renders no findings"


# ----------------------------------------------------------------------------- claims
def lower(values, key):
    return values[f"{key}_lower"]


def one_sample_lower(values, key, seeds):
    """Lower 95% bound of a mean over seeds, from its mean and std (against a constant baseline)."""
    return values[key] - t_quantile(0.95, seeds - 1) * values[f"{key}_std"] / math.sqrt(seeds)


def test_lesson_00_training_helps_seen_classes_far_more_than_unseen_ones(demo):
    values = metrics(demo, "00_")
    seeds = int(values["seeds"])
    seen_gain = one_sample_lower(values, "seen-trained/map@r", seeds) - values["seen-pixels/map@r"]
    unseen_gain_upper = (
        values["trained/map@r"]
        - values["pixels/map@r"]
        + (values["trained/map@r"] - one_sample_lower(values, "trained/map@r", seeds))
    )
    assert seen_gain > 0 and seen_gain > unseen_gain_upper, values


def test_lesson_01_nearest_positives_keep_subclusters_under_noise(demo):
    values = metrics(demo, "01_")
    noisy = "parity-noise10-nearest - noise10-random"
    assert lower(values, f"{noisy}/fine_recall@1") > 0, values
    assert lower(values, f"{noisy}/fine_nmi") > 0, values
    # even without noise, random positives merge digits
    assert lower(values, "parity-noise0-nearest - noise0-random/fine_nmi") > 0, values
    # class-level retrieval is not hurt: non-inferior within the margin the lesson states
    assert lower(values, f"{noisy}/recall@1") > -values["class_recall_margin"], values


def test_lesson_02_lsd_ends_higher_and_memorises_less(demo):
    values = metrics(demo, "02_")
    assert lower(values, "noise-lsd - baseline/recall@1") > 0, values
    assert lower(values, "noise-baseline - lsd/memorisation") > 0, values
    # the baseline memorises: its test curve peaks before the end and its memorisation climbs
    assert values["curve/baseline/peak"] > values["curve/baseline/last"], values
    assert values["memorised/baseline/last"] > values["memorised/baseline/first"], values
    # on classes never seen in training, the whole ranking improves
    assert lower(values, "zero-shot-lsd - baseline/map@r") > 0, values


def test_lesson_03_learned_divergence_beats_euclidean_on_loggrid(demo):
    values = metrics(demo, "03_")
    assert lower(values, "loggrid-bregman - loggrid-euclidean/prototype_accuracy") > 0, values
    assert values["loggrid-bregman/asymmetry"] > 0.05
    # a large mu (strongly convex quadratic term) pulls the learned divergence back to Euclidean
    assert lower(values, "loggrid-bregman - loggrid-bregman-mu/asymmetry") > 0, values


def test_lesson_04_nearest_positives_compose_with_lsd(demo):
    values = metrics(demo, "04_")
    for context in ("plain-euclidean", "lsd-euclidean"):
        assert lower(values, f"nearest-{context} - random-{context}/fine_recall@1") > 0, values
