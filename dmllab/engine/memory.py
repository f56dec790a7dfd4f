"""Cross-batch memory (XBM; Wang, Zhang, Huang, Scott, "Cross-Batch Memory for Embedding
Learning", CVPR 2020): the batch compared with the embeddings of earlier batches too.

`CrossBatchMemory(size, warmup)` is a first-in-first-out queue of the last `size` embeddings and
labels of earlier batches, detached (no gradient flows into them). At every step the trainer
(`dmllab.train.step_loss(..., reference=memory)`) hands the loss the batch against batch + memory:

    ref = cat(z, memory) [B + M, d]    ref_labels = cat(labels, memory_labels)    own = arange(B)

so every tuple loss and selection strategy reads D(z || ref) [B, B + M], each anchor's own row
excluded by index (`own`), and prototype_ce's class means are taken over batch and memory. After
the optimiser step (`on_batch_end`) the batch's embeddings and labels are enqueued and the oldest
rows beyond `size` dropped. The memory is part of the training state (`state_dict`), so a
checkpoint holds it and a resumed run continues exactly.

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

Under DDP `z` and `labels` are the gathered global batch (rank order), so every rank enqueues
the same rows in the same order and holds the same memory (pytorch-metric-learning issue #639: a
memory filled in a rank-dependent order differs between ranks).

LSD (`dmllab.losses.lsd`) lists within the batch only: its teacher sees the batch's inputs, and a
memory row has no input to show it (the row was computed by earlier weights), so the trainer
hands LSD the batch's columns D[:, :B] of the matrix the loss reads.

>>> import torch
>>> memory = CrossBatchMemory(size=3)
>>> memory.reference_set(torch.zeros(2, 4), torch.tensor([0, 1]))  # empty: the batch alone
(None, None, None)
>>> memory.enqueue(torch.ones(2, 4), torch.tensor([0, 1]))
>>> memory.enqueue(2 * torch.ones(2, 4), torch.tensor([2, 3]))  # the oldest row drops out
>>> memory.labels.tolist()
[1, 2, 3]
>>> ref, ref_labels, own = memory.reference_set(torch.zeros(2, 4), torch.tensor([4, 5]))
>>> tuple(ref.shape), ref_labels.tolist(), own.tolist()
((5, 4), [4, 5, 1, 2, 3], [0, 1])
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
    """A FIFO of the last `size` (> 0) embeddings and labels of earlier batches, started after
    `warmup` (>= 0) optimiser steps; see the module docstring. `embeddings` [M, d] and `labels`
    [M] (oldest first; None before the first enqueue). Raises ValueError for a bad size or
    warm-up."""

    def __init__(self, size: int, warmup: int = 0) -> None:
        for name, value, low in (("size", size, 1), ("warmup", warmup, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"CrossBatchMemory {name} must be an int >= {low}; got {value!r}")
        self.size = size
        self.warmup = warmup
        self.embeddings: Tensor | None = None
        self.labels: Tensor | None = None
        self._batch: tuple[Tensor, Tensor] | None = None  # this step's batch, enqueued after it

    def __len__(self) -> int:
        return 0 if self.labels is None else len(self.labels)

    def reference_set(
        self, z: Tensor, labels: Tensor
    ) -> tuple[Tensor, Tensor, Tensor] | tuple[None, None, None]:
        """(ref, ref_labels, own): the batch z [B, d], labels [B] followed by the memory, and the
        anchors' rows arange(B); (None, None, None) while the memory is empty. Keeps the batch
        (detached) to enqueue after the optimiser step."""
        self._batch = (z.detach(), labels.detach())
        if self.embeddings is None or self.labels is None:
            return None, None, None
        if self.embeddings.device != z.device or self.embeddings.dtype != z.dtype:
            self.embeddings = self.embeddings.to(device=z.device, dtype=z.dtype)
            self.labels = self.labels.to(device=labels.device)
        own = torch.arange(len(labels), device=labels.device)
        return torch.cat([z, self.embeddings]), torch.cat([labels, self.labels]), own

    def enqueue(self, embeddings: Tensor, labels: Tensor) -> None:
        """Append rows [n, d] and their labels [n] (detached), keeping the newest `size`."""
        embeddings, labels = embeddings.detach(), labels.detach()
        if self.embeddings is not None and self.labels is not None:
            embeddings = torch.cat([self.embeddings.to(embeddings), embeddings])
            labels = torch.cat([self.labels.to(labels.device), labels])
        self.embeddings, self.labels = embeddings[-self.size :], labels[-self.size :]

    def on_batch_end(self, state: TrainState, stats: dict[str, float]) -> None:
        """Enqueue the step's batch once the warm-up is over; history: `memory_rows`, the rows
        the step read beside its batch."""
        if self._batch is not None and state.step > self.warmup:
            stats["memory_rows"] = float(len(self))
            self.enqueue(*self._batch)
        else:
            stats["memory_rows"] = 0.0
        self._batch = None

    def state_dict(self) -> dict[str, Any]:
        return {"size": self.size, "embeddings": self.embeddings, "labels": self.labels}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["size"] != self.size:
            raise ValueError(
                f"the checkpoint's memory holds up to {state['size']} rows, this one "
                f"{self.size}; resume with the same memory_size"
            )
        self.embeddings, self.labels = state["embeddings"], state["labels"]

    def __repr__(self) -> str:
        return f"CrossBatchMemory(size={self.size}, warmup={self.warmup}, rows={len(self)})"
