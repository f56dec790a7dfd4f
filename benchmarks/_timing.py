"""Timing helpers shared by the benchmarks: pinned threads, warm-up, round-robin repeats, medians.

Candidates measured in one call run round-robin (the order rotates each repetition), after one
warm-up call each; each sample repeats a call until it lasts at least `min_seconds`, and the
reported time is the median per-call time over `repeats` samples. Report ratios to a reference
measured in the same run, never absolute times alone.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable

import torch


def pin_threads(threads: int = 1) -> None:
    """One thread count for every runtime, so that other jobs cannot stall OpenMP barriers."""
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ[name] = str(threads)
    torch.set_num_threads(threads)


def _sample(fn: Callable[[], object], min_seconds: float) -> float:
    calls, start = 0, time.perf_counter()
    while True:
        fn()
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return elapsed / calls


def median_times(
    candidates: dict[str, Callable[[], object]], repeats: int = 7, min_seconds: float = 0.05
) -> dict[str, float]:
    """Median seconds per call of each candidate, measured round-robin."""
    names = list(candidates)
    for name in names:
        candidates[name]()
    samples: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeats):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            samples[name].append(_sample(candidates[name], min_seconds))
    return {name: statistics.median(values) for name, values in samples.items()}


def peak_rss_mib() -> float:
    """This process's peak resident memory so far (VmHWM of /proc/self/status), in MiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")
