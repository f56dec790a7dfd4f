"""Input pipeline throughput: the lab's training batches against torchvision's ImageFolder.

A CUB-layout folder of generated JPEGs (about 500 x 375, like CUB-200-2011's photos) is written
into a temporary folder. Each candidate reads whole epochs of `--batches` batches of `--batch`
images with the same training transform (RandomResizedCrop(image_size) + RandomHorizontalFlip,
then float32 in [0, 1]) and the same number of persistent DataLoader workers:

    torchvision  datasets.ImageFolder (Pillow decode, v2 transforms on the PIL image, ToImage,
                 ToDtype) + DataLoader(batch_size, shuffle, workers)
    lab          dmllab.data.load("cub200") + TrainBatches(augment="dml-standard"): whole batches
                 per worker, JPEGs by torchvision's decode_jpeg, transforms on uint8 tensors
                 before the float conversion, large JPEGs at a reduced DCT scale (Pillow's draft)

and, to show what each of the lab's choices brings, the lab with one of them undone:

    lab, Pillow decode       every file decoded by Pillow in full (no decode_jpeg, no draft)
    lab, float first         the uint8 tensor converted to float before the transforms
    lab, no draft            JPEGs decoded in full (only differs when the shorter side is at
                             least 4 x image_size: measured at --draft-size, 64 by default)

Times are medians of round-robin repeats (`benchmarks/_timing.py`, the main process pinned to
`--threads`; each worker runs one thread); each figure is images per second and its ratio to
torchvision's in the same run. With `--embed N` it also reports the peak memory of `Run.embed`
over a generated folder of N images (a fresh process, workers off, `/proc/self/status` VmHWM),
against the size of the split decoded. The last line is the lab's ratio to torchvision at
`--image-size`.

    python benchmarks/bench_input.py --quick                   # tiny: checks that it runs
    python benchmarks/bench_input.py                           # 3,000 JPEGs, 224 px, 2 workers
    python benchmarks/bench_input.py --workers 4 --embed 10000
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import median_times, peak_rss_mib, pin_threads


def write_cub(root: Path, images: int, classes: int, seed: int = 0) -> Path:
    """A CUB_200_2011 folder of `images` JPEGs of 500 x (300..400) pixels in `classes` classes."""
    from PIL import Image

    base = root / "CUB_200_2011"
    rng = np.random.default_rng(seed)
    listing, labels = [], []
    for image_id in range(1, images + 1):
        c = image_id % classes + 1
        height = int(rng.integers(300, 401))
        ramp = np.linspace(0, 180, 500)[None, :, None] + np.linspace(0, 60, height)[:, None, None]
        pixels = ramp + rng.normal(0, 18, (height, 500, 3)) + rng.integers(0, 60, 3)
        rel = f"{c:03d}.class_{c}/{image_id:05d}.jpg"
        (base / "images" / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(
            base / "images" / rel, quality=90
        )
        listing.append(f"{image_id} {rel}")
        labels.append(f"{image_id} {c}")
    (base / "images.txt").write_text("\n".join(listing) + "\n")
    (base / "image_class_labels.txt").write_text("\n".join(labels) + "\n")
    (base / "classes.txt").write_text(
        "\n".join(f"{c} {c:03d}.class_{c}" for c in range(1, classes + 1)) + "\n"
    )
    return root


def torchvision_epoch(root: Path, size: int, batch: int, batches: int, workers: int) -> Callable:
    """One epoch of ImageFolder + DataLoader with the same transform."""
    from torch.utils.data import DataLoader, RandomSampler
    from torchvision import datasets
    from torchvision.transforms import v2

    transform = v2.Compose([v2.RandomResizedCrop(size), v2.RandomHorizontalFlip(), v2.ToImage(),
                            v2.ToDtype(torch.float32, scale=True)])  # fmt: skip
    folder = datasets.ImageFolder(str(root / "CUB_200_2011" / "images"), transform=transform)
    loader = DataLoader(
        folder,
        batch_size=batch,
        sampler=RandomSampler(folder, replacement=True, num_samples=batch * batches),
        num_workers=workers,
        persistent_workers=workers > 0,
        prefetch_factor=2 if workers > 0 else None,
        drop_last=True,
    )

    def epoch() -> None:
        for x, _ in loader:
            assert x.shape == (batch, 3, size, size)

    return epoch


def lab_epoch(
    root: Path, size: int, batch: int, batches: int, workers: int, variant: str = "lab"
) -> Callable:
    """One epoch of the lab's TrainBatches (a variant undoes one of its choices)."""
    from dmllab.data import ClassBalancedSampler, load
    from dmllab.data.loader import TrainBatches

    data = load("cub200", root=root, image_size=size)
    sampler = ClassBalancedSampler(data.y, batch // 4, 4, batches_per_epoch=batches)
    batches_ = TrainBatches(
        data, sampler, torch.device("cpu"), num_workers=workers, augment="dml-standard"
    )
    reader = batches_.loader().dataset
    if variant != "lab":  # the worker processes fork from here, with this reader
        reader.image = _variant_image(reader, variant)
    count = [0]

    def epoch() -> None:
        batches_.set_epoch(count[0])
        count[0] += 1
        for x, _ in batches_:
            assert x.shape == (batch, 3, size, size)

    return epoch


def _variant_image(reader: Any, variant: str) -> Callable[[int, int], torch.Tensor]:
    from PIL import Image

    from dmllab.data.images import read, read_pixels
    from dmllab.data.transforms import as_float
    from dmllab.vision import require

    io = require("the benchmark").io

    def pixels(path: str, size: int) -> torch.Tensor:
        if variant == "lab, Pillow decode":
            return torch.from_numpy(np.asarray(read(path)).transpose(2, 0, 1).copy())
        if variant == "lab, no draft":
            with Image.open(path) as image:
                if image.format == "JPEG" and image.mode in ("RGB", "L"):
                    data = torch.frombuffer(bytearray(Path(path).read_bytes()), dtype=torch.uint8)
                    return io.decode_jpeg(data, mode=io.ImageReadMode.RGB)
        image = read_pixels(path, size)
        return as_float(image) if variant == "lab, float first" else image

    def image(row: int, seed: int) -> torch.Tensor:
        torch.default_generator.manual_seed(seed)
        path = reader.x.paths[row]
        return as_float(reader.transform(pixels(path, reader.x.size)))

    return image


def throughput(
    root: Path, size: int, args: argparse.Namespace, variants: list[str]
) -> dict[str, float]:
    """Images per second of torchvision and of each lab variant at `size`, round-robin."""
    epochs: dict[str, Callable] = {
        "torchvision": torchvision_epoch(root, size, args.batch, args.batches, args.workers)
    }
    for variant in variants:
        epochs[variant] = lab_epoch(root, size, args.batch, args.batches, args.workers, variant)
    seconds = median_times(epochs, repeats=args.repeats, min_seconds=0.0)
    return {name: args.batch * args.batches / value for name, value in seconds.items()}


def embed_memory(images: int, size: int, batch: int) -> list[dict[str, float]]:
    """Peak extra memory of Run.embed over the first images // 5 and all `images` images of a
    generated folder, each measured in a fresh process (the folder is written by this one)."""
    from dmllab.data.example_folder import write_example_folder

    with tempfile.TemporaryDirectory(prefix="dmllab-bench-embed-") as tmp:
        root = write_example_folder(Path(tmp) / "f", classes=10, per_class=images // 10,
                                    size=max(size, 32))  # fmt: skip
        runs = [
            subprocess.run(
                [sys.executable, __file__, "--_embed", str(root), str(size), str(batch), str(n)],
                capture_output=True,
                text=True,
                check=True,
            )
            for n in (images // 5, images)
        ]
    return [json.loads(out.stdout.strip().splitlines()[-1]) for out in runs]


def _embed_child(root: str, size: int, batch: int, rows: int) -> None:
    import dmllab as dl

    pin_threads(1)
    data = dl.data.load("folder", root=root, image_size=size)
    config = dl.Config(dataset="folder", dataset_options={"root": root, "image_size": size},
                       model="cnn", model_options={"channels": [8]}, embedding_dim=16, epochs=1,
                       batches_per_epoch=1)  # fmt: skip
    run = dl.fit(config, data, progress=False)
    Path("/proc/self/clear_refs").write_text("5")
    before = peak_rss_mib()
    embeddings = run.embed(data.subset(torch.arange(rows)), batch_size=batch)
    peak = peak_rss_mib() - before
    decoded = rows * 3 * size * size * 4 / 2**20
    print(json.dumps({"images": len(embeddings), "peak_extra_mib": peak, "split_mib": decoded,
                      "batch_mib": batch * 3 * size * size * 4 / 2**20}))  # fmt: skip


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--_embed":
        _embed_child(sys.argv[2], *(int(value) for value in sys.argv[3:6]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks that it runs")
    parser.add_argument("--images", type=int, default=3000)
    parser.add_argument("--classes", type=int, default=100)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--draft-size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--batches", type=int, default=12, help="batches per timed epoch")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--embed", type=int, default=0, help="images for the memory check")
    args = parser.parse_args()
    if args.quick:
        args.images, args.classes, args.batch, args.batches, args.repeats = 120, 10, 16, 3, 2
        args.image_size, args.embed = 96, args.embed or 400
    pin_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="dmllab-bench-input-") as tmp:
        root = write_cub(Path(tmp), args.images, args.classes)
        print(f"{args.images} JPEGs (500 x 300..400) in {args.classes} classes; batch "
              f"{args.batch}, {args.batches} batches per epoch, "
              f"{args.workers} workers")  # fmt: skip
        results = {}
        for size, variants in (
            (args.image_size, ["lab", "lab, Pillow decode", "lab, float first"]),
            (args.draft_size, ["lab", "lab, no draft"]),
        ):
            rates = throughput(root, size, args, variants)
            for name, rate in rates.items():
                print(f"  {size:4d} px  {name:20s} {rate:8.0f} img/s  "
                      f"{rate / rates['torchvision']:5.2f}x torchvision")  # fmt: skip
            results[size] = rates
    if args.embed:
        for memory in embed_memory(args.embed, 64, 256):
            print(f"Run.embed over {memory['images']} images at 64 px, batch 256, no workers: "
                  f"peak +{memory['peak_extra_mib']:.0f} MiB (the split decoded: "
                  f"{memory['split_mib']:.0f} MiB; one batch: "
                  f"{memory['batch_mib']:.0f} MiB)")  # fmt: skip
    main_rates = results[args.image_size]
    print(f"lab / torchvision ImageFolder at {args.image_size} px: "
          f"{main_rates['lab'] / main_rates['torchvision']:.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
