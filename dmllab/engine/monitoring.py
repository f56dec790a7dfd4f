"""The built-in callbacks that watch a training: validation, timing, snapshots, early stopping,
the progress bar, and the regularisers' epoch hooks.

    RegulariserHooks  each regulariser's start_epoch (its history entries) and end_epoch (LSD's
                      teacher snapshot)
    Monitor           validation Recall@1 and MAP@R every `eval_every` epochs (for selection), and
                      with `monitor_test` the test curves and memorisation (for plots only)
    Timer             seconds, images per second and (on CUDA) peak memory of each epoch
    SkippedImages     the images of each epoch that failed to decode and were replaced
                      (`on_bad_image="skip"`)
    Snapshots         embeddings of the probe rows every `snapshot_every` epochs
    EarlyStopping     keep the weights of the best validation Recall@1; stop after `patience`
                      epochs without a better one; put the best weights back at the end
    ProgressBar       one bar over the epochs with the loss, validation Recall@1, images/s, ETA

Validation metrics come from a split of the *training* classes; the test split never selects
anything.
"""

from __future__ import annotations

import copy
import os
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, TypeVar

import torch

from dmllab import distributed
from dmllab.engine.callbacks import Callback
from dmllab.losses.regularisers import Regulariser

if TYPE_CHECKING:
    from dmllab.config import Config
    from dmllab.engine.state import TrainState
    from dmllab.runs import Run

__all__ = [
    "EarlyStopping",
    "Monitor",
    "ProgressBar",
    "RegulariserHooks",
    "SkippedImages",
    "Snapshots",
    "Timer",
    "monitor_row",
    "progress_bar",
    "record_snapshot",
]


class RegulariserHooks(Callback):
    """The regularisers' epoch hooks: `start_epoch(epoch, epochs)` before an epoch (its entries go
    into the epoch's history row) and `end_epoch(model, geometry, epoch)` after it."""

    def __init__(self, regularisers: list[Regulariser]) -> None:
        self.regularisers = regularisers
        self.entries: dict[str, float] = {}

    def on_epoch_start(self, state: TrainState) -> None:
        self.entries = {}
        for regulariser in self.regularisers:
            self.entries.update(regulariser.start_epoch(state.epoch, state.config.epochs))

    def on_epoch_end(self, state: TrainState) -> None:
        state.row.update(self.entries)
        for regulariser in self.regularisers:
            regulariser.end_epoch(state.student, state.geometry, state.epoch)


class Monitor(Callback):
    """Validation metrics into the history row every `config.eval_every` epochs and at the last
    one (`monitor_row`)."""

    def on_epoch_end(self, state: TrainState) -> None:
        config = state.config
        if state.epoch % config.eval_every == 0 or state.epoch == config.epochs - 1:
            state.row.update(monitor_row(state.run, config))


def monitor_row(run: Run, config: Config) -> dict[str, float]:
    """Validation metrics (for selection) and, if asked, test curves (for plots only), on the
    rows whose images decoded (under `on_bad_image="skip"` a failed file's black stand-in is left
    out, as `evaluate` does)."""
    from dmllab.metrics import retrieval

    row: dict[str, float] = {}
    targets = [("val", run.val)]
    if config.monitor_test:
        targets.append(("test", run.test))
    for prefix, data in targets:
        if data is None:
            continue
        z, y = run.embed_decoded(data)
        values = retrieval(z, y, geometry=run.geometry, ks=(1,))
        row[f"{prefix}_recall@1"] = values["recall@1"]
        row[f"{prefix}_map@r"] = values["map@r"]
    train = run.train
    if config.monitor_test and train.flipped is not None:
        from dmllab.metrics import memorisation

        z, failed = run.embed_with_failures(train)
        kept = ~failed
        row["train_memorisation"] = memorisation(
            z[kept], train.y[kept], train.flipped[kept], geometry=run.geometry
        )
    return row


class Timer(Callback):
    """`seconds` (the epoch's wall time, validation included), `images_per_s` (training images of
    the global batch per second, from the epoch's start to its last optimiser step) and, on CUDA,
    `peak_memory_mb` (the largest allocation of the epoch)."""

    def on_epoch_start(self, state: TrainState) -> None:
        self.started = self.last_step = time.perf_counter()
        self.images_before = state.images_seen
        if state.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(state.device)

    def on_batch_end(self, state: TrainState, stats: dict[str, float]) -> None:
        self.last_step = time.perf_counter()

    def on_epoch_end(self, state: TrainState) -> None:
        state.row["seconds"] = time.perf_counter() - self.started
        images, seconds = state.images_seen - self.images_before, self.last_step - self.started
        state.row["images_per_s"] = images / seconds if seconds > 0 else float("nan")
        if state.device.type == "cuda":
            state.row["peak_memory_mb"] = torch.cuda.max_memory_allocated(state.device) / 2**20


