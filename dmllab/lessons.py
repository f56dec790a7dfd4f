"""Lesson notebooks run by papermill: where they are, their parameters, the checks a value passes
before a run, and the execution itself (one lesson, or every lesson for `dmllab demo`).

A value given for a parameter (`-p NAME VALUE`, a grid's `parameters:` or `seeds:`) must be of
the kind its default is (`values.like`), and a parameter named like a `Config` field whose default
is a valid value of that field is checked like the field (so `-p lr .inf`, `-p seed -5` or
`-p embedding_dim 1000000000` fail before the notebook starts).

A lesson checks its parameters itself too, in the cell after its `parameters` cell
(`read_parameters`), so the same rules hold however it is run: `dmllab run`, a sweep, plain
`papermill -p` (which passes `false` or `[0.0, 0.2]` as text), nbval or JupyterLab. There it also
checks what only the lesson knows, declared beside the call (`ranges=`, built by `at_least`,
`between`, `field`, `one_of`, `available_device`, `existing_folder`), so a value that would fail
minutes into the lesson fails in its first cells, as one line naming the parameter, the value and
what it may be:

    dl.lessons.read_parameters(globals(), "02_...", ranges={"num_seeds": at_least(2, "paired")})
"""

from __future__ import annotations

import ast
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from dmllab import values
from dmllab.config import check_field
from dmllab.records import read_json
from dmllab.values import BadValue

LESSON_GLOB = "[0-9][0-9]_*.ipynb"
OUTPUT_ENV = "DMLLAB_OUTPUT_DIR"
"""A lesson run without an `output_dir` writes its outputs into `$DMLLAB_OUTPUT_DIR/<lesson>/`
when this is set (the test suite sets it for the lessons nbval runs), and nowhere otherwise."""


class LessonError(BadValue):
    """No lesson where one was looked for, a notebook whose parameters cannot be read, or a
    parameter it does not have; the message names the folder or notebook and what to pass."""


def find_lessons(folder: str | None = None, only: Sequence[str] | None = None) -> list[Path]:
    """The lesson notebooks (`LESSON_GLOB`) in `folder`, else in ./notebooks, else in the folder
    beside the package, in order; with `only`, those whose file names start with one of its
    prefixes.

    Raises LessonError naming the folders searched when none holds a lesson."""
    beside_package = Path(__file__).resolve().parents[1] / "notebooks"
    candidates = [Path(folder)] if folder else [Path.cwd() / "notebooks", beside_package]
    found = next((c for c in candidates if c.is_dir() and any(c.glob(LESSON_GLOB))), None)
    if found is None:
        raise LessonError(
            f"no lesson notebooks ({LESSON_GLOB}) found in {', '.join(map(str, candidates))}; "
            "pass --notebooks DIR"
        )
    lessons = sorted(found.glob(LESSON_GLOB))
    return (
        [p for p in lessons if any(p.name.startswith(prefix) for prefix in only)]
        if only
        else lessons
    )


def notebook_parameters(path: Path) -> dict[str, str]:
    """The names of a notebook's `parameters` cell and their defaults as source text.

    Raises LessonError when the notebook cannot be read or has no cell tagged 'parameters'."""
    import papermill

    try:
        params = papermill.inspect_notebook(str(path))
    except (ValueError, OSError) as error:  # no kernel name, not a notebook, unreadable
        raise LessonError(
            f"{path}: cannot read its parameters ({str(error).splitlines()[0]})"
        ) from None
    if not params:
        raise LessonError(f"{path} has no cell tagged 'parameters'")
    return {name: info.get("default") for name, info in params.items()}


def check_values(
    notebook: Path, given: dict[str, Any], known: dict[str, str] | None = None
) -> None:
    """Check every given parameter value against `notebook`'s parameters, before anything runs.

    Raises LessonError for a name the notebook does not have (listing those it has) and BadValue
    for a value of the wrong kind or out of range."""
    known = notebook_parameters(notebook) if known is None else known
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise LessonError(
            f"{notebook.name} has no parameter(s) {', '.join(unknown)}; "
            f"its parameters are: {', '.join(sorted(known))}"
        )
    for name, value in given.items():
        check_value(name, value, known[name])


def check_value(name: str, value: Any, default_source: str | None) -> None:
    """Check one value for the parameter `name` whose default is the Python text
    `default_source`."""
    try:
        default = ast.literal_eval(default_source) if default_source is not None else None
    except (ValueError, SyntaxError):  # a default computed by code: only JSON-ness can be checked
        values.check_json_value(f"parameter {name}", value)
        return
    values.like(f"parameter {name}", value, default)
    if _is_config_field(name, default):
        try:
            check_field(name, value)
        except BadValue as error:
            raise BadValue(f"parameter {name}: {error}") from None


def _is_config_field(name: str, default: Any) -> bool:
    try:
        check_field(name, default)
    except (KeyError, BadValue):
        return False
    return True


