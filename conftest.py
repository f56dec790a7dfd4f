"""pytest's set-up for the whole repository: the lessons run once, under nbval, and the tests that
check their claims and prose read what those runs wrote.

`make test` runs `pytest --nbval-lax`. `testpaths` lists `notebooks` first, so nbval executes every
lesson, cell by cell, before the tests in `tests/` run. While nbval starts a lesson's kernel,
DMLLAB_OUTPUT_DIR names a folder of this session (the caller's, when set), and each lesson, run
without an `output_dir`, writes its metrics, figures and rendered findings into
`$DMLLAB_OUTPUT_DIR/<lesson>/` (`dmllab.lessons.read_parameters`); the kernel's TMPDIR is a
folder of its own there, which the lesson must leave empty. `tests/claims/test_lessons.py`
reads them there; when nbval did not run a lesson in this session (`pytest tests/claims`), that
test runs it itself, through nbval, once.

The lessons are stored without outputs, so strict `--nbval` (which compares each cell's output
with the stored one, and skips cells that were never run) would compare nothing and pass; it is
refused here, naming `--nbval-lax`, which runs every cell and fails on an error.
"""

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

from dmllab.lessons import OUTPUT_ENV

ROOT = Path(__file__).resolve().parent
LESSONS_RUN = pytest.StashKey[dict[str, bool]]()
"""The lessons whose cells nbval ran in this session: lesson name -> whether every cell passed."""
OUTPUTS = pytest.StashKey[Path]()
"""Where this session's lessons write their outputs."""
CREATED = pytest.StashKey[bool]()
"""Whether this session made that folder (and so removes it after a session that passed)."""


def pytest_configure(config: pytest.Config) -> None:
    """No lesson has run yet; their folder is made when the first one does."""
    config.stash[LESSONS_RUN] = {}
    config.stash[CREATED] = False


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Remove the lesson outputs of a session that passed, if it made their folder; else say
    where they are."""
    config = session.config
    if not config.stash.get(CREATED, False):
        return
    folder = config.stash[OUTPUTS]
    if exitstatus == 0:
        shutil.rmtree(folder, ignore_errors=True)
    else:
        print(f"\nthe lessons' outputs of this session are kept in {folder}")


def lesson_outputs(config: pytest.Config) -> Path:
    """This session's folder of lesson outputs (one sub-folder per lesson): DMLLAB_OUTPUT_DIR
    when the caller set it, else a new folder, made when a lesson first needs it."""
    if OUTPUTS not in config.stash:
        given = os.environ.get(OUTPUT_ENV)
        config.stash[CREATED] = not given
        config.stash[OUTPUTS] = Path(given or tempfile.mkdtemp(prefix="dmllab-lessons-"))
    return config.stash[OUTPUTS]


def lesson_scratch(config: pytest.Config, lesson: str) -> Path:
    """The lesson's kernel's temporary folder (its TMPDIR) in this session: a lesson must leave
    nothing there."""
    return lesson_outputs(config) / f".tmp-{lesson}"


def lessons_run(config: pytest.Config) -> dict[str, bool]:
    """The lessons nbval ran in this session, each with whether all its cells passed."""
    return config.stash[LESSONS_RUN]


def _lesson(item: pytest.Item) -> str | None:
    """The lesson an nbval item is a cell of, else None."""
    path = Path(str(item.path))
    return path.stem if path.suffix == ".ipynb" and path.parent == ROOT / "notebooks" else None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item: pytest.Item):
    """A lesson's kernel starts while its first cell is set up: it inherits DMLLAB_OUTPUT_DIR
    from this process then, and nothing else the session starts does."""
    lesson = _lesson(item)
    if lesson is None:
        yield
        return
    scratch = lesson_scratch(item.config, lesson)
    scratch.mkdir(parents=True, exist_ok=True)
    given = {OUTPUT_ENV: str(lesson_outputs(item.config)), "TMPDIR": str(scratch)}
    previous = {name: os.environ.get(name) for name in given}
    os.environ.update(given)
    try:
        yield
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """Record, per lesson, that nbval ran its cells and whether they all passed."""
    outcome = yield
    lesson = _lesson(item)
    if lesson is not None:
        run = lessons_run(item.config)
        run[lesson] = run.get(lesson, True) and not outcome.get_result().failed


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Refuse strict `--nbval` on notebooks stored without outputs: it would compare nothing."""
    if not getattr(config.option, "nbval", False) or getattr(config.option, "nbval_lax", False):
        return
    unrun = sorted(
        {
            Path(str(item.path)).name
            for item in items
            if Path(str(item.path)).suffix == ".ipynb"
            and all(
                cell.get("execution_count") is None
                for cell in item.parent.nb.cells
                if cell.cell_type == "code"
            )
        }
    )
    if unrun:
        raise pytest.UsageError(
            f"{', '.join(unrun)}: stored without outputs, so strict --nbval would compare "
            "nothing and pass; run the lessons with --nbval-lax (every cell runs, an error fails)"
        )


@pytest.fixture(scope="session")
def lesson_output(request: pytest.FixtureRequest) -> Callable[[str], Path]:
    """`lesson_output("01_class_collapse")`: the folder that lesson's run of this session wrote.

    A lesson nbval ran in this session is read as it is (a test on it fails when one of its cells
    failed); any other lesson is run here, once, through nbval in a new process."""
    config = request.config

    def output(lesson: str) -> Path:
        run = lessons_run(config)
        if lesson not in run:
            run[lesson] = _run_with_nbval(config, lesson)
        if not run[lesson]:
            pytest.fail(f"{lesson} failed under nbval in this session: see its cells' reports")
        return lesson_outputs(config) / lesson

    return output


def _run_with_nbval(config: pytest.Config, lesson: str) -> bool:
    """Run one lesson as `make test` does, `pytest --nbval-lax notebooks/<lesson>.ipynb`, writing
    into this session's folder; its output is printed when it fails."""
    env = {**os.environ, OUTPUT_ENV: str(lesson_outputs(config))}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--nbval-lax",
            "-p",
            "no:cacheprovider",
            "-q",
            f"notebooks/{lesson}.ipynb",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if result.returncode != 0:
        print(result.stdout[-6000:], result.stderr[-3000:])
    return result.returncode == 0
