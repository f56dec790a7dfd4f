"""Divergence guard for `fit`: say so when the optimiser, not the loss, wrecks a training.

At the end of every epoch three symptoms are measured against the run's own start:

- the loss exploded: the epoch's mean loss is over GROWTH (1000) times the first batch's loss,
  or LOSS_FLOOR (0.01) when that was smaller (a first batch the model already solves is no scale
  to measure an explosion against: a learned geometry's prototype loss can start near 4e-5 and
  settle at 0.1 while it learns);
- the weights exploded: a parameter group's norm (the model's, or the loss's and learned
  geometry's own) is over GROWTH times its initial norm. A learning rate far too large moves
  every weight by more than its size at each step; with normalised embeddings the loss stays
  bounded, so this is where such a run shows (Adam on digits: x8e4 after 20 steps at lr=1e3;
  x135 after 200 steps at lr=1, x24 after 1,200 steps at lr=0.1);
- the embedding collapsed to one point: the `spread` of the probe set falls below SPREAD
  (1e-3): every sample gets the same embedding (at lr=1e6 all of them become 0).

Class collapse by the loss (each class squeezed to its own point: lesson 01's subject, measured
by the collapse diagnostics in `dmllab.metrics`) keeps the classes apart, so the probe's spread
stays far above SPREAD (0.19-0.9 measured on digits-parity and modes-on-circle with random
positives) and the guard stays quiet. `Config.divergence` chooses what a symptom does: "stop"
(raise DivergenceError; the default), "warn" (one DivergenceWarning per symptom, training goes
on: for a lesson that shows a diverging run on purpose) or "off".
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from dmllab.config import Config
from dmllab.engine.callbacks import Callback
from dmllab.runs import Run

if TYPE_CHECKING:
    from dmllab.engine.state import TrainState

GROWTH = 1e3
LOSS_FLOOR = 1e-2
SPREAD = 1e-3
# Probe rows embedded for the spread when the epoch recorded no snapshot (one point needs few).
PROBE_ROWS = 128


class DivergenceError(FloatingPointError):
    """Training diverged (exploding loss or weights, or every embedding the same point)."""


class DivergenceWarning(RuntimeWarning):
    """A divergence symptom in a run with `Config.divergence="warn"`."""


def spread(embeddings: Tensor) -> float:
    """How far apart the rows are, relative to their size: 0 when all rows are one point.

    spread = mean_i ||z_i - mean(z)|| / mean_i ||z_i||   (0 when every row is the zero vector)

    >>> spread(torch.ones(4, 3))
    0.0
    >>> round(spread(torch.tensor([[1.0, 0.0], [0.0, 1.0]])), 3)   # two classes, each one point
    0.707
    """
    z = embeddings.detach().double()
    size = z.norm(dim=1).mean()
    if size == 0:
        return 0.0
    return float((z - z.mean(dim=0)).norm(dim=1).mean() / size)


class DivergenceGuard(Callback):
    """Watches one training, as a callback of the loop: the first batch's loss is the reference
    (`on_batch_end`), the symptoms are checked after every epoch (`on_epoch_end`).

    Built before the first optimiser step (it keeps the initial weight norms; a resumed run takes
    them back from its checkpoint through `load_state_dict`). With `config.divergence == "stop"`,
    the epoch's check raises DivergenceError naming the symptoms and the learning rate(s) to
    lower; with "warn" it warns once per symptom; "off" measures nothing.
    """

    def __init__(self, config: Config, model: nn.Module, loss_fn: nn.Module) -> None:
        self.mode = config.divergence
        lr = f"Config.lr (now {config.lr})"
        loss_lr = f"Config.loss_lr (now {config.loss_lr or config.lr})"
        self.groups = [
            (name, setting, params)
            for name, setting, params in (
                ("the model's weights", lr, _trainable(model)),
                ("the loss's and geometry's parameters", loss_lr, _trainable(loss_fn)),
            )
            if params
        ]
        self.initial = [_norm(params) for _, _, params in self.groups]
        self.first_loss: float | None = None
        self.warned: set[str] = set()

    def on_batch_end(self, state: TrainState, stats: dict[str, float]) -> None:
        self.batch(stats["loss"])

    def on_epoch_end(self, state: TrainState) -> None:
        self.end_epoch(state.run, state.epoch)

    def state_dict(self) -> dict[str, Any]:
        return {
            "initial": list(self.initial),
            "first_loss": self.first_loss,
            "warned": sorted(self.warned),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.initial = list(state["initial"])
        self.first_loss = state["first_loss"]
        self.warned = set(state["warned"])

    def batch(self, loss: float) -> None:
        """Record the loss of a batch (the first one is the reference)."""
        if self.first_loss is None:
            self.first_loss = loss

    def end_epoch(self, run: Run, epoch: int) -> None:
        """Check the symptoms after `epoch` (history row appended, snapshot recorded if any)."""
        if self.mode == "off":
            return
        symptoms = self._symptoms(run, epoch)
        if not symptoms:
            return
        settings = ", ".join(dict.fromkeys(setting for _, _, setting in symptoms))
        text = (
            f"training diverged in epoch {epoch}: "
            + "; ".join(words for _, words, _ in symptoms)
            + f". Likely cause: a learning rate far too large; lower {settings}. "
            "(Class collapse by the loss keeps classes apart and does not trigger this; "
            "Config.divergence='warn' or 'off' trains on regardless.)"
        )
        if self.mode == "stop":
            raise DivergenceError(text)
        fresh = [kind for kind, _, _ in symptoms if kind not in self.warned]
        if fresh:
            self.warned.update(fresh)
            warnings.warn(text, DivergenceWarning, stacklevel=3)

    def _symptoms(self, run: Run, epoch: int) -> list[tuple[str, str, str]]:
        """(kind, description, learning-rate setting to lower) for each symptom found."""
        found = []
        lr = self.groups[0][1] if self.groups else "Config.lr"
        loss = run.history[-1].get("loss") if run.history else None
        if (
            self.first_loss is not None
            and loss is not None
            and loss > GROWTH * max(self.first_loss, LOSS_FLOOR)
        ):
            found.append(
                (
                    "loss",
                    f"the loss rose from {self.first_loss:.3g} (first batch) to {loss:.3g}",
                    lr,
                )
            )
        for (name, setting, params), initial in zip(self.groups, self.initial, strict=True):
            now = _norm(params)
            if initial > 0 and not now <= GROWTH * initial:  # also catches inf / NaN
                found.append((name, f"{name} grew from norm {initial:.3g} to {now:.3g}", setting))
        probe = run.snapshots.get(epoch)
        if probe is None and run.probe_index is not None and run.data is not None:
            probe = run.embed(run.data.train.subset(run.probe_index[:PROBE_ROWS]))
        if probe is not None and len(probe) > 1:
            width = spread(probe)
            if width < SPREAD:
                found.append(
                    (
                        "point",
                        (
                            f"the probe's {len(probe)} embeddings collapsed to one point "
                            f"(spread {width:.2g} < {SPREAD})"
                        ),
                        lr,
                    )
                )
        return found


def _trainable(module: nn.Module) -> list[nn.Parameter]:
    return [p for p in module.parameters() if p.requires_grad]


@torch.no_grad()
def _norm(params: list[nn.Parameter]) -> float:
    return float(
        torch.linalg.vector_norm(
            torch.stack([torch.linalg.vector_norm(p.double()) for p in params])
        )
    )
