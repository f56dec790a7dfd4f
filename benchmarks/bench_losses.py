"""Forward+backward time of every base loss x strategy, against the GEMM floor and
pytorch-metric-learning (PML), measured side by side in one process; then the adapter
(`loss="pml:<LossName>"`) against PML called directly, and a cross-batch memory's cost.

    floor  = S = E @ E.T; S.backward(G)            (one B x B x d GEMM forward + backward)
    own    = dmllab loss (Euclidean geometry, D computed inside) forward + backward
    PML    = the equivalent PML loss (+ miner), LpDistance on unit-norm embeddings

Embeddings are L2-normalised class centres plus noise (a mid-training state with many active
tuples), d = 128, `--per-class` samples per class. Prints own/floor and PML/own per row and the
medians over the table. Targets: own/floor <= 5 and PML/own >= 2.

Adapter rows: `pml:<LossName>` (the lab's Euclidean geometry as PML's distance, every pair)
against the same PML loss called directly on the same embeddings, labels and parameters with
`LpDistance(normalize_embeddings=False)`; then nearest positives with hardest negatives, the
adapter (the lab's selection) against PML with its BatchEasyHardMiner. Target: adapter/PML <= 1.2
on the every-pair rows (the nearest-hardest rows include each side's selection).

Memory rows: the triplet loss (nearest positives, semi-hard negatives) on a batch of B = 256
against batch + memory of M = 0, 1k, 8k rows (`ref = cat(z, memory)`), forward + backward: time
relative to M = 0, and the extra peak resident memory of one step, measured in a fresh process.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_losses.py [--quick] [--threads 1]
"""

from __future__ import annotations

import argparse
import inspect
import statistics
import subprocess
import sys
from pathlib import Path

import torch
from torch.nn import functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import median_times, peak_rss_mib, pin_threads
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


