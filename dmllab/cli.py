"""The `dmllab` command: demo, run, sweep, report, tune, fit, verify, over the library.

    dmllab demo [--out DIR] [--quick]                 run every lesson, write report.html
    dmllab run NOTEBOOK -p NAME VALUE ... [--out DIR] one parameterised lesson
    dmllab sweep GRID.yaml [--workers N] [--shard I/N] a grid of runs over parameters and seeds
    dmllab report DIR [DIR ...]                       mean +/- CI per configuration of a sweep
    dmllab tune SPEC.yaml [--workers N] [--storage URL] tuned variants compared on the test split
    dmllab fit CONFIG.json [--out DIR] [--nproc N]    one training run (N local ranks, or torchrun)
    dmllab verify ROOT [--layout folder]              decode every image; list the bad files

Lessons run through `dmllab.lessons` (papermill), sweeps through `dmllab.experiments.sweep`, and a
sweep's table through `Results.from_cells` and `dmllab.report`. Plotly, papermill and the
experiment runner are imported by the command that uses them; `Config` (and so torch) is read for
every command, since grids and `-p` values are checked against it before any work.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import itertools
import json
import os
import shlex
import sys
import warnings
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from dmllab.config import Config
from dmllab.errors import describe
from dmllab.experiments.cells import Shard
from dmllab.experiments.grid import load_grid
from dmllab.experiments.sweep import run_sweep
from dmllab.lessons import LessonError, check_values, find_lessons, run_lesson, run_lessons
from dmllab.paths import printable
from dmllab.records import read_json
from dmllab.values import BadValue
from dmllab.values import parse_text as parse_value


# --------------------------------------------------------------------------- demo / run
def _demo_command(args: argparse.Namespace) -> int:
    from dmllab.report import write_report

    lessons = find_lessons(args.notebooks, args.only)
    out = Path(args.out) / datetime.now().strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=False)
    print(f"dmllab demo: {len(lessons)} lessons -> {printable(out)}", flush=True)
    results = run_lessons(lessons, out, args.quick)
    report = write_report(out, results, title="dmllab demo" + (" (quick)" if args.quick else ""))
    print(f"report: {printable(report.resolve())}")
    return 1 if any(r.error for r in results) else 0


def run_parameters(notebook: Path, pairs: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """The `-p NAME VALUE` pairs read by `dmllab.values.parse_text` and checked against the
    notebook's parameters, before anything runs. Raises SystemExit with one line for a bad value
    or a name given twice, LessonError for a name the notebook does not have."""
    parameters: dict[str, Any] = {}
    for name, text in pairs:
        if name in parameters:
            raise SystemExit(f"-p {name} is given twice; give each parameter once")
        try:
            parameters[name] = parse_value(text)
        except BadValue as error:
            raise SystemExit(f"-p {name}: {error}") from error
    try:
        check_values(notebook, parameters)
    except LessonError:  # names the notebook already
        raise
    except BadValue as error:
        raise SystemExit(f"{notebook.name}: {error}") from error
    return parameters


def _run_command(args: argparse.Namespace) -> int:
    notebook = Path(args.notebook)
    if not notebook.exists():
        raise SystemExit(f"no such notebook: {notebook}")
    executed = run_lesson(notebook, run_parameters(notebook, args.parameter), Path(args.out))
    print(f"executed: {printable(executed.resolve())}")
    if (executed.parent / "metrics.json").exists():
        print(json.dumps(read_json(executed.parent / "metrics.json", "lesson's metrics"), indent=2))
    return 0


# --------------------------------------------------------------------------- sweep / report
def _sweep_command(args: argparse.Namespace) -> int:
    shard = Shard.parse(args.shard) if args.shard is not None else None
    grid = load_grid(args.grid)
    if args.out is not None:
        grid = dataclasses.replace(grid, out=Path(args.out))
    return run_sweep(grid, args.workers, shard)


def _report_command(args: argparse.Namespace) -> int:
    from dmllab.report import report_sweep, results_folder

    directories = [Path(d) for d in args.directory]
    for folder in directories:
        if (folder / "report.html").is_file() and not (folder / "results.csv").exists():
            raise SystemExit(
                f"{printable(folder)} is a `dmllab demo` folder: its report is "
                f"{printable(folder / 'report.html')}; `dmllab report` tabulates a sweep's folder"
            )
    print(report_sweep(directories, args.metric))
    directory = results_folder(directories)
    tables = (printable(directory / name) for name in ("results.csv", "results.html"))
    print("\nwrote {} and {}".format(*tables))
    return 0


# --------------------------------------------------------------------------- tune
def _tune_command(args: argparse.Namespace) -> int:
    from dmllab.experiments.tune import tune
    from dmllab.tuning_report import summary_text, write_tuning_report

    tuned = tune(
        args.spec,
        workers=args.workers,
        storage=args.storage,
        heartbeat=args.heartbeat,
        reproduce_best=not args.search_only,
    )
    if args.search_only:
        print(f"search done: {', '.join(f'{v} {s:.4f}' for v, s in tuned.best_values.items())}")
        return 1 if tuned.stopped else 0
    print(summary_text(tuned))
    print(f"report: {write_tuning_report(tuned).resolve()}")
    if tuned.stopped:
        print("stopped before the end; run the same command to resume", file=sys.stderr)
        return 1
    return 0


# --------------------------------------------------------------------------- fit (torchrun)
def _fit_command(args: argparse.Namespace) -> int:
    from dmllab import distributed
    from dmllab.experiments import run_job
    from dmllab.train import resolve_device

    config = Config.from_json(Path(args.config).read_text(), args.config)
    if args.root is not None:  # a recipe's data folder, given on the command line
        config = config.replace(dataset_options={**config.dataset_options, "root": args.root})
    if args.nproc != 1:
        if args.nproc < 1:
            raise SystemExit(f"--nproc must be >= 1; got {args.nproc}")
        if config.batch_size % args.nproc:
            raise SystemExit(
                f"--nproc {args.nproc}: the global batch of {config.classes_per_batch} x "
                f"{config.samples_per_class} = {config.batch_size} samples cannot be split evenly "
                f"over {args.nproc} processes; choose a divisor of {config.batch_size}"
            )
        if resolve_device(config.device).type != "cpu":
            raise SystemExit(
                f"--nproc starts CPU processes, but Config.device={config.device!r}; set "
                "device='cpu', or on several GPUs use torchrun (see the README)"
            )
    if args.out is None:
        if args.resume:
            raise SystemExit("--resume needs --out: the run folder whose checkpoint to continue")
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # torchrun's ranks: one folder for all
            raise SystemExit("under torchrun, give --out: the run folder that every rank shares")
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        args.out = str(claim_run_folder(Path("runs") / f"{Path(args.config).stem}-{stamp}"))
    elif Path(args.out).exists() and not Path(args.out).is_dir():
        raise SystemExit(f"--out {args.out} is a file, not a folder; give a folder for the run")
    if not args.resume and distributed.is_main():
        refuse_existing_run(Path(args.out), config)
    if args.nproc != 1:  # local CPU ranks that listen on loopback only; each runs this command
        distributed.launch(
            _fit_command, args.nproc, argparse.Namespace(**{**vars(args), "nproc": 1})
        )
        return 0
    out = Path(args.out)
    with warnings.catch_warnings():
        warnings.showwarning = _rank_zero_warning
        run = run_job(
            config,
            progress=not args.quiet,
            checkpoint_dir=out,
            resume=out if args.resume else None,
        )
    if distributed.is_main():
        out = run.save(out)
        print(
            json.dumps(
                {k: round(v, 4) for k, v in run.metrics.items() if isinstance(v, float)}, indent=2
            )
        )
        print(f"run record: {printable(out.resolve())}")
    return 0


def _rank_zero_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: Any = None,
    line: str | None = None,
) -> None:
    """A warning during `dmllab fit` as one line, printed by rank 0 only (every rank would
    print the same one, with a line of source)."""
    from dmllab import distributed

    if distributed.is_main():
        print(f"dmllab fit: {category.__name__}: {message}", file=sys.stderr, flush=True)


def claim_run_folder(base: Path) -> Path:
    """A new, empty folder `base`, else `base-2`, `base-3`, ...: the first one this process
    creates (mkdir fails when it exists, so two fits started in the same second never share a
    folder, and no collision is found after training)."""
    base.parent.mkdir(parents=True, exist_ok=True)
    for n in itertools.count(1):
        folder = base if n == 1 else base.with_name(f"{base.name}-{n}")
        try:
            folder.mkdir()
        except FileExistsError:
            continue
        return folder
    raise AssertionError("unreachable")  # itertools.count never ends


def resume_hint(args: argparse.Namespace) -> str:
    """After an interrupted `dmllab fit`: where its checkpoint is and the command that continues
    it, or '' when it wrote none (or has no run folder yet)."""
    from dmllab.engine.checkpoint import checkpoint_path

    if args.command != "fit" or not getattr(args, "out", None):
        return ""
    checkpoint = checkpoint_path(Path(args.out))
    if not checkpoint.is_file():
        return ""
    command = ["dmllab", "fit", args.config, "--out", args.out, "--resume"]
    command += ["--root", args.root] if args.root is not None else []
    command += ["--nproc", str(args.nproc)] if args.nproc != 1 else []
    return f"; the checkpoint is {printable(checkpoint)}: continue with {shlex.join(command)}"


def refuse_existing_run(out: Path, config: Config) -> None:
    """RecordError when the run folder `out` already holds a run record or a checkpoint, saying
    whether its Config is this one, and how to continue it or start elsewhere."""
    from dmllab.engine.checkpoint import checkpoint_path, config_differences
    from dmllab.records import RecordError

    record, checkpoint = out / "config.json", checkpoint_path(out)
    if not (record.exists() or checkpoint.exists()):
        return
    what = "a run record" if record.exists() else "a checkpoint"
    try:
        saved = Config.completed(read_json(record, "run's config"))
        differ = config_differences(saved, config.to_dict())
        same = "of this configuration" if not differ else f"of another configuration ({differ[0]})"
    except (RecordError, OSError):
        same = "(its config.json cannot be read)" if record.exists() else ""
    raise RecordError(
        f"{out} already holds {what} {same}".rstrip()
        + "; continue it with --resume, or give another --out"
    )


# --------------------------------------------------------------------------- verify
def _verify_command(args: argparse.Namespace) -> int:
    """Decode every image under ROOT as training would; print each bad file (and each class that
    contributes no image), exit 1 if any. Paths print with `dmllab.paths.printable`."""
    from dmllab.data import load
    from dmllab.data.folders import BadImagesError, EmptyClassesError

    root = printable(args.root)
    try:
        data = load(args.layout, root=args.root, verify=True)
    except BadImagesError as error:
        print("\n".join(f"{printable(bad.path)}: {bad.reason}" for bad in error.bad))
        print(f"{len(error.bad)} bad image file(s) under {root}", file=sys.stderr)
        return 1
    except EmptyClassesError as error:
        print("\n".join(f"{printable(label)}: {found}" for label, found in error.empty))
        print(f"{len(error.empty)} class(es) without an image under {root}", file=sys.stderr)
        return 1
    except ValueError as error:  # a wrong root or layout: the loader's message says what to pass
        raise SystemExit(printable(str(error))) from error
    print(f"all {len(data)} images under {root} decode ({args.layout} layout)")
    return 0


# --------------------------------------------------------------------------- main
QUICK_HELP = (
    "each lesson's quick form: every cell with a fraction of the training, about 10-30 s per "
    "lesson on a quiet 2-core machine (a minute or two in all); its numbers make no claim"
)


def parser() -> argparse.ArgumentParser:
    """The `dmllab` argument parser: one sub-command per entry of the module docstring. `--debug`
    is taken before or after the sub-command."""
    main = argparse.ArgumentParser(
        prog="dmllab",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    debug_help = "show the traceback of an error instead of one line"
    main.add_argument("--debug", action="store_true", help=debug_help)
    # on each sub-command too; SUPPRESS keeps a --debug given before the sub-command
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=debug_help)
    sub = main.add_subparsers(dest="command", required=True)

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        # argparse formats `help` with %, but prints `description` as it is
        description = help_text.replace("%%", "%")
        return sub.add_parser(name, help=help_text, description=description, parents=[common])

    demo = command("demo", "run every lesson and write report.html")
    demo.add_argument(
        "--out", default="outputs", help="folder for the run's dated sub-folder (default: outputs)"
    )
    demo.add_argument("--quick", action="store_true", help=QUICK_HELP)
    demo.add_argument("--notebooks", help="folder of the lessons (default: ./notebooks)")
    demo.add_argument(
        "--only", nargs="*", help="run only lessons whose file names start with these prefixes"
    )
    demo.set_defaults(func=_demo_command)
    run = command("run", "run one lesson with parameters")
    run.add_argument("notebook", help="the lesson notebook, e.g. notebooks/00_tour.ipynb")
    run.add_argument(
        "-p",
        "--parameter",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "VALUE"),
        help="set a parameter of the lesson's parameters cell (repeatable; VALUE is read as "
        "YAML: true, 0.2, [0.0, 0.1])",
    )
    run.add_argument(
        "--out",
        default="outputs",
        help="folder for the run's own sub-folder: executed notebook, metrics.json, figures "
        "(default: outputs)",
    )
    run.set_defaults(func=_run_command)
    sweep = command("sweep", "run a grid of parameters x seeds")
    sweep.add_argument(
        "grid", help="the grid file (YAML: notebook: or fit:, parameters:, seeds:, out:)"
    )
    sweep.add_argument(
        "--workers", type=int, default=1, help="cells run at once, each in its own process"
    )
    sweep.add_argument(
        "--shard",
        metavar="I/N",
        help="run only shard I of N (0 <= I < N) of the cells, e.g. $SLURM_ARRAY_TASK_ID/4; "
        "shards may share one output folder",
    )
    sweep.add_argument("--out", help="the output folder (default: the grid's 'out:')")
    sweep.set_defaults(func=_sweep_command)
    report = command(
        "report",
        "tabulate a sweep's folder (or its shards' folders): mean ± 95%% CI per configuration "
        "(a demo writes its own report.html)",
    )
    report.add_argument(
        "directory", nargs="+", help="a sweep's folder, or the folders its shards ran into"
    )
    report.add_argument(
        "--metric", action="append", help="metric(s) to tabulate (default: the headline ones)"
    )
    report.set_defaults(func=_report_command)
    tune = command(
        "tune", "search hyper-parameters per variant, then compare the best on the test split"
    )
    tune.add_argument("spec", help="a search-space file (YAML)")
    tune.add_argument("--workers", type=int, default=1, help="local worker processes per study")
    tune.add_argument(
        "--storage",
        help="an SQLAlchemy URL of the study database that workers on several machines share "
        "(default: sqlite in the output folder)",
    )
    tune.add_argument(
        "--heartbeat",
        type=int,
        default=30,
        help="seconds between a trial's heartbeats; a trial silent twice as long is retried",
    )
    tune.add_argument(
        "--search-only",
        action="store_true",
        help="run trials only (an extra machine of a shared study); one machine reproduces",
    )
    tune.set_defaults(func=_tune_command)
    fit = command("fit", "train one Config (JSON); runs under torchrun")
    fit.add_argument("config", help="a Config as JSON (Config.to_json), e.g. a recipe")
    fit.add_argument(
        "--out",
        default=None,
        help="the run folder: checkpoints during training, the run record at the end "
        "(default: runs/<config name>-<date-time>, a new folder)",
    )
    fit.add_argument(
        "--resume",
        action="store_true",
        help="continue the run whose checkpoint is in --out (same config, same number of ranks)",
    )
    fit.add_argument(
        "--root",
        default=None,
        help="the data set's folder (sets dataset_options['root'] of the config, e.g. a recipe)",
    )
    fit.add_argument("--quiet", action="store_true", help="no progress bar")
    fit.add_argument(
        "--nproc",
        type=int,
        default=1,
        help="train in N local CPU processes (DDP over gloo, listening on 127.0.0.1 only)",
    )
    fit.set_defaults(func=_fit_command)
    from dmllab.data.example_folder import LAYOUTS

    verify = command("verify", "decode every image of an image data set; list the bad files")
    verify.add_argument("root", help="the folder you would pass as dataset_options={'root': ...}")
    verify.add_argument(
        "--layout", default="folder", choices=LAYOUTS, help="how the folder is laid out"
    )
    verify.set_defaults(func=_verify_command)
    return main


VALUE_OPTIONS = ("--shard",)
"""Options whose value may start with '-' (`--shard -1/3`): argparse would read that value as an
option and say "expected one argument"; joined as `--shard=-1/3`, the value reaches its own check
(`Shard.parse`: "give I/N with 0 <= I < N")."""


def _values_after(argv: list[str]) -> list[str]:
    """`argv` with each of `VALUE_OPTIONS` joined to a following value that starts with a single
    '-' (`--shard -1/3` -> `--shard=-1/3`)."""
    joined: list[str] = []
    items = iter(range(len(argv)))
    for i in items:
        after = argv[i + 1] if i + 1 < len(argv) else ""
        if argv[i] in VALUE_OPTIONS and after.startswith("-") and not after.startswith("--"):
            joined.append(f"{argv[i]}={after}")
            next(items, None)
        else:
            joined.append(argv[i])
    return joined


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command. An error prints one line (what happened and to which file) and returns 1,
    Ctrl-C one line and 130; `--debug` shows the traceback instead. Every line starts with
    `dmllab COMMAND:`, a refusal before any work (SystemExit with a message) too."""
    args = parser().parse_args(_values_after(sys.argv[1:] if argv is None else list(argv)))
    for stream in (sys.stdout, sys.stderr):  # a path of any bytes prints (as \x escapes)
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="backslashreplace")
    try:
        if getattr(args, "workers", 1) < 1:
            raise SystemExit("--workers must be >= 1")
        return args.func(args)
    except SystemExit as error:  # a refusal before any work: the same prefix as other errors
        if isinstance(error.code, str) and not error.code.startswith("dmllab "):
            raise SystemExit(f"dmllab {args.command}: {error.code}") from None
        raise
    except KeyboardInterrupt:
        if args.debug:
            raise
        again = (
            "; finished cells are kept: the same command runs the rest"
            if args.command == "sweep"
            else resume_hint(args)
        )
        print(f"dmllab {args.command}: interrupted{again}", file=sys.stderr)
        return 130
    except Exception as error:
        if args.debug:
            raise
        print(
            f"dmllab {args.command}: {describe(error)} (--debug shows the traceback)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
