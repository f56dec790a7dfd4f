"""Forward+backward time of every base loss x strategy, against the GEMM floor and
pytorch-metric-learning (PML), measured side by side in one process.

    floor  = S = E @ E.T; S.backward(G)            (one B x B x d GEMM forward + backward)
    own    = dmllab loss (Euclidean geometry, D computed inside) forward + backward
    PML    = the equivalent PML loss (+ miner), LpDistance on unit-norm embeddings

Embeddings are L2-normalised class centres plus noise (a mid-training state with many active
tuples), d = 128, `--per-class` samples per class. Prints own/floor and PML/own per row and the
medians over the table. Targets: own/floor <= 5 and PML/own >= 2.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_losses.py [--quick] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch
from torch.nn import functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import median_times, pin_threads
from dmllab.geometry import Euclidean
from dmllab.losses import LOSSES, TupleLoss

STRATEGIES = [
    ("all", "all"),
    ("nearest", "semihard"),
    ("nearest", "hardest"),
    ("nearest", "all"),
    ("hardest", "hardest"),
    ("random", "semihard"),
    ("random", "distance_weighted"),
]
MARGIN = 0.2


def pml_equivalent(loss: str, positives: str, negatives: str):
    """A callable (E, labels) -> loss with PML's nearest equivalent, or None."""
    try:
        from pytorch_metric_learning import distances, losses, miners
    except ImportError:
        return None
    lp = dict(distance=distances.LpDistance(normalize_embeddings=False))
    make_loss = {
        "triplet": lambda: losses.TripletMarginLoss(margin=MARGIN, **lp),
        "contrastive": lambda: losses.ContrastiveLoss(**lp),
        "margin": lambda: losses.MarginLoss(margin=MARGIN, **lp),
        "multi_similarity": lambda: losses.MultiSimilarityLoss(alpha=2, beta=40, base=0.5),
    }.get(loss)
    if make_loss is None:
        return None
    make_miner = {
        ("all", "all"): (lambda: miners.MultiSimilarityMiner(0.1))
        if loss == "multi_similarity"
        else None,
        ("nearest", "semihard"): lambda: miners.BatchEasyHardMiner("easy", "semihard", **lp),
        ("nearest", "hardest"): lambda: miners.BatchEasyHardMiner("easy", "hard", **lp),
        ("nearest", "all"): lambda: miners.BatchEasyHardMiner("easy", "all", **lp),
        ("hardest", "hardest"): lambda: miners.BatchHardMiner(**lp),
        ("random", "semihard"): lambda: miners.TripletMarginMiner(
            MARGIN, type_of_triplets="semihard", **lp
        ),
        ("random", "distance_weighted"): lambda: miners.DistanceWeightedMiner(),
    }[(positives, negatives)]
    pml_loss = make_loss()
    miner = make_miner() if make_miner is not None else None
    if miner is None:
        return pml_loss
    return lambda E, y: pml_loss(E, y, miner(E, y))


def batch(B: int, per_class: int, d: int = 128, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(B // per_class).repeat_interleave(per_class)
    centres = F.normalize(torch.randn(B // per_class, d, generator=g), dim=1)
    E = F.normalize(centres[labels] + 0.15 * torch.randn(B, d, generator=g), dim=1)
    return E, labels


def step(fn, E, labels):
    def run():
        x = E.detach().requires_grad_(True)
        fn(x, labels).backward()

    return run


def floor(E):
    G = torch.randn(len(E), len(E))

    def run():
        x = E.detach().requires_grad_(True)
        (x @ x.T).backward(G)

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats, shorter samples")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--per-class", type=int, default=4)
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256, 512])
    args = parser.parse_args()
    pin_threads(args.threads)
    repeats, min_seconds = (3, 0.02) if args.quick else (7, 0.05)
    rows = []
    print(f"threads={args.threads} per_class={args.per_class} repeats={repeats} d=128")
    print(
        f"{'loss':17s} {'positives':8s} {'negatives':17s} {'B':>4s} "
        f"{'floor ms':>8s} {'own ms':>8s} {'PML ms':>8s} {'own/floor':>9s} {'PML/own':>8s}"
    )
    for B in args.sizes:
        E, labels = batch(B, args.per_class)
        for loss_name, cls in LOSSES.items():
            tuples = issubclass(cls, TupleLoss)  # the others take no selection strategy
            for positives, negatives in STRATEGIES if tuples else [("-", "-")]:
                torch.manual_seed(0)
                selection = dict(positives=positives, negatives=negatives, margin=MARGIN)
                own = cls(Euclidean(), **(selection if tuples else {}))
                candidates = {"floor": floor(E), "own": step(own, E, labels)}
                pml = pml_equivalent(loss_name, positives, negatives)
                if pml is not None:
                    candidates["pml"] = step(pml, E, labels)
                t = median_times(candidates, repeats, min_seconds)
                ratio, speedup = (
                    t["own"] / t["floor"],
                    (t["pml"] / t["own"] if "pml" in t else None),
                )
                rows.append((ratio, speedup))
                shown = (positives, negatives)
                print(
                    f"{loss_name:17s} {shown[0]:8s} {shown[1]:17s} {B:4d} {t['floor'] * 1e3:8.3f} "
                    f"{t['own'] * 1e3:8.3f} {t['pml'] * 1e3 if 'pml' in t else float('nan'):8.3f} "
                    f"{ratio:9.2f} {speedup if speedup is not None else float('nan'):8.2f}",
                    flush=True,
                )
    ratios = [r for r, _ in rows]
    speedups = [s for _, s in rows if s is not None]
    print(
        f"\nmedian own/floor = {statistics.median(ratios):.2f} (target <= 5; rows within: "
        f"{sum(r <= 5 for r in ratios)}/{len(ratios)}, max {max(ratios):.2f})"
    )
    print(
        f"median PML/own = {statistics.median(speedups):.2f} (target >= 2; rows at or above: "
        f"{sum(s >= 2 for s in speedups)}/{len(speedups)}, min {min(speedups):.2f})"
    )


if __name__ == "__main__":
    main()
