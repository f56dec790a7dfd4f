"""The training engine: the state of a training and the callbacks the loop (`dmllab.train.fit`)
calls.

    TrainState     everything a training holds, with state_dict() / load_state_dict()
    Callback       the one hook protocol: on_fit_start, on_epoch_start, on_batch_end,
                   on_epoch_end, on_fit_end (+ state_dict for callbacks that keep state)
    built-in       CrossBatchMemory, RegulariserHooks, Monitor, Timer, SkippedImages, Snapshots,
                   EarlyStopping,
                   ProgressBar, Checkpointer (and `dmllab.guards.DivergenceGuard`)
    Precision      mixed precision as a policy object (autocast + GradScaler)

A callback of your own:

>>> import dmllab as dl
>>> class LossLog(Callback):
...     def __init__(self):
...         self.losses = []
...     def on_batch_end(self, state, stats):
...         self.losses.append(stats["loss"])
>>> log = LossLog()
>>> config = dl.Config(epochs=2, batches_per_epoch=3)
>>> run = dl.fit(config, callbacks=[log], progress=False)
>>> len(log.losses), len(run.history)
(6, 2)
"""

from dmllab.engine.callbacks import (
    Callback,
    CallbackList,
    EpochFunction,
    StopTraining,
    as_callback,
)
from dmllab.engine.checkpoint import (
    CHECKPOINT,
    Checkpointer,
    CheckpointMismatch,
    checkpoint_path,
    load_checkpoint,
    save_checkpoint,
)
from dmllab.engine.memory import CrossBatchMemory
from dmllab.engine.monitoring import (
    EarlyStopping,
    Monitor,
    ProgressBar,
    RegulariserHooks,
    SkippedImages,
    Snapshots,
    Timer,
    monitor_row,
    record_snapshot,
)
from dmllab.engine.precision import AutocastForward, Precision
from dmllab.engine.state import TrainState

__all__ = [
    "CHECKPOINT",
    "AutocastForward",
    "Callback",
    "CallbackList",
    "CheckpointMismatch",
    "Checkpointer",
    "CrossBatchMemory",
    "EarlyStopping",
    "EpochFunction",
    "Monitor",
    "Precision",
    "ProgressBar",
    "RegulariserHooks",
    "SkippedImages",
    "Snapshots",
    "StopTraining",
    "Timer",
    "TrainState",
    "as_callback",
    "checkpoint_path",
    "load_checkpoint",
    "monitor_row",
    "record_snapshot",
    "save_checkpoint",
]
