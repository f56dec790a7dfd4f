"""The `dmllab` command: demo, run, sweep, report, fit. Papermill and torchrun do the heavy lifting.

    dmllab demo [--out DIR] [--quick]                 run every lesson, write report.html
    dmllab run NOTEBOOK -p NAME VALUE ... [--out DIR] one parameterised lesson
    dmllab sweep GRID.yaml [--workers N]              a grid of runs over parameters and seeds
    dmllab report DIR                                 mean +/- CI per configuration of a sweep
    dmllab fit CONFIG.json [--out DIR] [--nproc N]    one training run (N local ranks, or torchrun)
    dmllab verify ROOT [--layout folder]              decode every image of a data set; list bad files
"""

from __future__ import annotations

import argparse
import itertools
import json
import multiprocessing
import os
import re
import sys
import time
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, fields
from datetime import datetime
from pathlib import Path
from typing import Any, Sequence

import yaml

from dmllab.config import Config

LESSON_GLOB = "[0-9][0-9]_*.ipynb"


# --------------------------------------------------------------------------- notebooks
def notebooks_dir(explicit: str | None = None) -> Path:
    """The lessons folder: --notebooks, else ./notebooks, else the one beside the package."""
    candidates = [Path(explicit)] if explicit else [Path.cwd() / "notebooks", Path(__file__).resolve().parents[1] / "notebooks"]
    for candidate in candidates:
        if candidate.is_dir() and any(candidate.glob(LESSON_GLOB)):
            return candidate
    raise SystemExit(f"no lesson notebooks ({LESSON_GLOB}) found in {', '.join(map(str, candidates))}; "
                     "pass --notebooks DIR")


def notebook_parameters(path: Path) -> dict[str, Any]:
    """The names and defaults of a notebook's `parameters` cell."""
    import papermill

    params = papermill.inspect_notebook(str(path))
    if not params:
        raise SystemExit(f"{path} has no cell tagged 'parameters'")
    return {name: info.get("default") for name, info in params.items()}


def check_parameters(path: Path, given: dict[str, Any]) -> None:
    known = notebook_parameters(path)
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise SystemExit(f"{path.name} has no parameter(s) {', '.join(unknown)}; "
                         f"its parameters are: {', '.join(sorted(known))}")


def execute(notebook: Path, output: Path, parameters: dict[str, Any], progress: bool = False) -> None:
    """Run `notebook` with papermill into `output`, saved without widget state (`make_static`).
    The kernel gets DMLLAB_PROGRESS=0: a saved notebook cannot update a progress bar, so it would
    show one frozen at 0 %."""
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


# --------------------------------------------------------------------------- demo / run
def cmd_demo(args: argparse.Namespace) -> int:
    from dmllab.report import LessonResult, write_report

    lessons = sorted(notebooks_dir(args.notebooks).glob(LESSON_GLOB))
    if args.only:
        lessons = [p for p in lessons if any(p.name.startswith(prefix) for prefix in args.only)]
    out = Path(args.out) / datetime.now().strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=False)
    print(f"dmllab demo: {len(lessons)} lessons -> {out}", flush=True)
    results = []
    for i, notebook in enumerate(lessons, 1):
        name = notebook.stem
        result = LessonResult(name=name, notebook=out / notebook.name, output_dir=out / name)
        print(f"[{i}/{len(lessons)}] {name} ...", end=" ", flush=True)
        started = time.perf_counter()
        try:
            execute(notebook, result.notebook, {"quick": args.quick, "output_dir": str(result.output_dir.resolve())})
            status = "ok"
        except Exception as error:  # a failed lesson is reported, the others still run
            result.error = f"{type(error).__name__}: {error}"
            status = "FAILED"
        result.seconds = time.perf_counter() - started
        print(f"{status} ({result.seconds:.0f} s)", flush=True)
        results.append(result)
    report = write_report(out, results, title="dmllab demo" + (" (quick)" if args.quick else ""))
    print(f"report: {report.resolve()}")
    return 1 if any(r.error for r in results) else 0


