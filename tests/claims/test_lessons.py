"""Every lesson, run once at its default parameters under nbval (`make test` runs
`pytest --nbval-lax`; the root conftest.py points each lesson's outputs into this session's
folder), and every test here reads what that run wrote:

- the report of the runs lists every lesson with numbers, and no lesson leaves a file in its
  temporary folder (it writes into its output folder only);
- each lesson's claims hold on paired per-seed differences: the one-sided 95 % lower confidence
  bound (`dmllab.claims`) clears zero (or, for "does not hurt", a stated non-inferiority margin);
- a lesson's prose states no number its run does not produce: "What we saw" is rendered from the
  lesson's metrics (`dmllab.findings`), its source holds no hand-written measurement, every
  number in the rendered text is a value of the lesson's metrics.json at the printed precision,
  and every verdict in it follows the bounds it read (`dmllab.claims.verdict`).

Run alone (`pytest tests/claims`), the `lesson_output` fixture runs each lesson it needs, once,
through nbval. Nothing else in `make test` executes the lessons.
"""

import json
import re
from pathlib import Path

import nbformat
import pytest

from dmllab.lessons import LessonResult
from dmllab.report import write_report

ROOT = Path(__file__).resolve().parents[2]
LESSONS = sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
NUMBER = re.compile(r"[-+]?\d+\.\d+")

pytestmark = pytest.mark.slow


def metrics(lesson_output, lesson_prefix):
    lesson = next(name for name in LESSONS if name.startswith(lesson_prefix))
    return json.loads((lesson_output(lesson) / "metrics.json").read_text())


def test_the_report_of_the_runs_lists_every_lesson(lesson_output, tmp_path):
    results = [
        LessonResult(
            name=lesson,
            notebook=ROOT / "notebooks" / f"{lesson}.ipynb",
            output_dir=lesson_output(lesson),
        )
        for lesson in LESSONS
    ]
    html = write_report(tmp_path, results).read_text()
    for lesson in LESSONS:
        assert f'id="{lesson}"' in html
        assert (lesson_output(lesson) / "metrics.json").exists(), lesson
    assert html.count("<table") >= len(LESSONS)


# torch keeps its compiler's cache in TMPDIR (torchinductor_<user>) whoever imports it, and
# Python's multiprocessing its socket folder (pymp-*, for a DataLoader's workers), which it removes
# when the kernel exits cleanly; nbval kills its kernels
LIBRARY_CACHES = ("torchinductor_", "pymp-")


@pytest.mark.parametrize("lesson", LESSONS)
def test_a_lesson_leaves_nothing_in_its_temporary_folder(lesson_output, lesson):
    folder = lesson_output(lesson)
    scratch = folder.parent / f".tmp-{lesson}"
    left = sorted(
        p.name
        for p in (scratch.iterdir() if scratch.exists() else [])
        if not p.name.startswith(LIBRARY_CACHES)
    )
    assert not left, f"{lesson} left {left} in its TMPDIR; write into output_dir instead"


# ----------------------------------------------------------------------------- prose = run
NEXT_SECTION = re.compile(r"^## (?!What we saw)", re.MULTILINE)


def what_we_saw(cells):
    """(cell type, text) from the '## What we saw' heading up to the next section's heading
    ('## Exercises', or any other section that follows it)."""
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


def rendered_findings(lesson_output, lesson):
    """The lesson's rendered findings: [{"text": markdown, "verdicts": [...]}]."""
    path = lesson_output(lesson) / "findings.json"
    return json.loads(path.read_text()) if path.exists() else []


def matches_a_metric(number, values):
    decimals = len(number.split(".")[1])
    target = float(number)
    return any(
        abs(round(value, decimals) - target) < 0.5 * 10**-decimals + 1e-12
        for value in values
        if value is not None
    )


def findings_cells(lesson):
    notebook = nbformat.read(ROOT / "notebooks" / f"{lesson}.ipynb", as_version=4)
    return [c for c in notebook.cells if c.cell_type == "code" and "findings(" in c.source]


@pytest.mark.parametrize("lesson", LESSONS)
def test_every_rendered_number_is_a_value_of_the_lessons_metrics(lesson_output, lesson):
    values = list(metrics(lesson_output, lesson[:3]).values())
    texts = rendered_findings(lesson_output, lesson)
    assert len(texts) == len(findings_cells(lesson)), "render every findings() before saving"
    for found in texts:
        for number in NUMBER.findall(found["text"]):
            assert matches_a_metric(number, values), (lesson, number)
    assert texts or lesson.startswith("05"), f"{lesson} renders no findings"