def execute(
    notebook: Path, output: Path, parameters: dict[str, Any], progress: bool = False
) -> None:
    """Run `notebook` with `parameters` into `output` (papermill; the kernel runs in the notebook's
    folder), saved without widget state (`saved_notebooks.make_static`). The kernel gets
    DMLLAB_PROGRESS=0: a saved notebook cannot update a progress bar, so it would show one frozen
    at 0 %."""
    import papermill

    from dmllab.saved_notebooks import make_static
    from dmllab.train import PROGRESS_ENV

    output.parent.mkdir(parents=True, exist_ok=True)
    previous = os.environ.get(PROGRESS_ENV)
    os.environ[PROGRESS_ENV] = "0"  # inherited by the kernel papermill starts
    try:
        papermill.execute_notebook(
            str(notebook),
            str(output),
            parameters=parameters,
            progress_bar=progress,
            kernel_name="python3",
            cwd=str(notebook.parent),
            # the kernel's start-up warning about its loopback TCP transport is noise here
            extra_arguments=["--log-level=ERROR"],
        )
    finally:
        if previous is None:
            os.environ.pop(PROGRESS_ENV)
        else:
            os.environ[PROGRESS_ENV] = previous
        if output.exists():  # papermill saves a failed run too, up to the failing cell
            make_static(output)


@dataclass
class LessonResult:
    """One executed lesson: its name, the executed notebook, its output directory, an error if
    any."""

    name: str
    notebook: Path
    output_dir: Path
    seconds: float = math.nan
    error: str | None = None

    @property
    def metrics(self) -> dict[str, float]:
        path = self.output_dir / "metrics.json"
        return read_json(path, "lesson's metrics") if path.exists() else {}


def run_lesson(notebook: Path, parameters: dict[str, Any], out: Path) -> Path:
    """Execute one lesson with `parameters` (checked beforehand: `check_values`) into a new folder
    `out/<lesson>-<time>/`, which is also its `output_dir` (so everything the lesson writes is in
    that one folder), showing papermill's progress; returns the executed notebook's path.

    Raises LessonError, before anything runs, when the parameters name an `output_dir`."""
    if "output_dir" in parameters:
        raise LessonError(
            f"{notebook.name}: output_dir is the run's own folder under --out; "
            "give --out DIR instead of -p output_dir"
        )
    folder = out / (notebook.stem + "-" + datetime.now().strftime("%Y%m%d-%H%M%S-%f"))
    folder.mkdir(parents=True, exist_ok=False)
    parameters = {**parameters, "output_dir": str(folder.resolve())}
    execute(notebook, folder / notebook.name, parameters, progress=True)
    return folder / notebook.name


def run_lessons(lessons: Sequence[Path], out: Path, quick: bool) -> list[LessonResult]:
    """Execute each lesson into `out` (the executed notebook, and its outputs in `out/<lesson>/`),
    printing one line per lesson; a failed lesson is recorded with its error, the others still
    run."""
    results = []
    for i, notebook in enumerate(lessons, 1):
        result = LessonResult(
            name=notebook.stem, notebook=out / notebook.name, output_dir=out / notebook.stem
        )
        print(f"[{i}/{len(lessons)}] {result.name} ...", end=" ", flush=True)
        started = time.perf_counter()
        try:
            execute(
                notebook,
                result.notebook,
                {"quick": quick, "output_dir": str(result.output_dir.resolve())},
            )
            status = "ok"
        except Exception as error:  # a failed lesson is reported, the others still run
            result.error = f"{type(error).__name__}: {error}"
            status = "FAILED"
        result.seconds = time.perf_counter() - started
        print(f"{status} ({result.seconds:.0f} s)", flush=True)
        results.append(result)
    return results


# --------------------------------------------------------------------------- inside a lesson
Check = Callable[[str, Any], None]
"""What a lesson parameter may be beyond its default's kind: called with the owner's name
("parameter num_seeds") and the value; raises BadValue with one line naming both and what the
value may be."""


def _because(reason: str) -> str:
    return f" ({reason})" if reason else ""


