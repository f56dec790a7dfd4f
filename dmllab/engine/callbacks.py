"""The one callback protocol of the training loop.

`fit` calls every callback at five points, in the order the callbacks were given:

    on_fit_start(state)            once, after the model, loss and optimiser are built (and after a
                                   checkpoint was loaded, when resuming)
    on_epoch_start(state)          before the epoch's first batch
    on_batch_end(state, stats)     after each optimiser step; `stats` is the batch's statistics
                                   (`loss`, `base_loss`, the loss's `last_stats`, regularisers')
    on_epoch_end(state)            after the epoch's last batch; `state.row` is the epoch's history
                                   row, already in `state.run.history`: a callback may add entries
    on_fit_end(state)              once, after the last epoch (also after an early stop)

`state` is the `dmllab.engine.TrainState`: the run, model, loss, optimiser, scheduler, epoch, the
global step, and `request_stop()`. A callback that keeps state across epochs (early stopping's
best weights, the divergence guard's reference norms) returns it from `state_dict()` and takes it
back in `load_state_dict()`, so a checkpoint is the union of every part's state (PyTorch's
convention). Raising `StopTraining` from any hook ends training after the current epoch, like
`state.request_stop()`; every other exception propagates out of `fit`.

A plain function `f(run, epoch)` is accepted wherever a callback is, and called after every epoch
(`EpochFunction`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # annotations only: the state module builds on this one
    from dmllab.engine.state import TrainState
    from dmllab.runs import Run

__all__ = ["Callback", "CallbackList", "EpochFunction", "StopTraining", "as_callback"]


class StopTraining(Exception):
    """Raise from a callback to end training after the current epoch."""


class Callback:
    """Base class: every hook does nothing; override the ones you need. See the module docstring
    for when each is called."""

    def on_fit_start(self, state: TrainState) -> None:
        """Once, before the first epoch (after a checkpoint is loaded, when resuming)."""

    def on_epoch_start(self, state: TrainState) -> None:
        """Before epoch `state.epoch`'s first batch."""

    def on_batch_end(self, state: TrainState, stats: dict[str, float]) -> None:
        """After each optimiser step, with the batch's statistics."""

    def on_epoch_end(self, state: TrainState) -> None:
        """After epoch `state.epoch`'s last batch; `state.row` is its history row."""

    def on_fit_end(self, state: TrainState) -> None:
        """Once, after training ends (the last epoch, or an early stop)."""

    def state_dict(self) -> dict[str, Any]:
        """What this callback needs to continue a resumed run exactly (default: nothing)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Take back what `state_dict` returned."""


class EpochFunction(Callback):
    """A plain function `f(run, epoch)` called after every epoch (the older callback form)."""

    def __init__(self, function: Callable[[Run, int], None]) -> None:
        self.function = function

    def on_epoch_end(self, state: TrainState) -> None:
        self.function(state.run, state.epoch)

    def __repr__(self) -> str:
        return f"EpochFunction({getattr(self.function, '__qualname__', self.function)!r})"


def as_callback(item: Callback | Callable[[Run, int], None]) -> Callback:
    """`item` itself when it is a Callback, else a plain function wrapped as `EpochFunction`.
    Raises TypeError for anything else."""
    if isinstance(item, Callback):
        return item
    if callable(item):
        return EpochFunction(item)
    raise TypeError(
        f"a callback is a dmllab.engine.Callback or a function f(run, epoch); got "
        f"{type(item).__name__}"
    )


class CallbackList:
    """Calls each hook on every callback in order. `StopTraining` raised by a hook asks the state
    to stop after this epoch; the remaining callbacks of that hook still run (so bookkeeping such
    as a checkpoint is complete)."""

    def __init__(self, callbacks: Iterable[Callback | Callable[[Run, int], None]]) -> None:
        self.callbacks: Sequence[Callback] = [as_callback(item) for item in callbacks]

    def _each(self, state: TrainState, hook: str, *args: Any) -> None:
        for callback in self.callbacks:
            try:
                getattr(callback, hook)(state, *args)
            except StopTraining as stop:
                state.request_stop(str(stop) or type(callback).__name__)

    def on_fit_start(self, state: TrainState) -> None:
        self._each(state, "on_fit_start")

    def on_epoch_start(self, state: TrainState) -> None:
        self._each(state, "on_epoch_start")

    def on_batch_end(self, state: TrainState, stats: dict[str, float]) -> None:
        self._each(state, "on_batch_end", stats)

    def on_epoch_end(self, state: TrainState) -> None:
        self._each(state, "on_epoch_end")

    def on_fit_end(self, state: TrainState) -> None:
        self._each(state, "on_fit_end")

    def state_dict(self) -> dict[str, dict[str, Any]]:
        """The state of every callback that keeps one, by `key` (class name, numbered when a
        class appears twice)."""
        states = {key: callback.state_dict() for key, callback in self._keyed()}
        return {key: state for key, state in states.items() if state}

    def load_state_dict(self, states: dict[str, dict[str, Any]]) -> None:
        """Give each callback its state back, by key. Raises ValueError naming a saved state that
        no callback here takes (the run would not continue as it was): pass the same stateful
        callbacks when resuming."""
        keyed = dict(self._keyed())
        orphans = sorted(set(states) - set(keyed))
        if orphans:
            raise ValueError(
                f"the checkpoint holds the state of callback(s) {', '.join(orphans)}, which this "
                "training does not have; resume with the same callbacks"
            )
        for key, state in states.items():
            keyed[key].load_state_dict(state)

    def _keyed(self) -> list[tuple[str, Callback]]:
        counts: dict[str, int] = {}
        keyed = []
        for callback in self.callbacks:
            name = type(callback).__qualname__
            counts[name] = counts.get(name, 0) + 1
            keyed.append((name if counts[name] == 1 else f"{name}#{counts[name]}", callback))
        return keyed
