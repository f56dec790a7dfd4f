"""Cost of a learned Bregman pairwise matrix (forward + double backward) against squared Euclidean.

    reference = SquaredEuclidean().pairwise(z, z); (D * W).sum().backward()
    bregman   = Bregman(d, "icnn").pairwise(z, z);  (D * W).sum().backward()
                (ICNN widths (32, 32, 32); grad phi with create_graph=True, so the backward pass
                differentiates through grad phi: the training cost)
    maxaffine = Bregman(d, "maxaffine").pairwise(z, z), same backward (closed form, no grad phi)

z [B, d] requires grad (it stands for a model's output), W is a fixed random weighting. Prints
the median per-call times and the ratios to the reference measured in the same run.
Target: bregman / reference <= 4 at B = 256, d = 128.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_bregman.py \
        [--batch 256] [--dim 128] [--threads 1]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import median_times, pin_threads
from dmllab.geometry import SquaredEuclidean
from dmllab.geometry.bregman import Bregman


def forward_backward(geometry: torch.nn.Module, z: torch.Tensor, weights: torch.Tensor):
    def step() -> None:
        geometry.zero_grad(set_to_none=True)
        z.grad = None
        (geometry.pairwise(z, z) * weights).sum().backward()

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    pin_threads(args.threads)
    torch.manual_seed(0)
    z = torch.randn(args.batch, args.dim, requires_grad=True)
    weights = torch.rand(args.batch, args.batch)
    candidates = {
        "sqeuclidean (reference)": forward_backward(SquaredEuclidean(), z, weights),
        "bregman (icnn 32-32-32)": forward_backward(Bregman(args.dim), z, weights),
        "bregman-maxaffine (K=8)": forward_backward(Bregman(args.dim, "maxaffine"), z, weights),
    }
    times = median_times(candidates, repeats=args.repeats)
    reference = times["sqeuclidean (reference)"]
    print(
        f"pairwise + backward, B={args.batch}, d={args.dim}, threads={args.threads}, "
        f"median of {args.repeats}"
    )
    for name, seconds in times.items():
        print(f"  {name:26s} {seconds * 1e3:8.3f} ms   x{seconds / reference:5.2f}")
    ratio = times["bregman (icnn 32-32-32)"] / reference
    verdict = "OK" if ratio <= 4 else "ABOVE TARGET"
    print(f"bregman / sqeuclidean = {ratio:.2f} (target <= 4): {verdict}")


if __name__ == "__main__":
    main()
