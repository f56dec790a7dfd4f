"""Cross-batch memory (XBM; Wang, Zhang, Huang, Scott, "Cross-Batch Memory for Embedding
Learning", CVPR 2020): the batch compared with the embeddings of earlier batches too.

`CrossBatchMemory(size, warmup)` is a first-in-first-out queue of the last `size` embeddings,
labels and sample ids of earlier batches, detached (no gradient flows into them). At every step
the trainer (`dmllab.train.step_loss(..., reference=memory)`) hands the loss the batch against
batch + memory:

    ref = cat(z, memory) [B + M, d]    ref_labels = cat(labels, memory_labels)    own = arange(B)

so every tuple loss and selection strategy reads D(z || ref) [B, B + M], each anchor's own row
excluded by index (`own`), and prototype_ce's class means are taken over batch and memory. After
the optimiser step (`on_batch_end`) the batch's embeddings and labels are enqueued and the oldest
rows beyond `size` dropped. The memory is part of the training state (`state_dict`), so a
checkpoint holds it and a resumed run continues exactly.

Self-exclusion. A sample seen a few steps ago has an earlier embedding of itself in the memory,
the same label and (the drift being slow) nearly the same place: the nearest positive of every
anchor would be its own stale copy, and nearest positives would pull nothing together. So the
memory also keeps each row's sample id (its dataset row, `dmllab.data.loader.TrainBatches.index`),
and a step's reference set leaves out the memory rows of the samples in its batch (their current
embeddings are the batch itself). Without ids (a caller that passes none) nothing is left out.

Nearest positives may come from the memory: with 2 samples of a class in a batch an anchor's only
batch positive is its one classmate, wherever it lies; with a memory the nearest of all the
class's remembered embeddings is usually one of its own sub-cluster (Stanford Online Products
has classes of 2-5 images, so this is the regime where nearest positives need a memory).

Warm-up. Embeddings computed with earlier weights are only comparable with the current ones once
they drift slowly (XBM's "slow drift"; the paper starts its memory after its first 1k
iterations). The memory is neither read nor filled during the first `warmup` optimiser steps
(`Config.memory_warmup`); the step after them reads the batch alone and enqueues it; every later
step reads what is there. The default, 50 steps, is where the lab's drift settles: at its
defaults (Adam, lr 1e-3, unit-norm embeddings; digits and an 8-class mixture) an embedding moves
by about 1.0 (half the sphere's diameter) over steps 0-10, by about 0.2-0.3 over 10 steps around
step 30-50, and by 0.05-0.3 per 10 steps after that.

Under DDP `z`, `labels` and `ids` are the gathered global batch (rank order), so every rank
enqueues the same rows in the same order and holds the same memory (pytorch-metric-learning
issue #639: a memory filled in a rank-dependent order differs between ranks).

LSD (`dmllab.losses.lsd`) lists within the batch only: its teacher sees the batch's inputs, and a
memory row has no input to show it (the row was computed by earlier weights), so the trainer
hands LSD the batch's columns D[:, :B] of the matrix the loss reads.

>>> import torch
>>> memory = CrossBatchMemory(size=3)
>>> memory.reference_set(torch.zeros(2, 4), torch.tensor([0, 1]))  # empty: the batch alone
(None, None, None)
>>> memory.enqueue(torch.ones(2, 4), torch.tensor([0, 1]), ids=torch.tensor([10, 11]))
>>> memory.enqueue(2 * torch.ones(2, 4), torch.tensor([2, 3]), ids=torch.tensor([12, 13]))
>>> memory.labels.tolist(), memory.ids.tolist()  # the oldest row dropped out
([1, 2, 3], [11, 12, 13])
>>> ref, ref_labels, own = memory.reference_set(torch.zeros(2, 4), torch.tensor([4, 5]))
>>> tuple(ref.shape), ref_labels.tolist(), own.tolist()
((5, 4), [4, 5, 1, 2, 3], [0, 1])
>>> ref, ref_labels, own = memory.reference_set(  # sample 12 is in the batch: its copy is out
...     torch.zeros(2, 4), torch.tensor([2, 5]), ids=torch.tensor([12, 20]))
>>> ref_labels.tolist()
[2, 5, 1, 3]
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from dmllab.engine.callbacks import Callback

if TYPE_CHECKING:
    from dmllab.engine.state import TrainState

__all__ = ["CrossBatchMemory"]


class CrossBatchMemory(Callback):
    """A FIFO of the last `size` (> 0) embeddings, labels and sample ids of earlier batches,
    started after `warmup` (>= 0) optimiser steps; see the module docstring. `embeddings` [M, d],
    `labels` [M] and `ids` [M] (oldest first; None before the first enqueue; an id of -1 when
    the batch came without ids). Raises ValueError for a bad size or warm-up."""

    def __init__(self, size: int, warmup: int = 0) -> None:
        for name, value, low in (("size", size, 1), ("warmup", warmup, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"CrossBatchMemory {name} must be an int >= {low}; got {value!r}")
        self.size = size
        self.warmup = warmup
        self.embeddings: Tensor | None = None
        self.labels: Tensor | None = None
        self.ids: Tensor | None = None
        # this step's batch (embeddings, labels, ids), enqueued after it, and the rows it read
        self._batch: tuple[Tensor, Tensor, Tensor | None] | None = None
        self._read = 0

    def __len__(self) -> int:
        return 0 if self.labels is None else len(self.labels)

    def reference_set(
        self, z: Tensor, labels: Tensor, ids: Tensor | None = None
    ) -> tuple[Tensor, Tensor, Tensor] | tuple[None, None, None]:
        """(ref, ref_labels, own): the batch z [B, d], labels [B] followed by the memory's rows
        (those of samples not in the batch, by `ids` [B], the batch's sample ids), and the
        anchors' rows arange(B); (None, None, None) while the memory has no such row. Keeps the
        batch (detached) to enqueue after the optimiser step."""
        self._batch = (z.detach(), labels.detach(), None if ids is None else ids.detach())
        self._read = 0
        if self.embeddings is None or self.labels is None or self.ids is None:
            return None, None, None
        if self.embeddings.device != z.device or self.embeddings.dtype != z.dtype:
            self.embeddings = self.embeddings.to(device=z.device, dtype=z.dtype)
            self.labels = self.labels.to(device=labels.device)
            self.ids = self.ids.to(device=labels.device)
        embeddings, memory_labels = self.embeddings, self.labels
        if ids is not None:
            others = ~torch.isin(self.ids, ids.to(self.ids.device))
            embeddings, memory_labels = embeddings[others], memory_labels[others]
        if len(memory_labels) == 0:
            return None, None, None
        self._read = len(memory_labels)
        own = torch.arange(len(labels), device=labels.device)
        return torch.cat([z, embeddings]), torch.cat([labels, memory_labels]), own

    def enqueue(self, embeddings: Tensor, labels: Tensor, ids: Tensor | None = None) -> None:
        """Append rows [n, d], their labels [n] and sample ids [n] (-1 without ids), detached,
        keeping the newest `size`."""
        embeddings, labels = embeddings.detach(), labels.detach()
        ids = torch.full_like(labels, -1) if ids is None else ids.detach().to(labels.device)
        if self.embeddings is not None and self.labels is not None and self.ids is not None:
            embeddings = torch.cat([self.embeddings.to(embeddings), embeddings])
            labels = torch.cat([self.labels.to(labels.device), labels])
            ids = torch.cat([self.ids.to(labels.device), ids])
        keep = slice(-self.size, None)
        self.embeddings, self.labels, self.ids = embeddings[keep], labels[keep], ids[keep]

    def on_batch_end(self, state: TrainState, stats: dict[str, float]) -> None:
        """Enqueue the step's batch once the warm-up is over; history: `memory_rows`, the rows
        the step read beside its batch."""
        stats["memory_rows"] = float(self._read)
        if self._batch is not None and state.step > self.warmup:
            self.enqueue(*self._batch)
        self._batch, self._read = None, 0

    def state_dict(self) -> dict[str, Any]:
        return {
            "size": self.size,
            "embeddings": self.embeddings,
            "labels": self.labels,
            "ids": self.ids,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["size"] != self.size:
            raise ValueError(
                f"the checkpoint's memory holds up to {state['size']} rows, this one "
                f"{self.size}; resume with the same memory_size"
            )
        self.embeddings, self.labels, self.ids = state["embeddings"], state["labels"], state["ids"]

    def __repr__(self) -> str:
        return f"CrossBatchMemory(size={self.size}, warmup={self.warmup}, rows={len(self)})"