def pml_equivalent(loss: str, positives: str, negatives: str, classes: int):
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
        "proxy_nca": lambda: losses.ProxyNCALoss(classes, 128, **lp),
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
        ("-", "-"): None,  # a loss that selects nothing (proxy_nca)
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
    parser.add_argument("--_memory", dest="memory_child", nargs=3, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        _memory_child(*args.memory_child)
        return
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
                context = dict(
                    geometry=Euclidean(),
                    **(selection if tuples else {}),
                    num_classes=B // args.per_class,
                    embedding_dim=E.shape[1],
                )  # a proxy loss is sized by the classes and the dimension
                own = LOSSES.build(loss_name, context)
                candidates = {"floor": floor(E), "own": step(own, E, labels)}
                pml = pml_equivalent(loss_name, positives, negatives, B // args.per_class)
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
    adapter_table(args.sizes, args.per_class, repeats, min_seconds)
    memory_table(args.per_class, args.threads, repeats, min_seconds)


ADAPTED = [
    "ContrastiveLoss",
    "TripletMarginLoss",
    "MultiSimilarityLoss",
    "NTXentLoss",
    "SupConLoss",
    "ProxyAnchorLoss",
    "NormalizedSoftmaxLoss",
]


def adapter_pair(name: str, B: int, per_class: int, selection: str):
    """(the adapter, the same PML loss called directly) with the same distance, options and
    parameters; PML's call gets its miner for the nearest-hardest selection."""
    from pytorch_metric_learning import distances, losses, miners

    every = selection == "every pair"
    context = dict(
        geometry=Euclidean(),
        positives="all" if every else "nearest",
        negatives="all" if every else "hardest",
        margin=MARGIN,
        num_classes=B // per_class,
        embedding_dim=128,
    )
    ours = LOSSES.build(f"pml:{name}", context)
    lp = dict(distance=distances.LpDistance(normalize_embeddings=False))
    parameters = inspect.signature(getattr(losses, name).__init__).parameters
    sizes = {
        key: value
        for key, value in {"num_classes": B // per_class, "embedding_size": 128}.items()
        if key in parameters and parameters[key].default is inspect.Parameter.empty
    }
    theirs = getattr(losses, name)(**lp, **sizes, **ours.options)
    theirs.load_state_dict(ours.pml.state_dict())
    if every:
        return ours, theirs
    miner = miners.BatchEasyHardMiner("easy", "hard", **lp)
    return ours, lambda E, y: theirs(E, y, miner(E, y))


def adapter_table(sizes: list[int], per_class: int, repeats: int, min_seconds: float) -> None:
    try:
        import pytorch_metric_learning  # noqa: F401 (present: the adapter can run)
    except ImportError:
        print("\nadapter rows skipped: pytorch-metric-learning is not installed")
        return
    print(f"\n{'pml: loss':31s} {'selection':15s} {'B':>4s} {'adapter ms':>10s} {'PML ms':>8s} "
          f"{'adapter/PML':>11s}")  # fmt: skip
    every_pair = []
    for B in sizes:
        E, labels = batch(B, per_class)
        for name in ADAPTED:
            for selection in ("every pair", "nearest-hardest"):
                ours, theirs = adapter_pair(name, B, per_class, selection)
                t = median_times(
                    {"adapter": step(ours, E, labels), "pml": step(theirs, E, labels)},
                    repeats,
                    min_seconds,
                )
                ratio = t["adapter"] / t["pml"]
                if selection == "every pair":
                    every_pair.append(ratio)
                print(
                    f"{name:31s} {selection:15s} {B:4d} {t['adapter'] * 1e3:10.3f} "
                    f"{t['pml'] * 1e3:8.3f} {ratio:11.2f}",
                    flush=True,
                )
    print(
        f"adapter/PML on every pair: median {statistics.median(every_pair):.2f}, max "
        f"{max(every_pair):.2f} (target <= 1.2; rows within: "
        f"{sum(r <= 1.2 for r in every_pair)}/{len(every_pair)})"
    )


MEMORY_SIZES = [0, 1024, 8192]
MEMORY_BATCH = 256


def memory_step(M: int, per_class: int):
    """One forward + backward of the triplet loss (nearest, semi-hard) on a batch of 256 against
    batch + M memory rows (detached, of the same classes)."""
    E, labels = batch(MEMORY_BATCH, per_class)
    memory, memory_labels = batch(max(M, per_class), per_class, seed=1)
    memory, memory_labels = memory[:M], memory_labels[:M] % (MEMORY_BATCH // per_class)
    loss = LOSSES["triplet"](Euclidean(), positives="nearest", negatives="semihard", margin=MARGIN)
    own = torch.arange(MEMORY_BATCH)

    def run():
        z = E.detach().requires_grad_(True)
        if M == 0:
            value = loss(z, labels)
        else:
            ref, ref_labels = torch.cat([z, memory]), torch.cat([labels, memory_labels])
            value = loss(z, labels, ref, ref_labels, own=own)
        value.backward()

    return run


def memory_table(per_class: int, threads: int, repeats: int, min_seconds: float) -> None:
    print(f"\n{'memory rows':>11s} {'B':>4s} {'ms':>8s} {'vs M=0':>7s} {'extra peak MiB':>14s}")
    t = median_times({M: memory_step(M, per_class) for M in MEMORY_SIZES}, repeats, min_seconds)
    for M in MEMORY_SIZES:
        peak = memory_peak(M, per_class, threads)
        print(
            f"{M:11d} {MEMORY_BATCH:4d} {t[M] * 1e3:8.3f} {t[M] / t[0]:7.2f} {peak:14.1f}",
            flush=True,
        )


def memory_peak(M: int, per_class: int, threads: int) -> float:
    """Extra peak RSS (MiB) of one memory step, in a fresh process."""
    out = subprocess.run(
        [sys.executable, __file__, "--_memory", str(M), str(per_class), str(threads)],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(out.stdout.strip().splitlines()[-1])


def _memory_child(M: int, per_class: int, threads: int) -> None:
    pin_threads(threads)
    run = memory_step(M, per_class)
    memory_step(0, per_class)()  # every kernel loaded first
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    before = peak_rss_mib()
    run()
    print(peak_rss_mib() - before)


if __name__ == "__main__":
    main()
