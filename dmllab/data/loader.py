"""The one seam through which training batches reach the loop.

`TrainBatches(data, sampler, device, num_workers=...)` yields, for every index batch of the
class-balanced sampler, the batch `(x [B, ...], y [B])` on `device`:

- inputs held in memory (a tensor) are indexed directly, in this process: the fast path;
- lazy inputs (image folders, `LazyImages`) are read by a torch `DataLoader` whose workers decode
  whole batches off the main process (`num_workers` processes, kept across epochs, pinned memory
  on CUDA, two batches prefetched per worker). The sampler runs in the main process and hands
  each worker the batch's key (epoch, batch number, indices), so what a batch holds does not
  depend on the number of workers; the loader draws nothing from torch's global generator, so
  the training's own random choices are the same with and without workers.

Call `set_epoch(epoch)` before each epoch (it sets the sampler's epoch). After each batch it
yields, `index` holds the batch's dataset rows [B] (a sample's identity across batches: a
cross-batch memory leaves out its earlier copies of the batch's own samples).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader
from torch.utils.data import Dataset as TorchDataset

from dmllab.data.dataset import Dataset
from dmllab.data.sampler import ClassBalancedSampler

__all__ = ["BatchKey", "BatchReader", "TrainBatches"]

BatchKey = tuple[int, int, Tensor]
"""(epoch, batch number within the epoch, row indices of the batch)."""


class BatchReader(TorchDataset):
    """A map-style torch dataset over batch keys: `reader[key]` is the batch's (x, y, index),
    decoded in whatever process reads it (a DataLoader worker)."""

    def __init__(self, data: Dataset) -> None:
        self.x = data.x
        self.y = data.y

    def __getitem__(self, key: BatchKey) -> tuple[Tensor, Tensor, Tensor]:
        _, _, index = key
        return self.x[index], self.y[index], index

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


class TrainBatches:
    """The training batches of each epoch on `device` (module docstring).

    num_workers: worker processes decoding lazy inputs (0: in this process). Ignored for inputs
    held in memory."""

    def __init__(
        self,
        data: Dataset,
        sampler: ClassBalancedSampler,
        device: torch.device,
        *,
        num_workers: int = 0,
    ) -> None:
        if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
            raise ValueError(f"num_workers must be an int >= 0; got {num_workers!r}")
        self.data = data
        self.sampler = sampler
        self.device = device
        self.num_workers = num_workers
        self.in_memory = isinstance(data.x, Tensor)
        self._loader: DataLoader[Any] | None = None
        #: the dataset rows of the batch last yielded [B] (None before the first)
        self.index: Tensor | None = None

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose batches the next iteration yields."""
        self.sampler.set_epoch(epoch)

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
        for x, y, index in self.loader():
            self.index = index.to(self.device)
            yield x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)

    def loader(self) -> DataLoader[Any]:
        """The DataLoader over batch keys (made once; its workers persist across epochs)."""
        if self._loader is None:
            workers = self.num_workers
            self._loader = DataLoader(
                BatchReader(self.data),
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
