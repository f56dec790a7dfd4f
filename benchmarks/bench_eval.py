"""Retrieval evaluation cost: dmllab.metrics.retrieval vs the faiss floor and PML's
AccuracyCalculator.

For N points (d = 128, float32, L2-normalised, `classes` equal classes) every point queries all
the others, self excluded, with k = largest class count - 1 (what MAP@R needs):

    floor  faiss IndexFlatIP add + search with the same k (+1 for the self match); when faiss is
           missing, one chunked GEMM + topk pass
    dmllab retrieval(x, y, ks=(1,)): recall@1, precision@1, MAP@R, R-precision, MRR (default
           Euclidean geometry: a 129-d inner-product search)
    pml    AccuracyCalculator(include=(precision_at_1, r_precision, mean_average_precision_at_r),
           k="max_bin_count").get_accuracy(x, y)

Times are medians (and, for a contended machine, minima) of round-robin repeats (order rotated,
one warm-up) with torch and faiss pinned to `--threads`; peak extra memory is measured in a fresh
process per method (VmHWM after resetting it through /proc/self/clear_refs). Ratios are against
the floor measured in the same run.

    python benchmarks/bench_eval.py --quick          # N = 10k, 3 repeats
    python benchmarks/bench_eval.py                  # N = 10k and 50k, 5 repeats
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np
import torch

from _timing import peak_rss_mib

METHODS = ("floor", "dmllab", "pml")


def make_data(
    n: int, classes: int, d: int = 128, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % classes
    centres = torch.randn(classes, d, generator=g)
    x = centres[labels] + 1.5 * torch.randn(n, d, generator=g)
    return torch.nn.functional.normalize(x, dim=1), labels


def has_faiss() -> bool:
    try:
        import faiss  # noqa: F401  (only whether it imports)
    except ImportError:
        return False
    return True


def floor(x: torch.Tensor, k: int) -> None:
    if has_faiss():
        import faiss

        index = faiss.IndexFlatIP(x.shape[1])
        data = x.numpy()
        index.add(data)
        index.search(data, k + 1)
    else:
        step = max(1, 2**23 // len(x))
        for start in range(0, len(x), step):
            (x[start : start + step] @ x.T).topk(k + 1, dim=1)


def run_dmllab(x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    from dmllab.metrics import retrieval

    return retrieval(x, y, ks=(1,))


def run_pml(x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator

    calculator = AccuracyCalculator(
        include=("precision_at_1", "r_precision", "mean_average_precision_at_r"), k="max_bin_count"
    )
    return calculator.get_accuracy(x, y)


def call(method: str, x: torch.Tensor, y: torch.Tensor, k: int):
    if method == "floor":
        return floor(x, k)
    if method == "dmllab":
        return run_dmllab(x, y)
    return run_pml(x, y)


def pin_threads(threads: int) -> None:
    torch.set_num_threads(threads)
    if has_faiss():
        import faiss

        faiss.omp_set_num_threads(threads)


def available_methods() -> list[str]:
    methods = ["floor", "dmllab"]
    try:
        import pytorch_metric_learning  # noqa: F401  (only whether it imports)
    except ImportError:
        return methods
    return [*methods, "pml"] if has_faiss() else methods  # PML's default kNN needs faiss


def time_methods(n: int, classes: int, repeats: int, methods: list[str]) -> dict[str, list[float]]:
    x, y = make_data(n, classes)
    k = n // classes - 1
    for method in methods:  # warm-up
        call(method, x, y, k)
    times = {m: [] for m in methods}
    for r in range(repeats):
        order = methods[r % len(methods) :] + methods[: r % len(methods)]
        for method in order:
            start = time.perf_counter()
            call(method, x, y, k)
            times[method].append(time.perf_counter() - start)
    return times


def agreement(n: int, classes: int) -> float:
    x, y = make_data(n, classes)
    ours, theirs = run_dmllab(x, y), run_pml(x, y)
    pairs = [
        ("precision@1", "precision_at_1"),
        ("r_precision", "r_precision"),
        ("map@r", "mean_average_precision_at_r"),
    ]
    return max(abs(ours[a] - theirs[b]) for a, b in pairs)


def peak_memory(method: str, n: int, classes: int, threads: int) -> float:
    """Extra peak RSS (MiB) of one call, in a fresh process."""
    out = subprocess.run(
        [sys.executable, __file__, "--_memory", method, str(n), str(classes), str(threads)],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(out.stdout.strip().splitlines()[-1])


def _memory_child(method: str, n: int, classes: int, threads: int) -> None:
    pin_threads(threads)
    x, y = make_data(n, classes)
    call(method, x[:200], y[:200], 1)  # import everything first
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    before = peak_rss_mib()
    call(method, x, y, n // classes - 1)
    print(peak_rss_mib() - before)


def foreign_load() -> float:
    return os.getloadavg()[0]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="N = 10k only, 3 repeats")
    parser.add_argument("--sizes", type=int, nargs="*", help="override the N values")
    parser.add_argument("--classes", type=int, default=100)
    parser.add_argument("--repeats", type=int)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--_memory", dest="memory_child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        method, n, classes, threads = args.memory_child
        _memory_child(method, int(n), int(classes), int(threads))
        return

    pin_threads(args.threads)
    sizes = args.sizes or ([10_000] if args.quick else [10_000, 50_000])
    repeats = args.repeats or (3 if args.quick else 5)
    methods = available_methods()
    print(
        f"threads={args.threads} repeats={repeats} faiss={has_faiss()} methods={methods} "
        f"load before={foreign_load():.2f}"
    )
    results = []
    for n in sizes:
        times = time_methods(n, args.classes, repeats, methods)
        med = {m: statistics.median(t) for m, t in times.items()}
        row = {
            "N": n,
            "classes": args.classes,
            "k": n // args.classes - 1,
            **{f"{m}_s": med[m] for m in methods},
            **{f"{m}_x_floor": med[m] / med["floor"] for m in methods},
            **{f"{m}_x_floor_min": min(times[m]) / min(times["floor"]) for m in methods},
            "load": foreign_load(),
        }
        if "pml" in methods:
            row["dmllab_x_pml"] = med["dmllab"] / med["pml"]
            row["max_abs_diff_vs_pml"] = agreement(min(n, 10_000), args.classes)
        if not args.no_memory:
            row |= {
                f"{m}_extra_MiB": peak_memory(m, n, args.classes, args.threads) for m in methods
            }
        results.append(row)
        print(json.dumps(row, indent=None, default=float))
    print()
    header = ["N", "k"] + [f"{m}_s" for m in methods] + [f"{m}_x_floor" for m in methods]
    header += [f"{m}_x_floor_min" for m in methods if m != "floor"]
    header += ["dmllab_x_pml"] if "pml" in methods else []
    header += [f"{m}_extra_MiB" for m in methods] if not args.no_memory else []
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in results:
        print(
            "| "
            + " | ".join(
                f"{row[h]:.3f}" if isinstance(row[h], float) else str(row[h]) for h in header
            )
            + " |"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
