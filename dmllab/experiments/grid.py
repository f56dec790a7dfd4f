"""Grid files: a sweep's notebook (or base Config), parameter lists, seeds and output folder,
read and checked before any work.

A grid runs a lesson notebook (`notebook:`) or a `fit` Config (`fit:` base fields) over every
combination of `parameters:` and `seeds:`. Every value is read by `dmllab.values` (YAML 1.2 core,
duplicate keys refused) and checked like the Config field or notebook parameter it sets.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from dmllab.config import Config, check_field
from dmllab.experiments.plan import VARIANT, Plan, first_repeat
from dmllab.lessons import check_value, notebook_parameters
from dmllab.values import BadValue, StrictLoader, load_yaml

GRID_KEYS = {"notebook", "fit", "parameters", "seeds", "out", "quick"}


class GridError(BadValue):
    """A grid file, or a sweep folder, that cannot be run (or reported) as it is; the message says
    where and why. A ValueError: `except ValueError` catches a bad grid."""


@dataclass
class Grid:
    """A sweep: a notebook (or a base Config for `fit`), parameter lists, seeds, an output folder.

    Its cells are the jobs of `plan()`: each a dict of parameter values and `seed`."""

    parameters: dict[str, list[Any]]
    seeds: list[int]
    out: Path
    notebook: Path | None = None
    fit: dict[str, Any] | None = None
    quick: bool = False
    # the notebook's parameters (source text)
    defaults: dict[str, str] = field(default_factory=dict)
    path: Path | None = None  # the grid file

    def plan(self) -> Plan:
        """The parameters (in sorted order, each a factor of the values listed) crossed with the
        seeds."""
        return Plan({name: self.parameters[name] for name in sorted(self.parameters)}, self.seeds)

    def cells(self) -> list[dict[str, Any]]:
        return [job.changes for job in self.plan().jobs()]

    def config(self, cell: dict[str, Any]) -> Config:
        """The Config a cell of a `fit:` grid trains: the grid's base fields with the cell's
        values."""
        return Config.from_dict({**(self.fit or {}), **cell})

    def recorded(self, cell: dict[str, Any]) -> dict[str, Any]:
        """The configuration a finished `cell` records: compared on every rerun and by the
        report."""
        if self.notebook is None:
            return {"fit": self.config(cell).to_dict()}
        return {
            "notebook": self.notebook.name,
            "defaults": self.defaults,
            "parameters": {"quick": self.quick, **cell},
        }


# --------------------------------------------------------------------------- reading a grid
def load_grid(path: str | Path) -> Grid:
    """Parse and check a grid file before anything runs; errors name the line at fault.

    Every value is read by `dmllab.values` (YAML 1.2 core, duplicate keys refused) and checked
    like the field or notebook parameter it sets; seeds are non-negative and distinct, and so are
    the values listed for one parameter. Raises GridError (a ValueError)."""
    path = Path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as error:
        raise GridError(
            f"{path}: cannot read the grid file ({getattr(error, 'strerror', None) or error})"
        ) from error
    try:
        data = load_yaml(text, str(path))
    except BadValue as error:
        raise GridError(str(error)) from error
    if not isinstance(data, dict):
        raise GridError(
            f"{path}: a grid file is a mapping with 'notebook' or 'fit', 'parameters' and 'seeds'"
        )
    root = yaml.compose(text, Loader=StrictLoader)
    if not isinstance(root, yaml.MappingNode):  # `data` is a dict, so its node is a mapping
        raise GridError(
            f"{path}: a grid file is a mapping with 'notebook' or 'fit', 'parameters' and 'seeds'"
        )
    lines = {key.value: key.start_mark.line + 1 for key, _ in root.value}
    param_lines: dict[str, int] = {}
    for key, value in root.value:
        if key.value == "parameters" and isinstance(value, yaml.MappingNode):
            param_lines = {k.value: k.start_mark.line + 1 for k, _ in value.value}

    def fail(key: str, message: str, where: dict[str, int] = lines) -> GridError:
        return GridError(f"{path}:{where.get(key, 1)}: {message}")

    for key in data:
        if key not in GRID_KEYS:
            raise fail(
                key, f"unknown key {key!r}; a grid file takes: {', '.join(sorted(GRID_KEYS))}"
            )
    if ("notebook" in data) == ("fit" in data):
        raise GridError(
            f"{path}:1: give exactly one of 'notebook' (a lesson) or 'fit' (base Config fields)"
        )
    parameters = data.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise fail("parameters", "'parameters' maps each parameter to a list of values")
    for name, listed in parameters.items():
        if not isinstance(listed, list) or not listed:
            raise fail(name, f"parameter {name!r} needs a non-empty list of values", param_lines)
        repeated = first_repeat(listed)
        if repeated is not None:
            raise fail(
                name,
                f"parameter {name!r} lists {repeated!r} twice; each value runs once",
                param_lines,
            )
    seeds = data.get("seeds", [0])
    if (
        not isinstance(seeds, list)
        or not seeds
        or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds)
    ):
        raise fail("seeds", "'seeds' is a non-empty list of integers")
    try:
        for seed in seeds:
            check_field("seed", seed)
    except BadValue as error:
        raise fail("seeds", f"'seeds': {error}") from error
    if first_repeat(seeds) is not None:
        raise fail("seeds", f"'seeds' lists {first_repeat(seeds)} twice; each seed runs once")
    if "seed" in parameters:
        raise fail("seed", "put seeds under 'seeds', not under 'parameters'", param_lines)
    if VARIANT in parameters:
        raise fail(
            VARIANT,
            f"'{VARIANT}' names each row of a sweep's results; a sweep cannot vary a parameter "
            "of that name",
            param_lines,
        )
    if not isinstance(data.get("quick", False), bool):
        raise fail("quick", f"'quick' must be true or false; got {data['quick']!r}")
    if not isinstance(data.get("out", ""), (str, type(None))):
        raise fail("out", f"'out' is a folder name; got {data['out']!r}")
    notebook, fit, defaults = None, None, {}
    if "notebook" in data:
        if not isinstance(data["notebook"], str):
            raise fail("notebook", f"'notebook' is a file name; got {data['notebook']!r}")
        notebook = Path(data["notebook"])
        notebook = notebook if notebook.is_absolute() else path.parent / notebook
        if not notebook.exists():
            raise fail("notebook", f"no such notebook: {notebook}")
        defaults = notebook_parameters(notebook)
        for name, listed in parameters.items():
            if name not in defaults:
                raise fail(
                    name,
                    f"{notebook.name} has no parameter {name!r}; its parameters are: "
                    f"{', '.join(sorted(defaults))}",
                    param_lines,
                )
            try:
                for value in listed:
                    check_value(name, value, defaults[name])
            except BadValue as error:
                raise fail(name, str(error), param_lines) from error
        try:
            for seed in seeds if "seed" in defaults else []:
                check_value("seed", seed, defaults["seed"])
        except BadValue as error:
            raise fail("seeds", str(error)) from error
    else:
        fit = data["fit"] or {}
        if not isinstance(fit, dict):
            raise fail("fit", "'fit' maps Config fields to values")
        known = {f.name for f in fields(Config)}
        for name in list(fit) + list(parameters):
            if name not in known:
                where = param_lines if name in parameters else lines
                raise fail(name if name in where else "fit", f"Config has no field {name!r}", where)
        try:  # every cell's Config must be valid before anything runs
            grid = Grid(parameters, seeds, Path("."), fit=fit)
            for cell in grid.cells():
                grid.config(cell)
        except BadValue as error:
            raise fail("parameters" if "parameters" in lines else "fit", str(error)) from error
    out = Path(data.get("out") or path.with_suffix(""))
    out = out if out.is_absolute() else path.parent / out
    return Grid(
        parameters=parameters,
        seeds=seeds,
        out=out,
        notebook=notebook,
        fit=fit,
        quick=data.get("quick", False),
        defaults=defaults,
        path=path,
    )
