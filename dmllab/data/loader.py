"""The one seam through which batches of inputs reach the training loop and evaluation.

`TrainBatches(data, sampler, device, num_workers=..., augment=..., on_bad_image=...)` yields, for
every index batch of the class-balanced sampler, the batch `(x [B, ...], y [B])` on `device`:

- inputs held in memory (a tensor) are indexed directly, in this process: the fast path;
- lazy inputs (image folders, `LazyImages`) are read by a torch `DataLoader` whose workers decode
  whole batches off the main process (`num_workers` processes, kept across epochs, pinned memory
  on CUDA, two batches prefetched per worker), each image through the training transform of the
  named pair `augment` (`dmllab.data.transforms`). The sampler runs in the main process and hands
  each worker the batch's key (epoch, batch number, indices), and each image's random draws come
  from a generator seeded by (seed, epoch, batch number, position in the global batch), so what a
  batch holds does not depend on the number of workers or ranks; the loader draws nothing from
  torch's global generator, so the training's own random choices are the same with and without
  workers.

A file that fails to decode in a worker comes back to the main process as its name and reason:
`on_bad_image="raise"` raises `BadImageError` naming it; "skip" warns (once per file), counts it
(`skipped`, the epoch's count) and puts another image of the same class in its place (drawn from
the rest of the split by the image's seed), so the batch and every rank's share keep their size.

`embedding_batches(x, batch_size, ...)` streams lazy inputs in order through the evaluation
transform, in batches, for `Run.embed`: nothing holds a whole split decoded. There every row
keeps its place: a file that fails raises naming it, or under "skip" embeds as a black image.
`augmented_views(x, row, augment)` shows what the transforms make of one image.

Call `set_epoch(epoch)` before each epoch (it sets the sampler's epoch and the skipped count).
After each batch it yields, `index` holds the batch's dataset rows [B] (a sample's identity
across batches: a cross-batch memory leaves out its earlier copies of the batch's own samples).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any, NamedTuple

import torch
from torch import Tensor
from torch.utils.data import DataLoader
from torch.utils.data import Dataset as TorchDataset

from dmllab.data.dataset import Dataset, LazyInputs
from dmllab.data.images import BadImageError, LazyImages, decode, read_pixels
from dmllab.data.sampler import ClassBalancedSampler
from dmllab.data.transforms import (
    BAD_IMAGE_POLICIES,
    TRANSFORMS,
    Transform,
    TransformPair,
    as_float,
    sample_seed,
)
from dmllab.paths import printable

__all__ = [
    "BatchKey",
    "BatchReader",
    "Failure",
    "TrainBatches",
    "augmented_views",
    "embedding_batches",
    "transform_pair",
]

BLANK = "a black image"

BatchKey = tuple[int, int, Tensor]
"""(epoch, batch number within the epoch, row indices of the batch)."""


class Failure(NamedTuple):
    """An image file of a batch that failed to decode: `path`, `reason`, and `replacement`, the
    file that took its place ("" when none did: "raise", or a failed replacement candidate);
    `drawn` is False for a replacement candidate that failed in turn."""

    path: str
    reason: str
    replacement: str
    drawn: bool


class BatchReader(TorchDataset):
    """A map-style torch dataset over batch keys: `reader[key]` is the batch's (x, y, index,
    failures),
    decoded in whatever process reads it (a DataLoader worker).

    x, y:      the inputs (lazy or in memory) and their labels.
    transform: each image's transform (None: `LazyImages` decoding as is).
    policy:    "raise": a failed file ends the batch; "skip": another image of its class takes
               its place; "blank": a black image takes its place (evaluation under "skip").
    seed:      the training's seed; rank: this process's rank (positions count in the global
               batch, whose share of `len(index)` rows each rank reads).
    """

    def __init__(
        self,
        x: Tensor | LazyInputs,
        y: Tensor,
        *,
        transform: Transform | None = None,
        policy: str = "raise",
        seed: int = 0,
        rank: int = 0,
    ) -> None:
        self.x = x
        self.y = y
        self.transform = transform
        self.policy = policy
        self.seed = seed
        self.rank = rank

    def __getitem__(self, key: BatchKey) -> tuple[Tensor, Tensor, Tensor, list[Failure]]:
        epoch, number, index = key
        if not isinstance(self.x, LazyImages):
            try:
                return self.x[index], self.y[index], index, []
            except BadImageError as error:  # other lazy inputs decode whole batches: no skipping
                failed = [Failure(error.path, error.reason, "", True)]
                return torch.empty(0), self.y[index], index, failed
        rows = index.tolist()
        first = self.rank * len(rows)  # the share's place in the global batch
        images: list[Tensor] = []
        failures: list[Failure] = []
        with torch.random.fork_rng(devices=[]):  # the caller's generator is left as it was
            for position, row in enumerate(rows):
                seed = sample_seed(self.seed, epoch, number, first + position)
                image = self._image_or_stand_in(row, rows, seed, failures)
                if image is None:  # the main process raises naming the file
                    return torch.empty(0), self.y[index], index, failures
                images.append(image)
        return torch.stack(images), self.y[index], index, failures

    def _image_or_stand_in(
        self, row: int, rows: list[int], seed: int, failures: list[Failure]
    ) -> Tensor | None:
        """Image `row`, or what the policy puts in its place when it fails (the failure added to
        `failures`); None when nothing may take its place."""
        assert isinstance(self.x, LazyImages)
        try:
            return self.image(row, seed)
        except BadImageError as error:
            failed = error
        found: tuple[Tensor, str] | None = None
        if self.policy == "skip":
            found = self.replace(row, rows, seed, failures)
        elif self.policy == "blank":
            found = torch.zeros(3, self.x.size, self.x.size), BLANK
        if found is None:
            none_left = "; on_bad_image='skip' found no other readable image of its class to take "
            note = none_left + "its place" if self.policy == "skip" else ""
            failures.append(Failure(failed.path, failed.reason + note, "", True))
            return None
        failures.append(Failure(failed.path, failed.reason, found[1], True))
        return found[0]

    def image(self, row: int, seed: int) -> Tensor:
        """Image `row` as float32 [3, S, S], its random draws from torch's CPU generator seeded
        with `seed` (the caller restores that generator)."""
        assert isinstance(self.x, LazyImages)
        path = self.x.paths[row]
        if self.transform is None:
            return decode(path, self.x.size)
        torch.default_generator.manual_seed(seed)
        return as_float(self.transform(read_pixels(path, self.x.size)))

    def replace(
        self, row: int, rows: list[int], seed: int, failures: list[Failure]
    ) -> tuple[Tensor, str] | None:
        """Another image of row's class to take its place, and its path: the class's rows outside
        the batch in an order drawn from `seed`, then its other rows in the batch; a candidate
        that fails too is added to `failures`. None when no candidate decodes."""
        assert isinstance(self.x, LazyImages)
        label = int(self.y[row])
        same = (self.y == label).nonzero().flatten()
        outside = same[~torch.isin(same, torch.tensor(rows))]
        order = outside[torch.randperm(len(outside), generator=torch.Generator().manual_seed(seed))]
        inside = [other for other in rows if other != row and int(self.y[other]) == label]
        for candidate in [*order.tolist(), *inside]:
            try:
                return self.image(candidate, seed), self.x.paths[candidate]
            except BadImageError as error:
                failures.append(Failure(error.path, error.reason, "", False))
        return None

    def __len__(self) -> int:
        return len(self.y)


class _Keys:
    """The sampler's index batches of the current epoch as batch keys."""

    def __init__(self, sampler: ClassBalancedSampler) -> None:
        self.sampler = sampler

    def __iter__(self) -> Iterator[BatchKey]:
        epoch = self.sampler.epoch
        for number, index in enumerate(self.sampler):
            yield epoch, number, index

    def __len__(self) -> int:
        return len(self.sampler)