def parse_value(text: str) -> Any:
    """A -p value as YAML would read it: 0.2 -> float, true -> bool, [1, 2] -> list, abc -> str."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def cmd_run(args: argparse.Namespace) -> int:
    notebook = Path(args.notebook)
    if not notebook.exists():
        raise SystemExit(f"no such notebook: {notebook}")
    parameters = {name: parse_value(value) for name, value in args.parameter}
    check_parameters(notebook, parameters)
    out = Path(args.out) / (notebook.stem + "-" + datetime.now().strftime("%Y%m%d-%H%M%S"))
    parameters.setdefault("output_dir", str(out.resolve()))
    execute(notebook, out / notebook.name, parameters, progress=True)
    print(f"executed: {(out / notebook.name).resolve()}")
    if (out / "metrics.json").exists():
        print(json.dumps(json.loads((out / "metrics.json").read_text()), indent=2))
    return 0


# --------------------------------------------------------------------------- sweep
GRID_KEYS = {"notebook", "fit", "parameters", "seeds", "out", "quick"}


class GridError(SystemExit):
    pass


@dataclass
class Grid:
    """A sweep: a notebook (or a base Config for `fit`), parameter lists, seeds, an output folder."""

    parameters: dict[str, list[Any]]
    seeds: list[int]
    out: Path
    notebook: Path | None = None
    fit: dict[str, Any] | None = None
    quick: bool = False

    def cells(self) -> list[dict[str, Any]]:
        names = sorted(self.parameters)
        combos = itertools.product(*(self.parameters[n] for n in names), self.seeds)
        return [{**dict(zip(names, values[:-1])), "seed": values[-1]} for values in combos]


def load_grid(path: str | Path) -> Grid:
    """Parse and validate a grid file before anything runs; errors name the line at fault."""
    path = Path(path)
    try:
        text = path.read_text()
        root = yaml.compose(text)
        data = yaml.safe_load(text)
    except OSError as error:
        raise GridError(f"{path}: cannot read the grid file ({error.strerror})")
    except yaml.YAMLError as error:
        raise GridError(f"{path}: not valid YAML: {error}")
    if not isinstance(data, dict) or root is None:
        raise GridError(f"{path}: a grid file is a mapping with 'notebook' or 'fit', 'parameters' and 'seeds'")
    lines = {key.value: key.start_mark.line + 1 for key, _ in root.value}
    param_lines = {}
    for key, value in root.value:
        if key.value == "parameters" and isinstance(value, yaml.MappingNode):
            param_lines = {k.value: k.start_mark.line + 1 for k, _ in value.value}

    def fail(key: str, message: str, where: dict[str, int] = lines) -> GridError:
        return GridError(f"{path}:{where.get(key, 1)}: {message}")

    for key in data:
        if key not in GRID_KEYS:
            raise fail(key, f"unknown key {key!r}; a grid file takes: {', '.join(sorted(GRID_KEYS))}")
    if ("notebook" in data) == ("fit" in data):
        raise GridError(f"{path}:1: give exactly one of 'notebook' (a lesson) or 'fit' (base Config fields)")
    parameters = data.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise fail("parameters", "'parameters' maps each parameter to a list of values")
    for name, values in parameters.items():
        if not isinstance(values, list) or not values:
            raise fail(name, f"parameter {name!r} needs a non-empty list of values", param_lines)
    seeds = data.get("seeds", [0])
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) for s in seeds):
        raise fail("seeds", "'seeds' is a non-empty list of integers")
    if "seed" in parameters:
        raise fail("seed", "put seeds under 'seeds', not under 'parameters'", param_lines)
    notebook = fit = None
    if "notebook" in data:
        notebook = (path.parent / data["notebook"]) if not Path(data["notebook"]).is_absolute() else Path(data["notebook"])
        if not notebook.exists():
            raise fail("notebook", f"no such notebook: {notebook}")
        known = notebook_parameters(notebook)
        for name in parameters:
            if name not in known:
                raise fail(name, f"{notebook.name} has no parameter {name!r}; its parameters are: "
                                 f"{', '.join(sorted(known))}", param_lines)
    else:
        fit = data["fit"] or {}
        known = {f.name for f in fields(Config)}
        for name in list(fit) + list(parameters):
            if name not in known:
                where = param_lines if name in parameters else lines
                raise fail(name if name in where else "fit", f"Config has no field {name!r}", where)
        try:  # every cell's Config must be valid before anything runs
            for cell in Grid(parameters, seeds, Path(".")).cells():
                Config.from_dict({**fit, **cell})
        except ValueError as error:
            raise fail("parameters", str(error))
    out = Path(data.get("out") or path.with_suffix(""))
    out = out if out.is_absolute() else path.parent / out
    return Grid(parameters=parameters, seeds=seeds, out=out, notebook=notebook, fit=fit,
                quick=bool(data.get("quick", False)))


def cell_name(cell: dict[str, Any]) -> str:
    text = ",".join(f"{k}={cell[k]}" for k in sorted(cell))
    return re.sub(r"[^A-Za-z0-9_.,=-]+", "_", text)


def run_cell(grid: Grid, cell: dict[str, Any], threads: int) -> tuple[str, str | None]:
    """Run one cell of a grid in this (worker) process; returns (cell name, error or None)."""
    os.environ["OMP_NUM_THREADS"] = str(threads)
    import torch

    torch.set_num_threads(threads)
    directory = grid.out / cell_name(cell)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "params.json").write_text(json.dumps(cell, sort_keys=True))
    try:
        if grid.notebook is not None:
            execute(grid.notebook, directory / grid.notebook.name,
                    {**cell, "quick": grid.quick, "output_dir": str(directory.resolve())})
        else:
            from dmllab.metrics import evaluate
            from dmllab.train import fit

            run = fit(Config.from_dict({**grid.fit, **cell}), progress=False)
            run.metrics.update(evaluate(run))
            run.save(directory)
        (directory / "error.txt").unlink(missing_ok=True)
        return directory.name, None
    except Exception:
        (directory / "error.txt").write_text(traceback.format_exc())
        return directory.name, traceback.format_exc(limit=1).strip().splitlines()[-1]


def cmd_sweep(args: argparse.Namespace) -> int:
    grid = load_grid(args.grid)
    cells = grid.cells()
    todo = [c for c in cells if not (grid.out / cell_name(c) / "metrics.json").exists()]
    print(f"sweep: {len(cells)} cells, {len(cells) - len(todo)} already done, {len(todo)} to run "
          f"with {args.workers} workers -> {grid.out}", flush=True)
    threads = max(1, (os.cpu_count() or 1) // args.workers)
    failures = []
    if todo:
        # spawn, not fork: a forked child of a process whose OpenMP pool is running can hang
        with ProcessPoolExecutor(max_workers=args.workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = [pool.submit(run_cell, grid, cell, threads) for cell in todo]
            for future in as_completed(futures):
                name, error = future.result()
                print(f"  {'FAILED' if error else 'done'}: {name}" + (f" ({error})" if error else ""), flush=True)
                if error:
                    failures.append(name)
    if failures:
        print(f"{len(failures)} cell(s) failed; see error.txt in each; rerun the sweep to retry them")
    return 1 if failures else 0


# --------------------------------------------------------------------------- report
def collect(directory: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """Every finished cell (params.json + metrics.json) as one record, and the parameter names."""
    records, names = [], set()
    for params_path in sorted(directory.rglob("params.json")):
        metrics_path = params_path.parent / "metrics.json"
        if metrics_path.exists():
            params = json.loads(params_path.read_text())
            names |= set(params)
            records.append({**params, **json.loads(metrics_path.read_text())})
    return records, sorted(names - {"seed"})


def cmd_report(args: argparse.Namespace) -> int:
    from dmllab.runs import aggregate

    directory = Path(args.directory)
    records, params = collect(directory)
    if not records:
        raise SystemExit(f"{directory}: no finished cells (params.json + metrics.json) found")
    metrics = args.metric or [m for m in ("recall@1", "map@r", "nmi", "fine_recall@1", "memorisation",
                                          "prototype_accuracy") if any(m in r for r in records)]
    if not metrics:
        metrics = sorted({k for r in records for k, v in r.items() if isinstance(v, (int, float))} - set(params) - {"seed"})
    table = aggregate(records, by=params or ["seed"], metrics=metrics)
    table.to_csv(directory / "results.csv", index=False)
    _write_results_html(directory / "results.html", table, params, metrics)
    print(_format_table(table, params, metrics))
    print(f"\nwrote {directory / 'results.csv'} and {directory / 'results.html'}")
    return 0


def _format_table(table, params: list[str], metrics: list[str]) -> str:
    shown = table[params].astype(str).copy()
    for metric in metrics:
        shown[metric] = [f"{m:.3f} ± {c:.3f} (n={n})" for m, c, n in
                         zip(table[f"{metric}_mean"], table[f"{metric}_ci"], table[f"{metric}_n"])]
    return shown.to_string(index=False)


def _write_results_html(path: Path, table, params: list[str], metrics: list[str]) -> None:
    import plotly.graph_objects as go

    labels = table[params].astype(str).agg(", ".join, axis=1).to_numpy() if params else table.index.astype(str)
    figure = go.Figure([go.Bar(name=m, x=labels, y=table[f"{m}_mean"].to_numpy(),
                               error_y={"type": "data", "array": table[f"{m}_ci"].to_numpy()}) for m in metrics])
    figure.update_layout(barmode="group", title="mean ± 95% CI over seeds", yaxis_title="value")
    body = _format_table(table, params, metrics)
    path.write_text("<!doctype html><html><head><meta charset='utf-8'><title>dmllab results</title></head><body>"
                    f"<pre>{body}</pre>{figure.to_html(full_html=False, include_plotlyjs=True)}</body></html>")


# --------------------------------------------------------------------------- fit (torchrun)
def cmd_fit(args: argparse.Namespace) -> int:
    from dmllab import distributed
    from dmllab.metrics import evaluate
    from dmllab.train import fit, resolve_device

    config = Config.from_json(Path(args.config).read_text())
    if args.nproc != 1:  # local CPU ranks that listen on loopback only; each runs this command
        if args.nproc < 1:
            raise SystemExit(f"--nproc must be >= 1; got {args.nproc}")
        if resolve_device(config.device).type != "cpu":
            raise SystemExit(f"--nproc starts CPU processes, but Config.device={config.device!r}; set "
                             "device='cpu', or on several GPUs use torchrun (see the README)")
        distributed.launch(cmd_fit, args.nproc, argparse.Namespace(**{**vars(args), "nproc": 1}))
        return 0
    run = fit(config, progress=not args.quiet)
    if distributed.is_main():
        run.metrics.update(evaluate(run))
        out = run.save(args.out)
        print(json.dumps({k: round(v, 4) for k, v in run.metrics.items() if isinstance(v, float)}, indent=2))
        print(f"run record: {out.resolve()}")
    return 0


# --------------------------------------------------------------------------- verify
def cmd_verify(args: argparse.Namespace) -> int:
    """Decode every image under ROOT as training would; print each bad file, exit 1 if any."""
    from dmllab.data import load
    from dmllab.data.folders import BadImagesError

    try:
        data = load(args.layout, root=args.root, verify=True)
    except BadImagesError as error:
        print("\n".join(f"{bad.path}: {bad.reason}" for bad in error.bad))
        print(f"{len(error.bad)} bad image file(s) under {args.root}", file=sys.stderr)
        return 1
    except ValueError as error:  # a wrong root or layout: the loader's message says what to pass
        raise SystemExit(str(error)) from error
    print(f"all {len(data)} images under {args.root} decode ({args.layout} layout)")
    return 0


# --------------------------------------------------------------------------- main
def parser() -> argparse.ArgumentParser:
    main = argparse.ArgumentParser(prog="dmllab", description=__doc__.split("\n\n")[0],
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = main.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="run every lesson and write report.html")
    demo.add_argument("--out", default="outputs")
    demo.add_argument("--quick", action="store_true", help="CI-sized runs (seconds per lesson)")
    demo.add_argument("--notebooks", help="folder of the lessons (default: ./notebooks)")
    demo.add_argument("--only", nargs="*", help="run only lessons whose file names start with these prefixes")
    demo.set_defaults(func=cmd_demo)
    run = sub.add_parser("run", help="run one lesson with parameters")
    run.add_argument("notebook")
    run.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"))
    run.add_argument("--out", default="outputs")
    run.set_defaults(func=cmd_run)
    sweep = sub.add_parser("sweep", help="run a grid of parameters x seeds")
    sweep.add_argument("grid")
    sweep.add_argument("--workers", type=int, default=1)
    sweep.set_defaults(func=cmd_sweep)
    report = sub.add_parser("report", help="tabulate a sweep or demo directory")
    report.add_argument("directory")
    report.add_argument("--metric", action="append", help="metric(s) to tabulate (default: the headline ones)")
    report.set_defaults(func=cmd_report)
    fit = sub.add_parser("fit", help="train one Config (JSON); runs under torchrun")
    fit.add_argument("config")
    fit.add_argument("--out", default="runs/fit")
    fit.add_argument("--quiet", action="store_true")
    fit.add_argument("--nproc", type=int, default=1,
                     help="train in N local CPU processes (DDP over gloo, listening on 127.0.0.1 only)")
    fit.set_defaults(func=cmd_fit)
    from dmllab.data.example_folder import LAYOUTS

    verify = sub.add_parser("verify", help="decode every image of an image data set; list the bad files")
    verify.add_argument("root", help="the folder you would pass as dataset_options={'root': ...}")
    verify.add_argument("--layout", default="folder", choices=LAYOUTS)
    verify.set_defaults(func=cmd_verify)
    return main


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if getattr(args, "workers", 1) < 1:
        raise SystemExit("--workers must be >= 1")
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
