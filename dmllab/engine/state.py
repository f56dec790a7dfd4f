"""`TrainState`: everything a training holds between two steps, in one object with
`state_dict()` / `load_state_dict()`.

The loop (`dmllab.train.fit`) reads and advances it; callbacks read it (and may ask it to stop);
a checkpoint is its `state_dict()`: the model, the loss with its geometry, the optimiser, the
schedule, the precision policy's scaler, every regulariser (the LSD teacher included), every
callback (early stopping's best weights, the divergence guard's references, the cross-batch
memory), the random number generators of every rank, the epoch to run next and the run's
history, snapshots and metrics.
The class-balanced sampler and the input pipeline draw their batches and augmentations from
(seed, epoch), so the epoch is their whole state. Loading a state into a freshly built training
of the same Config continues it exactly: the same weights and history as an uninterrupted run.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor, nn

from dmllab import distributed
from dmllab.config import Config
from dmllab.engine.callbacks import CallbackList
from dmllab.engine.memory import CrossBatchMemory
from dmllab.engine.precision import Precision
from dmllab.geometry.base import Geometry
from dmllab.losses.base import MetricLoss
from dmllab.losses.regularisers import Regulariser
from dmllab.runs import Run

if TYPE_CHECKING:
    from torch.optim import Optimizer
    from torch.optim.lr_scheduler import LRScheduler

__all__ = ["FORMAT", "TrainState", "rng_state", "set_rng_state"]

#: The version of the checkpoint layout `state_dict` writes.
FORMAT = 1


@dataclass
class TrainState:
    """The state of one training (see the module docstring).

    run:          the Run being trained (model, geometry, history, snapshots, metrics, data).
    model:        the embedder.
    student:      the embedder as a step runs it (under the precision policy; LSD copies it as
                  its teacher); `forward` is `student` wrapped in DistributedDataParallel under
                  DDP, what a step calls.
    loss_fn:      the base loss; it owns the geometry.
    optimizer, scheduler, precision: the optimisation (optimizer None: nothing to learn).
    regularisers: the terms added to the base loss (LSD, ...).
    callbacks:    the hooks the loop calls (`dmllab.engine.callbacks`).
    memory:       the cross-batch memory (also one of the callbacks, which checkpoints it), or
                  None (Config.memory_size = 0).
    batches:      the training batches of an epoch: an iterable with `set_epoch(epoch)` that
                  yields (x, y) on the device, and `index`, the dataset rows of the batch it
                  yielded last (`dmllab.data.loader`).
    epoch:        the epoch running now (before training: the first epoch to run).
    step:         optimiser steps taken so far.
    images_seen:  training images (global batches) seen so far.
    row:          the history row of the epoch that just ended (set before `on_epoch_end`).
    """

    config: Config
    run: Run
    model: nn.Module
    student: nn.Module
    forward: nn.Module
    loss_fn: MetricLoss
    device: torch.device
    optimizer: Optimizer | None
    scheduler: LRScheduler | None
    precision: Precision
    regularisers: Sequence[Regulariser]
    callbacks: CallbackList
    batches: Any = None
    memory: CrossBatchMemory | None = None
    epoch: int = 0
    step: int = 0
    images_seen: int = 0
    row: dict[str, Any] = field(default_factory=dict)
    stop_reason: str | None = None
    data_identity: dict[str, Any] | None = None

    @property
    def geometry(self) -> Geometry:
        return self.loss_fn.geometry

    @property
    def should_stop(self) -> bool:
        """Whether a callback asked to end training after the current epoch."""
        return self.stop_reason is not None

    def request_stop(self, reason: str = "a callback asked to stop") -> None:
        """End training after the current epoch (the first reason given is kept)."""
        if self.stop_reason is None:
            self.stop_reason = reason

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self, rng: Sequence[dict[str, Any]] | None = None) -> dict[str, Any]:
        """Everything needed to continue this training exactly, after epoch `self.epoch`.

        `rng`: the random number generators' states of every rank, in rank order (default: this
        process's only, `rng_state()`; a checkpoint under DDP passes all ranks')."""
        run = self.run
        return {
            "format": FORMAT,
            "config": self.config.to_dict(),
            "data": self.data_identity,
            "world_size": distributed.world_size(),
            "epoch": self.epoch + 1,
            "step": self.step,
            "stop_reason": self.stop_reason,
            "model": self.model.state_dict(),
            "loss": self.loss_fn.state_dict(),
            "optimizer": self.optimizer.state_dict() if self.optimizer is not None else None,
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "precision": self.precision.state_dict(),
            "regularisers": [regulariser.state_dict() for regulariser in self.regularisers],
            "callbacks": self.callbacks.state_dict(),
            "rng": list(rng) if rng is not None else [rng_state()],
            "history": [dict(row) for row in run.history],
            "snapshots": {int(epoch): value for epoch, value in run.snapshots.items()},
            "metrics": dict(run.metrics),
            "stopped_early": run.stopped_early,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from `state_dict()` of a training of the same Config (the caller checks the
        Config and data; see `dmllab.engine.checkpoint`). The next epoch to run is
        `state["epoch"]`."""
        self.model.load_state_dict(state["model"])
        self.loss_fn.load_state_dict(state["loss"])
        if self.optimizer is not None and state["optimizer"] is not None:
            self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state["scheduler"] is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        self.precision.load_state_dict(state["precision"])
        if len(state["regularisers"]) != len(self.regularisers):
            raise ValueError(
                f"the checkpoint holds {len(state['regularisers'])} regulariser(s), this training "
                f"has {len(self.regularisers)}; resume with the same regularisers"
            )
        for regulariser, saved in zip(self.regularisers, state["regularisers"], strict=True):
            regulariser.load_state_dict(saved)
        self.callbacks.load_state_dict(state["callbacks"])
        ranks = state["rng"]
        set_rng_state(ranks[distributed.rank()] if len(ranks) > 1 else ranks[0])
        self.epoch = int(state["epoch"])
        self.step = int(state["step"])
        self.stop_reason = state["stop_reason"]
        self.run.history[:] = [dict(row) for row in state["history"]]
        self.run.snapshots.clear()
        self.run.snapshots.update({int(k): v for k, v in state["snapshots"].items()})
        self.run.metrics.clear()
        self.run.metrics.update(state["metrics"])
        self.run.stopped_early = bool(state["stopped_early"])