def transform_pair(augment: str, x: Tensor | LazyInputs) -> TransformPair:
    """The named transform pair `augment` for the inputs `x`, at their image size. Raises
    ValueError when a pair other than "none" is asked of inputs that are not image files."""
    if augment == "none":
        return TRANSFORMS.build("none", {"image_size": 0})
    if not isinstance(x, LazyImages):
        kind = "tensors held in memory" if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(
            f"augment={augment!r} transforms image files (an image folder's `LazyImages`); "
            f"these inputs are {kind}: use augment='none', or load the images with "
            "dmllab.data.load('folder', root=...)"
        )
    return TRANSFORMS.build(augment, {"image_size": x.size})


class TrainBatches:
    """The training batches of each epoch on `device` (module docstring).

    num_workers:  worker processes decoding lazy inputs (0: in this process). Ignored for inputs
                  held in memory.
    augment:      the named transform pair whose training transform each image goes through.
    on_bad_image: "raise" or "skip" (`dmllab.data.transforms`).
    skipped:      images of this epoch's batches that failed and were replaced ("skip")."""

    def __init__(
        self,
        data: Dataset,
        sampler: ClassBalancedSampler,
        device: torch.device,
        *,
        num_workers: int = 0,
        augment: str = "none",
        on_bad_image: str = "raise",
    ) -> None:
        if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
            raise ValueError(f"num_workers must be an int >= 0; got {num_workers!r}")
        if on_bad_image not in BAD_IMAGE_POLICIES:
            raise ValueError(
                f"on_bad_image must be one of {', '.join(BAD_IMAGE_POLICIES)}; got {on_bad_image!r}"
            )
        self.data = data
        self.sampler = sampler
        self.device = device
        self.num_workers = num_workers
        self.in_memory = isinstance(data.x, Tensor)
        self.transform = transform_pair(augment, data.x).train
        self.on_bad_image = on_bad_image
        self.skipped = 0
        self._warned: set[str] = set()
        self._loader: DataLoader[Any] | None = None
        #: the dataset rows of the batch last yielded [B] (None before the first)
        self.index: Tensor | None = None

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose batches the next iteration yields."""
        self.sampler.set_epoch(epoch)
        self.skipped = 0

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        if self.in_memory:
            x, y = self.data.x, self.data.y
            assert isinstance(x, Tensor)
            for index in self.sampler:
                self.index = index.to(self.device)
                yield x[index].to(self.device), y[index].to(self.device)
            return
        for x, y, index, failures in self.loader():
            self._account(failures)
            self.index = index.to(self.device)
            yield x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)

    def _account(self, failures: list[Failure]) -> None:
        """Raise for a failed file ("raise"); count and warn once per file ("skip")."""
        for failure in failures:
            if failure.drawn and not failure.replacement:  # "raise", or nothing could replace it
                raise BadImageError(failure.path, failure.reason)
            self.skipped += int(failure.drawn)
            if failure.path in self._warned:
                continue
            self._warned.add(failure.path)
            instead = (
                f"; another image of its class took its place ({printable(failure.replacement)})"
                if failure.drawn
                else " (a candidate to replace another bad image)"
            )
            warnings.warn(
                f"skipped image {printable(failure.path)}: {failure.reason}{instead}. "
                "on_bad_image='skip' counts these in the history's bad_images; replace or "
                "delete the file",
                stacklevel=3,
            )

    def loader(self) -> DataLoader[Any]:
        """The DataLoader over batch keys (made once; its workers persist across epochs)."""
        if self._loader is None:
            workers = self.num_workers
            reader = BatchReader(
                self.data.x,
                self.data.y,
                transform=self.transform,
                policy=self.on_bad_image,
                seed=self.sampler.seed,
                rank=self.sampler.rank,
            )
            self._loader = DataLoader(
                reader,
                sampler=_Keys(self.sampler),
                batch_size=None,  # each key is a whole batch
                num_workers=workers,
                persistent_workers=workers > 0,
                prefetch_factor=2 if workers > 0 else None,
                pin_memory=self.device.type == "cuda",
                # its own generator: a DataLoader draws its workers' base seed from the global
                # one at every new iterator, which would shift the training's random draws
                generator=torch.Generator().manual_seed(self.sampler.seed),
            )
        return self._loader


def embedding_batches(
    x: LazyInputs,
    batch_size: int,
    *,
    augment: str = "none",
    num_workers: int = 0,
    pin_memory: bool = False,
    on_bad_image: str = "raise",
    failed: list[int] | None = None,
) -> Iterator[Tensor]:
    """The rows of lazy inputs `x` in order, in batches of `batch_size`, decoded through the
    evaluation transform of `augment` by `num_workers` DataLoader worker processes (0, or a single
    batch: this process). At most (2 x num_workers + 1) batches are decoded at a time, whatever
    len(x).

    A file that fails raises BadImageError naming it (on_bad_image="raise"); under "skip" its row
    is a black image, with a warning naming the file (every row keeps its place: the embeddings
    stay aligned with the labels, and no other image's copy inflates a retrieval score), and the
    row's position is appended to `failed` when a list is given (evaluation leaves those rows
    out of its metrics)."""
    if on_bad_image not in BAD_IMAGE_POLICIES:
        raise ValueError(
            f"on_bad_image must be one of {', '.join(BAD_IMAGE_POLICIES)}; got {on_bad_image!r}"
        )
    reader = BatchReader(x, torch.zeros(len(x), dtype=torch.long),
                         transform=transform_pair(augment, x).eval,
                         policy="blank" if on_bad_image == "skip" else "raise")  # fmt: skip
    keys = [(0, number, torch.arange(start, min(start + batch_size, len(x))))
            for number, start in enumerate(range(0, len(x), batch_size))]  # fmt: skip
    workers = num_workers if len(keys) > 1 else 0  # one batch: a worker adds only its start-up
    loader = DataLoader(
        reader,
        sampler=keys,
        batch_size=None,
        num_workers=workers,
        prefetch_factor=2 if workers > 0 else None,
        pin_memory=pin_memory,
        generator=torch.Generator().manual_seed(0),  # never the global generator (module doc)
    )
    for images, _, index, failures in loader:
        for failure in failures:
            if not failure.replacement:
                raise BadImageError(failure.path, failure.reason)
            if failed is not None and isinstance(x, LazyImages):
                failed.extend(row for row in index.tolist() if x.paths[row] == failure.path)
            warnings.warn(
                f"embedding {BLANK} in place of {printable(failure.path)}: {failure.reason} "
                "(on_bad_image='skip'); replace or delete the file",
                stacklevel=3,
            )
        yield images


def augmented_views(
    x: LazyInputs, row: int, augment: str = "dml-standard", views: int = 7, *, seed: int = 0
) -> Tensor:
    """Image `row` of the image files `x` as evaluation reads it, then `views` draws of the
    training transform of `augment` (view i from the seed `sample_seed(seed, i, 0, 0)`, as a
    training batch would seed it): float32 [views + 1, 3, S, S] in [0, 1]. Torch's generator is
    left as it was. Raises ValueError for inputs that are not image files, BadImageError for a
    file that cannot be decoded."""
    if isinstance(views, bool) or not isinstance(views, int) or views < 1:
        raise ValueError(f"views must be an int >= 1; got {views!r}")
    pair = transform_pair(augment, x)
    labels = torch.zeros(len(x), dtype=torch.long)
    train = BatchReader(x, labels, transform=pair.train, seed=seed)
    evaluation = BatchReader(x, labels, transform=pair.eval)
    with torch.random.fork_rng(devices=[]):
        images = [evaluation.image(row, 0)]
        images += [train.image(row, sample_seed(seed, view, 0, 0)) for view in range(views)]
    return torch.stack(images)
