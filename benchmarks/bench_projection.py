"""How long the first UMAP map takes in a fresh process, with numba's cache cold and warm, and
how long a UMAP map takes once everything is loaded.

    embedding_map(points, labels, method="umap")      # lesson 00's map: the 896 test digits (5-9)

The points are the rows of lesson 00's map (the zero-shot test split of digits, 896 rows), here
their 64 pixels. Each "first map" sample is a new Python process (threads pinned) that imports
dmllab and plotly, then times that one call: `import umap` (lazy) plus the fit plus the figure.
The scenarios:

  cold        an empty numba cache ($NUMBA_CACHE_DIR): a fresh install without `make setup`'s
              warm-up; umap-learn and pynndescent compile everything
  before      numba's cache as umap-learn and pynndescent use it themselves (what dmllab did
              before `dmllab.viz._umap`): pynndescent's code is cached, umap-learn's is compiled
  warm        after `make setup` (`dmllab.viz.projection.warm_up`): umap-learn's code is cached too
  cached map  the same embeddings again: the projection comes from dmllab's own cache of maps

Steady state: in one process, after a first fit, the median time of a UMAP fit (and of PCA for
scale) of the same points over `--repeats` calls, with the projection cache off.
Every scenario gets its own empty $DMLLAB_CACHE (except "cached map") and numba folder, so the
benchmark never reads or writes the venv's numba cache.

    .venv/bin/python benchmarks/bench_projection.py [--repeats 3] [--cold-repeats 2] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import pin_threads

ROOT = Path(__file__).resolve().parents[1]
THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "NUMBA_NUM_THREADS",
)

# One fresh process: load the digits and plotly untimed, then time the first UMAP map.
FIRST_MAP = """
import json, sys, time
import plotly.graph_objects
import dmllab.viz._umap as jit
from dmllab.data import load, split
from dmllab.viz.maps import embedding_map
if sys.argv[1] == "before":
    jit.PACKAGES = ()          # leave umap-learn's functions as umap-learn compiles them: uncached
data = split(load("digits"), how="classes")[1]
start = time.perf_counter()
embedding_map(data.x.numpy(), data.y.numpy(), method="umap")
print(json.dumps({"seconds": time.perf_counter() - start}))
"""


def first_map(scenario: str, numba_dir: Path, maps_dir: Path, threads: int) -> float:
    env = {
        **os.environ,
        **{name: str(threads) for name in THREAD_VARIABLES},
        "NUMBA_CACHE_DIR": str(numba_dir),
        "DMLLAB_CACHE": str(maps_dir),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "PYTHONWARNINGS": "ignore",
    }
    done = subprocess.run(
        [sys.executable, "-c", FIRST_MAP, scenario],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"bench_projection: the {scenario} process failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])["seconds"]


def steady_state(repeats: int) -> dict[str, float]:
    from dmllab.data import load, split
    from dmllab.viz.projection import project

    points = split(load("digits"), how="classes")[1].x.numpy()
    project(points, "umap", cache=False)
    times: dict[str, list[float]] = {"umap": [], "pca": []}
    for _ in range(repeats):
        for method in times:
            start = time.perf_counter()
            project(points, method, cache=False)
            times[method].append(time.perf_counter() - start)
    return {method: statistics.median(values) for method, values in times.items()}


def summary(values: list[float]) -> str:
    return (
        f"{statistics.median(values):7.2f} s   [{min(values):.2f}, {max(values):.2f}]  "
        f"n={len(values)}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].replace("\n", " "))
    parser.add_argument("--repeats", type=int, default=3, help="samples of each warm scenario")
    parser.add_argument(
        "--cold-repeats", type=int, default=2, help="samples of the cold scenario (~30 s each)"
    )
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    pin_threads(args.threads)
    results: dict[str, list[float]] = {"cold": [], "before": [], "warm": [], "cached map": []}
    with tempfile.TemporaryDirectory(prefix="bench-projection-") as scratch:
        scratch_dir = Path(scratch)
        numba_dir = scratch_dir / "numba"  # warmed by the first cold sample, then kept
        kept_maps = scratch_dir / "maps-kept"  # dmllab's projection cache for "cached map"
        for i in range(args.cold_repeats):
            results["cold"].append(
                first_map(
                    "cold",
                    scratch_dir / f"numba-cold-{i}",
                    scratch_dir / f"maps-c{i}",
                    args.threads,
                )
            )
        first_map(
            "before", numba_dir, scratch_dir / "maps-init", args.threads
        )  # warms pynndescent only
        for i in range(
            args.repeats
        ):  # round-robin, so load on the machine spreads over the scenarios
            results["before"].append(
                first_map("before", numba_dir, scratch_dir / f"maps-b{i}", args.threads)
            )
            if i == 0:
                first_map("warm", numba_dir, kept_maps, args.threads)  # make setup's warm-up
            results["warm"].append(
                first_map("warm", numba_dir, scratch_dir / f"maps-w{i}", args.threads)
            )
            results["cached map"].append(first_map("warm", numba_dir, kept_maps, args.threads))
    steady = steady_state(args.repeats)
    print(
        "first UMAP map in a fresh process: "
        "embedding_map(lesson 00's 896 test digits x 64 pixels, "
        f"method='umap'), {args.threads} thread(s); median [min, max] seconds of the call"
    )
    labels = {
        "cold": "cold numba cache (no warm-up)",
        "before": "umap-learn's own caching (before)",
        "warm": "warm (after make setup)",
        "cached map": "same embeddings again (map cache)",
    }
    for name, values in results.items():
        print(f"  {labels[name]:36s} {summary(values)}")
    print(
        f"steady state, one process (median of {args.repeats}): UMAP fit {steady['umap']:.2f} s, "
        f"PCA {steady['pca'] * 1e3:.1f} ms"
    )


if __name__ == "__main__":
    main()