class SkippedImages(Callback):
    """`bad_images`: the images of the epoch's batches (all ranks') that failed to decode and
    were replaced by another image of their class (`on_bad_image="skip"`,
    `dmllab.data.loader.TrainBatches.skipped`)."""

    def on_epoch_end(self, state: TrainState) -> None:
        count = torch.tensor([float(getattr(state.batches, "skipped", 0))], device=state.device)
        state.row["bad_images"] = int(distributed.gather(count).sum())


class Snapshots(Callback):
    """Embeddings of the probe rows of the training split after every `config.snapshot_every`
    epochs and the last one, into `run.snapshots[epoch]`."""

    def on_epoch_end(self, state: TrainState) -> None:
        every, epoch = state.config.snapshot_every, state.epoch
        if every and (epoch % every == 0 or epoch == state.config.epochs - 1):
            record_snapshot(state.run, epoch)


def record_snapshot(run: Run, epoch: int) -> None:
    """`run.snapshots[epoch]`: the embeddings of the run's probe rows of the training split."""
    if run.probe_index is None:
        return
    run.snapshots[epoch] = run.embed(run.train.subset(run.probe_index))


class EarlyStopping(Callback):
    """Keeps the model's and loss's weights at the best validation Recall@1 seen; asks to stop
    after `patience` epochs without a better one; puts the best weights back at the end and
    records `best_epoch` in the run's metrics."""

    def __init__(self, patience: int) -> None:
        self.patience = patience
        self.best: tuple[float, int, dict[str, Any]] | None = None

    def on_epoch_end(self, state: TrainState) -> None:
        score = state.row.get("val_recall@1")
        if score is None:
            return
        if self.best is None or score > self.best[0]:
            weights = {
                "model": copy.deepcopy(state.model.state_dict()),
                "loss": copy.deepcopy(state.loss_fn.state_dict()),
            }
            self.best = (score, state.epoch, weights)
        elif state.epoch - self.best[1] >= self.patience:
            state.request_stop(f"no better validation Recall@1 for {self.patience} epochs")

    def on_fit_end(self, state: TrainState) -> None:
        if self.best is None:
            return
        state.model.load_state_dict(self.best[2]["model"])
        state.loss_fn.load_state_dict(self.best[2]["loss"])
        state.run.metrics["best_epoch"] = self.best[1]

    def state_dict(self) -> dict[str, Any]:
        if self.best is None:
            return {"best": None}
        score, epoch, weights = self.best
        return {"best": {"score": score, "epoch": epoch, "weights": weights}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        best = state.get("best")
        self.best = None if best is None else (best["score"], best["epoch"], best["weights"])


class ProgressBar(Callback):
    """One tqdm bar over the epochs (a widget in Jupyter, text on a terminal): its ETA, the loss,
    validation Recall@1 and images per second (`progress_bar` decides whether it is shown)."""

    def __init__(self, show: bool) -> None:
        self.show = show
        self.bar: Any = None

    def on_fit_start(self, state: TrainState) -> None:
        epochs = range(state.epoch, state.config.epochs)
        bar = progress_bar(epochs, self.show, desc="epochs", total=state.config.epochs)
        if hasattr(bar, "update"):
            bar.update(state.epoch)
            self.bar = bar

    def on_epoch_end(self, state: TrainState) -> None:
        if self.bar is None:
            return
        shown: dict[str, str] = {
            k: f"{state.row[k]:.3f}" for k in ("loss", "val_recall@1") if k in state.row
        }
        if "images_per_s" in state.row:
            shown["img/s"] = f"{state.row['images_per_s']:.0f}"
        self.bar.set_postfix(shown)
        self.bar.update(1)

    def on_fit_end(self, state: TrainState) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


PROGRESS_ENV = "DMLLAB_PROGRESS"
_Item = TypeVar("_Item")


def progress_bar(
    items: Iterable[_Item], show: bool, *, desc: str, total: int | None = None, leave: bool = False
) -> Iterable[_Item]:
    """`items` wrapped in a tqdm.auto bar (a widget in Jupyter, text on a terminal), or `items`
    itself when `show` is False or the environment sets DMLLAB_PROGRESS=0 (as `dmllab demo / run /
    sweep` do for the notebooks they execute, whose saved copies cannot update a bar)."""
    if not show or os.environ.get(PROGRESS_ENV, "1") == "0":
        return items
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc, total=total, leave=leave)
