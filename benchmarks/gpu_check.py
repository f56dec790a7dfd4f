"""GPU check: mixed precision trains like float32 on a real trunk (a few minutes on one GPU).

Trains a ResNet-18 (random init, BatchNorm on batch statistics) on a generated image folder at
64 px for `--steps` optimiser steps in each precision ("32", "bf16-mixed", "16-mixed"), with and
without LSD, every run from the same seed (same initial weights, same batches). Prints for each
run the training images/s (median over the epochs after the first), the peak GPU memory, and how
far its loss curve is from float32's with the same LSD setting: the largest relative difference
of the two curves, each smoothed by a trailing mean over `--window` steps, measured from step
`--window` on. Exits 1 when a run fails (NaN / inf) or a curve is further than `--tolerance`
from float32's; refuses to run without CUDA. Never part of CI or `make test`.

    python benchmarks/gpu_check.py [--steps 300] [--workers 6] [--tolerance 0.2]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import dmllab as dl
from dmllab.data.example_folder import write_example_folder
from dmllab.engine import Callback, TrainState

PRECISIONS = ("32", "bf16-mixed", "16-mixed")


class LossCurve(Callback):
    """Every optimiser step's loss."""

    def __init__(self) -> None:
        self.losses: list[float] = []

    def on_batch_end(self, state: TrainState, stats: dict[str, float]) -> None:
        self.losses.append(stats["loss"])


def smoothed(losses: list[float], window: int) -> np.ndarray:
    """Trailing mean over `window` steps, from step `window` on."""
    values = np.asarray(losses, dtype=np.float64)
    sums = np.cumsum(np.insert(values, 0, 0.0))
    return (sums[window:] - sums[:-window]) / window


def max_relative_difference(curve: list[float], reference: list[float], window: int) -> float:
    a, b = smoothed(curve, window), smoothed(reference, window)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-6)))


def train(config: dl.Config, device: str) -> dict[str, object]:
    """One run: its loss curve, images/s, peak memory and wall time, or the error that stopped
    it."""
    curve = LossCurve()
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    try:
        run = dl.fit(config, callbacks=[curve], progress=False)
    except (FloatingPointError, ValueError, RuntimeError) as error:
        return {"error": f"{type(error).__name__}: {str(error).splitlines()[0]}"}
    rates = [row["images_per_s"] for row in run.history[1:]] or [run.history[0]["images_per_s"]]
    peak = torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else float("nan")
    return {
        "losses": curve.losses,
        "images_per_s": statistics.median(rates),
        "peak_mb": peak,
        "seconds": time.perf_counter() - start,
    }


def check(
    root: Path,
    *,
    device: str,
    precisions: tuple[str, ...],
    steps: int,
    workers: int,
    window: int,
    tolerance: float,
) -> bool:
    """Train every precision x {no LSD, LSD}; print the table; True when all agree."""
    epochs = 6
    base = dl.Config(
        dataset="folder",
        dataset_options={"root": str(root), "image_size": 64},
        model="resnet18",
        batchnorm="batch",
        embedding_dim=128,
        loss="margin",
        loss_options={"per_class_beta": True},
        positives="nearest",
        negatives="distance_weighted",
        classes_per_batch=16,
        samples_per_class=4,
        epochs=epochs,
        batches_per_epoch=max(1, steps // epochs),
        lr=1e-4,
        loss_lr=5e-4,
        num_workers=workers,
        device=device,
        seed=0,
    )
    print(f"ResNet-18, 64 px, batch 64, {epochs * base.batches_per_epoch} steps per run, {device}")
    print(f"{'precision':>11} {'lsd':>4} {'img/s':>8} {'peak MB':>8} {'loss':>8} {'vs 32':>8}")
    ok = True
    for lsd_alpha in (0.0, 50.0):
        reference: list[float] | None = None
        for precision in precisions:
            result = train(base.replace(precision=precision, lsd_alpha=lsd_alpha), device)
            label = f"{precision:>11} {'on' if lsd_alpha else 'off':>4}"
            if "error" in result:
                print(f"{label} FAILED {result['error']}")
                ok = False
                continue
            losses = result["losses"]
            assert isinstance(losses, list)
            if precision == "32":
                reference = losses
            difference = (
                max_relative_difference(losses, reference, window) if reference else float("nan")
            )
            agrees = precision == "32" or difference <= tolerance
            ok = ok and agrees and bool(np.isfinite(losses).all())
            print(
                f"{label} {result['images_per_s']:8.0f} {result['peak_mb']:8.0f} "
                f"{smoothed(losses, window)[-1]:8.4f} {difference:8.3f}"
                + ("" if agrees else f"  (above {tolerance})")
            )
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300, help="optimiser steps per run")
    parser.add_argument("--workers", type=int, default=6, help="DataLoader worker processes")
    parser.add_argument("--window", type=int, default=50, help="steps in the smoothing window")
    parser.add_argument("--tolerance", type=float, default=0.2, help="largest relative difference")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print(
            "gpu_check: needs a CUDA GPU and torch sees none; run it on a GPU machine",
            file=sys.stderr,
        )
        return 2
    if args.steps < 2 * args.window:
        parser.error(f"--steps must be at least twice --window ({2 * args.window})")
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}")
    with tempfile.TemporaryDirectory() as folder:
        root = write_example_folder(folder, classes=32, per_class=40, size=64, seed=0)
        ok = check(
            root,
            device="cuda",
            precisions=PRECISIONS,
            steps=args.steps,
            workers=args.workers,
            window=args.window,
            tolerance=args.tolerance,
        )
    verdict = "OK: every precision trains like float32" if ok else "FAILED: see the rows above"
    print(f"gpu_check: {verdict} (tolerance {args.tolerance} on {args.window}-step means)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