def rng_state() -> dict[str, Any]:
    """The states of torch's (CPU and CUDA), NumPy's global and Python's random number
    generators, as tensors and plain numbers (loadable with `weights_only=True`)."""
    kind, keys, position, has_gauss, gauss = np.random.get_state()  # noqa: NPY002 (the legacy global)
    python_version, python_state, python_gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "position": int(position),
            "has_gauss": int(has_gauss),
            "gauss": float(gauss),
        },
        "python": {
            "version": python_version,
            "state": list(python_state),
            "gauss": python_gauss,
        },
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what `rng_state()` returned."""
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    saved = state["numpy"]
    np.random.set_state(  # noqa: NPY002 (the legacy global generator is the one restored)
        (
            saved["kind"],
            saved["keys"].numpy().astype(np.uint32),
            saved["position"],
            saved["has_gauss"],
            saved["gauss"],
        )
    )
    python = state["python"]
    random.setstate((python["version"], tuple(python["state"]), python["gauss"]))


def trainable(modules: Iterable[nn.Module]) -> bool:
    """Whether any of `modules` has a parameter that needs a gradient."""
    return any(p.requires_grad for module in modules for p in module.parameters())


def tensors_to_cpu(value: Any) -> Any:
    """`value` with every tensor inside (dicts, lists, tuples) moved to the CPU."""
    if isinstance(value, Tensor):
        return value.detach().cpu()
    if isinstance(value, dict):
        return {key: tensors_to_cpu(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(tensors_to_cpu(item) for item in value)
    return value
