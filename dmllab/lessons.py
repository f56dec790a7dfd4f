"""Lesson notebooks run by papermill: their parameters, the checks a value passes before a run,
and the execution itself.

A value given for a parameter (`-p NAME VALUE`, a grid's `parameters:` or `seeds:`) must be of
the kind its default is (`values.like`), and a parameter named like a `Config` field whose default
is a valid value of that field is checked like the field (so `-p lr .inf`, `-p seed -5` or
`-p embedding_dim 1000000000` fail before the notebook starts).
"""

from __future__ import annotations

import ast
import os
from pathlib import Path
from typing import Any

from dmllab import values
from dmllab.config import check_field
from dmllab.values import BadValue


def notebook_parameters(path: Path) -> dict[str, str]:
    """The names of a notebook's `parameters` cell and their defaults as source text.

    Raises SystemExit when the notebook cannot be read or has no cell tagged 'parameters'."""
    import papermill

    try:
        params = papermill.inspect_notebook(str(path))
    except (ValueError, OSError) as error:  # no kernel name, not a notebook, unreadable
        raise SystemExit(f"{path}: cannot read its parameters ({str(error).splitlines()[0]})") from None
    if not params:
        raise SystemExit(f"{path} has no cell tagged 'parameters'")
    return {name: info.get("default") for name, info in params.items()}


def check_values(notebook: Path, given: dict[str, Any], known: dict[str, str] | None = None) -> None:
    """Check every given parameter value against `notebook`'s parameters, before anything runs.

    Raises SystemExit for a name the notebook does not have (listing those it has) and BadValue
    for a value of the wrong kind or out of range."""
    known = notebook_parameters(notebook) if known is None else known
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise SystemExit(f"{notebook.name} has no parameter(s) {', '.join(unknown)}; "
                         f"its parameters are: {', '.join(sorted(known))}")
    for name, value in given.items():
        check_value(name, value, known[name])


def check_value(name: str, value: Any, default_source: str | None) -> None:
    """Check one value for the parameter `name` whose default is the Python text `default_source`."""
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


def execute(notebook: Path, output: Path, parameters: dict[str, Any], progress: bool = False) -> None:
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
        papermill.execute_notebook(str(notebook), str(output), parameters=parameters, progress_bar=progress,
                                   kernel_name="python3", cwd=str(notebook.parent),
                                   # the kernel's start-up warning about its loopback TCP transport is noise here
                                   extra_arguments=["--log-level=ERROR"])
    finally:
        if previous is None:
            os.environ.pop(PROGRESS_ENV)
        else:
            os.environ[PROGRESS_ENV] = previous
        if output.exists():  # papermill saves a failed run too, up to the failing cell
            make_static(output)
