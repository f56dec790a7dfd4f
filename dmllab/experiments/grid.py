"""Grid files: a sweep's notebook (or base Config), parameter lists, seeds and output folder,
read and checked before any work.

A grid runs a lesson notebook (`notebook:`) or a `fit` Config (`fit:` base fields) over every
combination of `parameters:` and `seeds:`. The file is read through the declarative `GRID`
schema (`dmllab.experiments.spec`, shared with search-space files): every value is read by
`dmllab.values` (YAML 1.2 core, duplicate keys refused) and checked like the Config field or
notebook parameter it sets.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dmllab.config import Config
from dmllab.experiments import spec
from dmllab.experiments.plan import VARIANT, Plan
from dmllab.experiments.spec import Key, Schema, SpecError, Where
from dmllab.lessons import check_value, notebook_parameters
from dmllab.values import BadValue


class GridError(SpecError):
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
GRID = Schema(
    "grid file",
    (
        Key("notebook", spec.text, help="a lesson notebook to run"),
        Key("fit", spec.config_fields, help="base Config fields to train"),
        Key("parameters", spec.value_lists, {}, "each parameter's list of values"),
        Key("seeds", spec.seeds, [0], "the seeds every combination runs with"),
        Key("out", spec.folder, None, "the output folder"),
        Key("quick", spec.flag, False, "the lesson's quick setting"),
    ),
    shape="a grid file is a mapping with 'notebook' or 'fit', 'parameters' and 'seeds'",
    one_of=("notebook", "fit"),
    one_of_help="give exactly one of 'notebook' (a lesson) or 'fit' (base Config fields)",
)


def load_grid(path: str | Path) -> Grid:
    """Parse and check a grid file before anything runs; errors name the line at fault.

    The file is read through the `GRID` schema (`dmllab.experiments.spec`: YAML 1.2 core,
    duplicate keys refused, each key's value checked); every value is checked like the Config
    field or notebook parameter it sets, and every cell's Config is built; seeds are
    non-negative and distinct, and so are the values listed for one parameter.
    Raises GridError (a ValueError) naming the file, line and key."""
    path = Path(path)
    try:
        data, where = GRID.read(path)
    except SpecError as error:
        raise GridError(str(error)) from error
    try:
        return _grid(path, data, where)
    except SpecError as error:
        raise GridError(str(error)) from error


def _notebook_defaults(
    notebook: Path, parameters: dict[str, list[Any]], seeds: list[int], where: Where
) -> dict[str, str]:
    """The notebook's parameters (source text), after checking each listed value (and seed)
    against the parameter's default."""
    if not notebook.exists():
        raise where.at("notebook").error(f"no such notebook: {notebook}")
    try:
        defaults = notebook_parameters(notebook)
    except BadValue as error:
        raise where.at("notebook").error(str(error)) from error
    for name, values in parameters.items():
        if name not in defaults:
            raise where.at("parameters", name).error(
                f"{notebook.name} has no parameter {name!r}; its parameters are: "
                f"{', '.join(sorted(defaults))}"
            )
        for i, value in enumerate(values):
            try:
                check_value(name, value, defaults[name])
            except BadValue as error:
                raise where.at("parameters", name, i).error(str(error)) from error
    for i, seed in enumerate(seeds if "seed" in defaults else []):
        try:
            check_value("seed", seed, defaults["seed"])
        except BadValue as error:
            raise where.at("seeds", i).error(str(error)) from error
    return defaults


def _check_cells(
    fit: dict[str, Any], parameters: dict[str, list[Any]], seeds: list[int], where: Where
) -> None:
    """Check each listed value like its Config field, then build every cell's Config."""
    for name, values in parameters.items():
        for i, value in enumerate(values):
            spec.check_config_value(name, value, where.at("parameters", name, i))
    try:  # every cell's Config must be valid before anything runs
        grid = Grid(parameters, seeds, Path("."), fit=fit)
        for cell in grid.cells():
            grid.config(cell)
    except BadValue as error:
        raise where.at("parameters" if parameters else "fit").error(str(error)) from error


def _grid(path: Path, data: dict[str, Any], where: Where) -> Grid:
    parameters, seeds = data["parameters"], data["seeds"]
    listed = where.at("parameters")
    if "seed" in parameters:
        raise listed.at("seed").error("put seeds under 'seeds', not under 'parameters'")
    if VARIANT in parameters:
        raise listed.at(VARIANT).error(
            f"'{VARIANT}' names each row of a sweep's results; a sweep cannot vary a parameter "
            "of that name"
        )
    notebook, defaults = None, {}
    if data["notebook"] is not None:
        notebook = Path(data["notebook"])
        notebook = notebook if notebook.is_absolute() else path.parent / notebook
        defaults = _notebook_defaults(notebook, parameters, seeds, where)
    else:
        _check_cells(data["fit"], parameters, seeds, where)
    out = Path(data["out"] or path.with_suffix(""))
    out = out if out.is_absolute() else path.parent / out
    return Grid(
        parameters=parameters,
        seeds=seeds,
        out=out,
        notebook=notebook,
        fit=data["fit"],
        quick=data["quick"],
        defaults=defaults,
        path=path,
    )
