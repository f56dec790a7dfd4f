"""Share of a ResNet-18 training step spent in the lab's own metric-learning code.

One optimiser step as `dmllab.train` takes it (`step_loss`, backward, Adam step) on a batch of
64 images of 64 x 64 px (16 classes x 4), CPU, ResNet-18 (random init) with a 128-d head, margin
loss with per-class beta, nearest positives, distance-weighted negatives and LSD (alpha 50, its
teacher in place), in each geometry:

    step      the whole step, the LSD teacher's forward pass included
    dml       selection + loss + LSD on the step's embeddings: the batch matrix, the positives
              and negatives, the margin loss, LSD's lists and KL term, and their backward pass
              down to the embeddings (the trunk's forward and backward are not in it)
    teacher   LSD's teacher forward pass (a no-grad trunk pass over the batch: the method's own
              cost, in `step`, not in `dml`)

Prints the median times (threads pinned, round-robin repeats, one warm-up each) and
share = dml / step per geometry; the last line is the largest share against the target (< 15 %).

    OMP_NUM_THREADS=1 python benchmarks/bench_step.py [--threads 1] [--repeats 7] [--quick]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import median_times, pin_threads
from dmllab.build import build_components, build_regularisers
from dmllab.config import Config
from dmllab.losses.lsd import ListwiseSelfDistillation
from dmllab.optim import build_optimizer, parameter_groups
from dmllab.train import step_loss

TARGET = 0.15
SIZE, CLASSES, PER_CLASS = 64, 16, 4


def candidates(geometry: str) -> dict[str, Callable[[], object]]:
    """The three timed calls for one geometry (module docstring)."""
    config = Config(
        model="resnet18",
        embedding_dim=128,
        geometry=geometry,
        loss="margin",
        loss_options={"per_class_beta": True},
        positives="nearest",
        negatives="distance_weighted",
        lsd_alpha=50.0,
        classes_per_batch=CLASSES,
        samples_per_class=PER_CLASS,
        lr=1e-5,
        loss_lr=5e-4,
        weight_decay=4e-4,
        seed=0,
    )
    torch.manual_seed(0)
    shape = (3, SIZE, SIZE)
    model, geometry_, loss_fn = build_components(config, shape, CLASSES, shape)
    model.train()
    (lsd,) = build_regularisers(config, geometry_)
    assert isinstance(lsd, ListwiseSelfDistillation)
    lsd.start_fit(model, geometry_)
    lsd.end_epoch(model, geometry_, 0)  # a teacher, as from the second epoch on
    lsd.start_epoch(1, 2)
    groups = parameter_groups(model, loss_fn, lr=config.lr, loss_lr=config.loss_lr)
    optimizer = build_optimizer("adam", groups, lr=config.lr, weight_decay=config.weight_decay)
    assert optimizer is not None
    x = torch.rand(CLASSES * PER_CLASS, *shape)
    y = torch.arange(CLASSES).repeat_interleave(PER_CLASS)
    teacher = lsd.teacher
    assert teacher is not None

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss, _ = step_loss(model, loss_fn, x, y, regularisers=[lsd])
        loss.backward()
        optimizer.step()

    with torch.no_grad():
        embeddings = model(x)
        teacher_lists = teacher.similarities(x, lsd)

    def dml() -> None:
        loss_fn.zero_grad(set_to_none=True)
        z = embeddings.clone().requires_grad_(True)
        distances = geometry_.pairwise(z, z) if lsd.reads_distances else None
        base = loss_fn(z, y, distances=distances)
        kd = lsd(lsd.similarities(z, geometry_, distances), teacher_lists, y)
        (base + lsd.epoch_weight * kd).backward()

    def teacher_forward() -> None:
        with torch.no_grad():
            teacher.similarities(x, lsd)

    return {"step": step, "dml": dml, "teacher": teacher_forward}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="3 repeats of one call each")
    args = parser.parse_args()
    pin_threads(args.threads)
    repeats, min_seconds = (3, 0.0) if args.quick else (args.repeats, 0.05)
    print(
        f"ResNet-18 step, {SIZE} px, batch {CLASSES} x {PER_CLASS}, CPU, "
        f"threads={args.threads}, median of {repeats}"
    )
    shares = {}
    for geometry in ("euclidean", "bregman"):
        times = median_times(candidates(geometry), repeats=repeats, min_seconds=min_seconds)
        shares[geometry] = times["dml"] / times["step"]
        print(
            f"  {geometry:9s} step {times['step'] * 1e3:8.1f} ms   "
            f"selection + loss + LSD {times['dml'] * 1e3:7.2f} ms ({shares[geometry]:.1%})   "
            f"LSD teacher forward {times['teacher'] * 1e3:7.1f} ms "
            f"({times['teacher'] / times['step']:.1%})"
        )
    worst = max(shares, key=shares.__getitem__)
    verdict = "OK" if shares[worst] < TARGET else "ABOVE TARGET"
    print(
        f"selection + loss + LSD share of the step = {shares[worst]:.1%} ({worst}; "
        f"target < {TARGET:.0%}): {verdict}"
    )


if __name__ == "__main__":
    main()
