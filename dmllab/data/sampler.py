"""P x K class-balanced batches: P classes per batch, K samples of each.

Every DML loss needs positives (K >= 2 samples of a class) and negatives (P >= 2 classes) in each
batch. Within an epoch each class's samples are drawn from a shuffled cycle, and a class enters a
batch with probability proportional to its not-yet-drawn samples, so every sample is seen about
once per epoch whatever the class sizes. A class with fewer than K samples enters a batch with all
of its samples, each once (a warning says so once): a sample never appears twice in a batch, so no
anchor is ever paired with a copy of itself at D = 0 (which would make `positives="nearest"` pick
the copy). Such batches hold fewer than P * K rows.

Under DDP (world_size W > 1) every rank draws the same global batch from the same seed and yields
its contiguous shard batch[rank * B / W : (rank + 1) * B / W], B = P * K. When small classes make
a batch shorter than P * K, the largest class group gives up rows until B is a multiple of W.

>>> import torch
>>> labels = torch.arange(4).repeat_interleave(6)          # 4 classes x 6 samples
>>> sampler = ClassBalancedSampler(labels, classes_per_batch=2, samples_per_class=3, seed=0)
>>> len(sampler), [labels[batch].tolist().count(int(labels[batch[0]])) for batch in sampler]
(4, [3, 3, 3, 3])
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Sampler

from dmllab.arrays import label_array, refuse_unlabelled


class ClassBalancedSampler(Sampler[Tensor]):
    """Yields LongTensor index batches of P classes x K samples, a class's K samples contiguous.

    labels:            [N] class ids >= 0 of the dataset being sampled (a negative id marks an
                       unlabelled row and is refused, as everywhere labels enter).
    classes_per_batch: P >= 2 (negatives need a second class).
    samples_per_class: K >= 2 (positives need a second sample).
    batches_per_epoch: len(self); default max(1, N // (P * K)), about one pass over the data.
    seed, set_epoch:   batches are a deterministic function of (seed, epoch).
    rank, world_size:  DDP sharding; P * K must be divisible by world_size.
    """

    def __init__(
        self,
        labels: Tensor | Sequence[int],
        classes_per_batch: int,
        samples_per_class: int,
        *,
        batches_per_epoch: int | None = None,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        array = label_array(labels)  # 0-d tensors / arrays read as their values
        if array.dtype.kind not in "biuf":  # names, datetimes: no tensor holds them
            raise ValueError(
                f"labels must be a 1-D integer tensor; got {array.dtype} {tuple(array.shape)}"
            )
        labels = torch.as_tensor(array).cpu()
        if labels.dim() != 1 or torch.is_floating_point(labels) or labels.dtype == torch.bool:
            raise ValueError(
                f"labels must be a 1-D integer tensor; got {labels.dtype} {tuple(labels.shape)}"
            )
        refuse_unlabelled(labels.numpy(), "labels")
        for name, value in (
            ("classes_per_batch", classes_per_batch),
            ("samples_per_class", samples_per_class),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 2:
                need = (
                    "negatives need a second class"
                    if name == "classes_per_batch"
                    else "positives need a second sample of the class"
                )
                raise ValueError(f"{name} must be an int >= 2 ({need}); got {value!r}")
        classes, inverse, counts = torch.unique(
            labels.long(), return_inverse=True, return_counts=True
        )
        if len(classes) < classes_per_batch:
            raise ValueError(
                f"classes_per_batch={classes_per_batch} but the labels hold only {len(classes)} "
                f"classes; lower classes_per_batch to at most {len(classes)}"
            )
        if (
            not isinstance(world_size, int)
            or world_size < 1
            or not isinstance(rank, int)
            or not 0 <= rank < world_size
        ):
            raise ValueError(
                f"need 0 <= rank < world_size; got rank={rank!r}, world_size={world_size!r}"
            )
        batch_size = classes_per_batch * samples_per_class
        if batch_size % world_size:
            raise ValueError(
                f"the global batch of {classes_per_batch} x {samples_per_class} = {batch_size} "
                f"samples cannot be split evenly over world_size={world_size} ranks; make P * K a "
                "multiple of it"
            )
        if batches_per_epoch is None:
            batches_per_epoch = max(1, len(labels) // batch_size)
        if (
            isinstance(batches_per_epoch, bool)
            or not isinstance(batches_per_epoch, int)
            or batches_per_epoch < 1
        ):
            raise ValueError(
                f"batches_per_epoch must be an int >= 1 or None; got {batches_per_epoch!r}"
            )
        smallest = int(counts.clamp(max=samples_per_class).sort().values[:classes_per_batch].sum())
        if smallest < world_size:
            raise ValueError(
                f"a batch of the {classes_per_batch} smallest classes holds only {smallest} "
                f"distinct samples, fewer than world_size={world_size} ranks; use fewer ranks or "
                "drop the tiny classes"
            )
        small = classes[counts < samples_per_class]
        if len(small):
            warnings.warn(
                f"{len(small)} class(es) have fewer than samples_per_class={samples_per_class} "
                f"samples (e.g. {small[:5].tolist()}); a batch holds each of their samples once, "
                "so those batches are smaller than classes_per_batch x samples_per_class",
                stacklevel=2,
            )
        order = torch.argsort(inverse, stable=True)
        self._members = [part.clone() for part in torch.split(order, counts.tolist())]
        self._counts = counts
        self.classes_per_batch = classes_per_batch
        self.samples_per_class = samples_per_class
        self.batches_per_epoch = batches_per_epoch
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0

    def __len__(self) -> int:
        return self.batches_per_epoch

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose batches the next iteration yields (call it every epoch)."""
        self.epoch = int(epoch)

    def __iter__(self) -> Iterator[Tensor]:
        state = np.random.SeedSequence([int(self.seed) & 0xFFFFFFFF, self.epoch & 0xFFFFFFFF])
        gen = torch.Generator().manual_seed(int(state.generate_state(1, np.uint64)[0] >> 1))
        cycles = [
            self._members[c][torch.randperm(len(self._members[c]), generator=gen)]
            for c in range(len(self._members))
        ]
        positions = [0] * len(cycles)
        remaining = self._counts.double()
        for _ in range(self.batches_per_epoch):
            chosen = _pick_classes(remaining, self.classes_per_batch, gen)
            groups = []
            for c in chosen.tolist():
                take = min(self.samples_per_class, len(cycles[c]))  # never a sample twice
                rows, cycles[c], positions[c] = _draw(cycles[c], positions[c], take, gen)
                groups.append(rows)
            remaining[chosen] = (remaining[chosen] - self.samples_per_class).clamp(min=0)
            batch = torch.cat(_divisible(groups, self.world_size))
            shard = len(batch) // self.world_size
            yield batch[self.rank * shard : (self.rank + 1) * shard]


def _pick_classes(remaining: Tensor, p: int, gen: torch.Generator) -> Tensor:
    """P distinct classes, class c included with probability proportional to remaining[c]
    (capped at 1).

    Systematic sampling over a random class order: inclusion probabilities pi_c = P * w_c / sum(w),
    where classes whose pi_c would exceed 1 are fixed at 1 and the rest re-share what is left.
    A tiny floor on w lets exhausted classes fill a batch when fewer than P others have samples
    left.
    """
    weights = remaining + 1e-9
    inclusion = weights * p / weights.sum()
    while bool((inclusion > 1).any()):
        capped = inclusion >= 1
        inclusion[capped] = 1.0
        inclusion[~capped] = weights[~capped] * (p - int(capped.sum())) / weights[~capped].sum()
    order = torch.randperm(len(weights), generator=gen)
    bounds = inclusion[order].cumsum(0)
    points = torch.rand(1, generator=gen, dtype=bounds.dtype) + torch.arange(p, dtype=bounds.dtype)
    chosen = order[torch.searchsorted(bounds, points, right=True).clamp(max=len(order) - 1)]
    if len(torch.unique(chosen)) < p:  # only by floating-point rounding at an interval edge
        chosen = torch.multinomial(weights, p, replacement=False, generator=gen)
    return chosen


def _divisible(groups: list[Tensor], world_size: int) -> list[Tensor]:
    """The class groups with rows taken off the largest one until their total divides world_size."""
    groups = list(groups)
    for _ in range(sum(len(group) for group in groups) % world_size):
        largest = max(range(len(groups)), key=lambda i: len(groups[i]))
        groups[largest] = groups[largest][:-1]
    return groups


def _draw(cycle: Tensor, position: int, k: int, gen: torch.Generator) -> tuple[Tensor, Tensor, int]:
    """The next k indices of a class's shuffled cycle, reshuffling when it runs out.

    On a reshuffle, the rows just taken are moved to the end of the new cycle so that a batch holds
    no duplicate while the class has at least k samples.
    """
    taken = [cycle[position : position + k]]
    position += len(taken[0])
    while sum(len(part) for part in taken) < k:
        fresh = cycle[torch.randperm(len(cycle), generator=gen)]
        recent = torch.isin(fresh, torch.cat(taken))
        cycle = torch.cat([fresh[~recent], fresh[recent]])
        need = k - sum(len(part) for part in taken)
        taken.append(cycle[:need])
        position = len(taken[-1])
    return torch.cat(taken), cycle, position