def at_least(low: int, reason: str = "") -> Check:
    """An int (not a bool) >= `low`; `reason` says why in the message."""

    def check(owner: str, value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise BadValue(f"{owner}={value!r} must be an int >= {low}{_because(reason)}")

    return check


def between(
    low: float,
    high: float,
    *,
    low_open: bool = False,
    high_open: bool = False,
    reason: str = "",
) -> Check:
    """A finite number in the interval from `low` to `high` (open ends as flagged)."""

    def check(owner: str, value: Any) -> None:
        try:
            values.number(owner, value, low, high, low_open=low_open, high_open=high_open)
        except BadValue as error:
            raise BadValue(f"{error}{_because(reason)}") from None

    return check


def field(name: str) -> Check:
    """A value the `Config` field `name` takes, checked like the field; a list (or tuple) holds
    at least one such value, each checked like the field."""

    def check(owner: str, value: Any) -> None:
        items = value if isinstance(value, (list, tuple)) else [value]
        if not items:
            raise BadValue(f"{owner}={value!r} must hold at least one value of Config.{name}")
        for item in items:
            try:
                check_field(name, item)
            except BadValue as error:
                raise BadValue(f"{owner}={value!r}: {error}") from None

    return check


def one_of(*names: str) -> Check:
    """One of `names`."""

    def check(owner: str, value: Any) -> None:
        values.choice(owner, value, names)

    return check


def available_device(owner: str, value: Any) -> None:
    """A `Config.device` name this machine has (`cuda` needs a CUDA device torch can see)."""
    from dmllab.train import resolve_device

    try:
        check_field("device", value)
        resolve_device(value)
    except ValueError as error:
        raise BadValue(f"{owner}={value!r}: {error}") from None


def existing_folder(owner: str, value: Any) -> None:
    """None, or the path of a folder that exists."""
    if value is not None and not (isinstance(value, str) and Path(value).expanduser().is_dir()):
        raise BadValue(f"{owner}={value!r} is no existing folder; give a folder's path, or None")


def read_parameters(
    namespace: dict[str, Any], lesson: str, ranges: Mapping[str, Check] | None = None
) -> dict[str, Any]:
    """Check a lesson's parameters inside its kernel, before any work; call it first thing in the
    cell after the `parameters` cell, as `read_parameters(globals(), "01_class_collapse")`.

    The parameters and their defaults are read from the `parameters` cell as the kernel ran it
    (IPython's input history `In`): the last run of cells made only of `NAME = <literal>`
    assignments before this one is that cell, followed by the cell papermill injects, if any. Then

    - a name papermill injected that the `parameters` cell lacks is an error (papermill itself
      only warns, and the lesson would run without it);
    - a value given as text where the default is no string is read as `dmllab run -p` reads it
      (`values.parse_text`: `false` is False, `[0.0, 0.2]` a list, `1e-3` a number);
    - every value is checked against its default and, for a `Config` field's name, like the field
      (`check_value`);
    - every parameter named in `ranges` is checked by its `Check` (`at_least`, `between`,
      `field`, ...), default or given, so what the lesson cannot use fails here, before any work;
    - `output_dir` left at None becomes `$DMLLAB_OUTPUT_DIR/<lesson>` when that is set
      (`OUTPUT_ENV`).

    The checked values are written back into `namespace` and returned. A kernel that keeps no
    input history (nbval runs cells without it) cannot have injected anything, so only
    `output_dir` is resolved there (and `ranges` checked). Raises BadValue naming the parameter
    (an unknown name, a value of the wrong kind or out of range), LessonError for a name in
    `ranges` that the namespace lacks."""
    defaults, injected = _parameter_cells(namespace.get("In"))
    unknown = sorted(set(injected) - set(defaults))
    if unknown:
        raise BadValue(
            f"{lesson} has no parameter(s) {', '.join(unknown)}; "
            f"its parameters are: {', '.join(sorted(defaults))}"
        )
    checked: dict[str, Any] = {}
    for name, source in defaults.items():
        value = namespace[name]
        if isinstance(value, str) and not isinstance(ast.literal_eval(source), (str, type(None))):
            try:
                value = values.parse_text(value)
            except BadValue as error:
                raise BadValue(f"parameter {name}: {error}") from None
        check_value(name, value, source)
        checked[name] = value
    for name, check in (ranges or {}).items():
        if name not in namespace:
            raise LessonError(f"{lesson}: ranges names {name!r}, which is no parameter")
        check(f"parameter {name}", checked.get(name, namespace[name]))
    if namespace.get("output_dir") is None and os.environ.get(OUTPUT_ENV):
        checked["output_dir"] = str(Path(os.environ[OUTPUT_ENV]) / lesson)
    namespace.update(checked)
    return checked


def _parameter_cells(history: Any) -> tuple[dict[str, str], list[str]]:
    """({name: default source} of the `parameters` cell, [names the cells after it assign]) from
    IPython's input history (the current cell last); ({}, []) when there is none."""
    if not isinstance(history, list) or len(history) < 2:
        return {}, []
    run: list[dict[str, str]] = []
    for source in reversed(history[:-1]):
        assignments = _assignments(source)
        if not assignments:
            break
        run.append(assignments)
    if not run:
        return {}, []
    *after, parameters = run
    return parameters, [name for cell in after for name in cell]


def _assignments(source: Any) -> dict[str, str]:
    """{name: value source} when `source` is only `NAME = <literal>` statements, else {}."""
    try:
        tree = ast.parse(source) if isinstance(source, str) else None
    except SyntaxError:
        return {}
    if tree is None or not tree.body:
        return {}
    found: dict[str, str] = {}
    for statement in tree.body:
        if isinstance(statement, ast.Assign) and len(statement.targets) == 1:
            target, value = statement.targets[0], statement.value
        elif isinstance(statement, ast.AnnAssign) and statement.value is not None:
            target, value = statement.target, statement.value
        else:
            return {}
        try:
            ast.literal_eval(value)
        except (ValueError, SyntaxError):  # computed by code: no parameters cell
            return {}
        if not isinstance(target, ast.Name):
            return {}
        found[target.id] = ast.get_source_segment(source, value) or ""
    return found