def expected_outcome(values, verdict):
    """The claim rule, written out again: a two-text verdict by the sign of its number, a
    three-text one by both bounds of its claim."""
    key = verdict["key"]
    if "value" in verdict:
        return "above zero" if values[key] > 0 else "not above zero"
    lower, upper = values[f"{key}_lower"], values[f"{key}_upper"]
    assert lower <= values[key] <= upper, (key, lower, values[key], upper)
    return "higher" if lower > 0 else "lower" if upper < 0 else "undecided"


@pytest.mark.parametrize("lesson", LESSONS)
def test_every_rendered_verdict_follows_the_bounds_of_the_lessons_metrics(lesson_output, lesson):
    values = metrics(lesson_output, lesson[:3])
    for found in rendered_findings(lesson_output, lesson):
        for verdict in found["verdicts"]:
            read = {k: verdict[k] for k in ("value", "lower", "upper") if k in verdict}
            key = verdict["key"]
            assert read == {k: values[key if k == "value" else f"{key}_{k}"] for k in read}, (
                lesson,
                key,
            )
            assert verdict["outcome"] == expected_outcome(values, verdict), (lesson, verdict)
            assert verdict["words"] in found["text"], (lesson, verdict)


# ----------------------------------------------------------------------------- claims
def lower(values, key):
    return values[f"{key}_lower"]


def test_lesson_00_training_helps_seen_classes_far_more_than_unseen_ones(lesson_output):
    values = metrics(lesson_output, "00_")
    # each against raw pixels on the same seed's test split
    seen, unseen = "seen-trained - seen-pixels/map@r", "trained - pixels/map@r"
    assert lower(values, seen) > 0, values
    assert lower(values, seen) > values[f"{unseen}_upper"], values


def test_lesson_01_nearest_positives_keep_subclusters_under_noise(lesson_output):
    values = metrics(lesson_output, "01_")
    noisy = "parity-noise10-nearest - noise10-random"
    assert lower(values, f"{noisy}/fine_recall@1") > 0, values
    assert lower(values, f"{noisy}/fine_nmi") > 0, values
    # even without noise, random positives merge digits
    assert lower(values, "parity-noise0-nearest - noise0-random/fine_nmi") > 0, values
    # class-level retrieval is not hurt: non-inferior within the margin the lesson states
    assert lower(values, f"{noisy}/recall@1") > -values["class_recall_margin"], values


def test_lesson_02_lsd_ends_higher_and_memorises_less(lesson_output):
    values = metrics(lesson_output, "02_")
    assert lower(values, "noise-lsd - baseline/recall@1") > 0, values
    assert lower(values, "noise-baseline - lsd/memorisation") > 0, values
    # the baseline memorises: its test curve peaks before the end and its memorisation climbs
    assert values["curve/baseline/peak"] > values["curve/baseline/last"], values
    assert values["memorised/baseline/last"] > values["memorised/baseline/first"], values


def test_lesson_03_learned_divergence_beats_euclidean_on_loggrid(lesson_output):
    values = metrics(lesson_output, "03_")
    assert lower(values, "loggrid-bregman - loggrid-euclidean/prototype_accuracy") > 0, values
    assert values["loggrid-bregman/asymmetry"] > 0.05
    # a large mu (strongly convex quadratic term) pulls the learned divergence back to Euclidean
    assert lower(values, "loggrid-bregman - loggrid-bregman-mu/asymmetry") > 0, values


def test_lesson_04_nearest_positives_compose_with_lsd(lesson_output):
    values = metrics(lesson_output, "04_")
    for context in ("plain-euclidean", "lsd-euclidean"):
        assert lower(values, f"nearest-{context} - random-{context}/fine_recall@1") > 0, values


def test_lesson_06_lsd_helps_on_classes_never_seen(lesson_output):
    values = metrics(lesson_output, "06_")
    # on classes never seen in training (trained under label noise), the whole ranking improves
    assert lower(values, "zero-shot-lsd - baseline/map@r") > 0, values
    # both tuning contrasts were measured on the same seeds (what the lesson's verdicts read)
    for budget in ("defaults", "tuned"):
        key = f"{budget}-nearest - random/fine_recall@1"
        assert values[f"{key}_lower"] <= values[key] <= values[f"{key}_upper"], values
