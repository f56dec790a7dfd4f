"""Checkpoints: the training state written into the run folder, and read back to resume.

`Checkpointer(directory, every)` writes `directory/checkpoint.pt` after every `every` epochs
(0: only at the end), after the last epoch and when training stops early: the whole
`TrainState.state_dict()`, with the random number generators of every rank. The file is written
under a temporary name and renamed into place, so a crash leaves the previous checkpoint or the
new one, never half a file. Only rank 0 writes; every rank takes part in gathering the ranks'
generator states, so every rank must run the same callbacks.

`load_checkpoint(directory, config, data_identity)` reads it with `weights_only=True` and refuses a
checkpoint of another configuration (naming the fields that differ; only `device` may change),
of other data (another fingerprint), or of another number of ranks.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from dmllab import distributed, records
from dmllab.config import Config
from dmllab.engine.callbacks import Callback
from dmllab.engine.state import FORMAT, rng_state, tensors_to_cpu
from dmllab.records import RecordError
from dmllab.runs import CHECKPOINT

if TYPE_CHECKING:
    from dmllab.engine.state import TrainState

__all__ = [
    "CHECKPOINT",
    "CheckpointMismatch",
    "Checkpointer",
    "checkpoint_path",
    "load_checkpoint",
    "save_checkpoint",
]

#: Config fields a resumed run may change: where it runs, not what it computes.
MAY_CHANGE = ("device",)


class CheckpointMismatch(ValueError):
    """A checkpoint that does not belong to the training it would continue."""


def checkpoint_path(directory: str | Path) -> Path:
    """The checkpoint file of the run folder `directory`."""
    return Path(directory) / CHECKPOINT


class Checkpointer(Callback):
    """Writes the training state to `directory/checkpoint.pt` every `every` epochs (0: only at
    the end), after the last epoch and when training stops; see the module docstring."""

    def __init__(self, directory: str | Path, every: int = 0) -> None:
        if isinstance(every, bool) or not isinstance(every, int) or every < 0:
            raise ValueError(f"checkpoint every must be an int >= 0 epochs; got {every!r}")
        self.directory = Path(directory)
        self.every = every

    def on_epoch_end(self, state: TrainState) -> None:
        last = state.epoch == state.config.epochs - 1
        due = self.every > 0 and (state.epoch + 1) % self.every == 0
        if due or last or state.should_stop:
            save_checkpoint(state, self.directory)


def save_checkpoint(state: TrainState, directory: str | Path) -> Path | None:
    """Write `state` (after its current epoch) to `directory/checkpoint.pt` atomically on rank 0;
    returns the path there and None on the other ranks. Every rank must call it (the generators'
    states are gathered)."""
    ranks = _gathered(rng_state())
    if not distributed.is_main():
        return None
    path = checkpoint_path(directory)
    path.parent.mkdir(parents=True, exist_ok=True)
    with records.replacing(path) as temporary:
        torch.save(tensors_to_cpu(state.state_dict(rng=ranks)), temporary)
    return path


def _gathered(state: dict[str, Any]) -> list[dict[str, Any]]:
    if not distributed.is_active():
        return [state]
    import torch.distributed as dist

    parts: list[Any] = [None] * distributed.world_size()
    dist.all_gather_object(parts, tensors_to_cpu(state))
    return parts


def load_checkpoint(
    directory: str | Path, config: Config, data_identity: dict[str, Any] | None
) -> dict[str, Any]:
    """The checkpoint in `directory` (read with `weights_only=True`), checked against the
    training that would continue it.

    Raises RecordError when there is none or it cannot be read, CheckpointMismatch when it belongs
    to another Config (naming the fields that differ), other data, or another number of ranks."""
    path = checkpoint_path(directory)
    if not path.is_file():
        raise RecordError(
            f"{path}: no checkpoint to resume from (a run writes one when it is given a run "
            "folder: dmllab fit CONFIG --out DIR, or dl.fit(..., checkpoint_dir=DIR))"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (EOFError, RuntimeError, pickle.UnpicklingError, OSError, ValueError) as error:
        cause = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise RecordError(f"{path}: cannot read the checkpoint ({cause})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise RecordError(f"{path}: not a dmllab checkpoint of format {FORMAT}")
    differ = config_differences(Config.completed(state["config"]), config.to_dict())
    if differ:
        raise CheckpointMismatch(
            f"{path} was written by a run with another configuration; fields that differ: "
            + "; ".join(differ)
            + ". Resume with the same Config, or start a new run folder"
        )
    saved_data = state.get("data")
    if (
        data_identity is not None
        and saved_data is not None
        and saved_data["fingerprint"] != data_identity["fingerprint"]
    ):
        raise CheckpointMismatch(
            f"{path} was trained on other data ({saved_data['name']!r}, fingerprint "
            f"{saved_data['fingerprint'][:12]}; now {data_identity['name']!r}, "
            f"{data_identity['fingerprint'][:12]}): resume on the same data"
        )
    if state["world_size"] != distributed.world_size():
        raise CheckpointMismatch(
            f"{path} was written by {state['world_size']} process(es), this run has "
            f"{distributed.world_size()}: resume with the same number of ranks"
        )
    return state


def config_differences(saved: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """'field: saved -> now' for every Config field that differs (besides MAY_CHANGE)."""
    return [
        f"{name}: {saved.get(name)!r} -> {now.get(name)!r}"
        for name in sorted(set(saved) | set(now))
        if name not in MAY_CHANGE and saved.get(name) != now.get(name)
    ]
