"""The regulariser contract: a term the trainer adds to the base loss, with hooks at epoch ends.

Per training step, for every regulariser r that is `active`:

    loss = base_loss(z, y, distances=D) + r.term(z, y, D, x)[0] + ...

The trainer holds the list (`fit(..., regularisers=[...])`, plus the ones `build.build_regularisers`
makes from the Config, e.g. LSD when `lsd_alpha > 0`) and calls, in this order:

    start_epoch(epoch, epochs) -> dict   before the epoch's first batch; the dict (e.g. LSD's
                                         `lsd_weight`, `lsd_strength`) goes into the epoch's
                                         history row
    active                               per step: whether the term applies now (LSD: once it
                                         has a teacher and a weight > 0)
    reads_distances                      per step: whether `term` reads the batch matrix D; then
                                         the trainer computes D = geometry.pairwise(z, z) once and
                                         shares it with the base loss
    term(z, labels, D, x)                the weighted term (a scalar tensor to add to the loss) and
                                         its statistics (averaged into the history per epoch)
    end_epoch(model, geometry, epoch)    after the epoch's last batch (LSD: the teacher snapshot)

and once, before the first epoch and before a checkpoint is loaded into it,

    start_fit(model, geometry)           the model as a step runs it and the geometry (LSD keeps
                                         them to rebuild a checkpointed teacher)

A regulariser that keeps state across epochs (LSD: its teacher) puts it in its `state_dict()`
(PyTorch's `get_extra_state` / `set_extra_state` for what is not a parameter or buffer), so that a
checkpoint holds it and a resumed run continues exactly.

z [B, d] and labels [B] are the (all-gathered) batch the base loss sees, D [B, B] its matrix or
None, x the local batch's inputs (a teacher model reads them). The regularisers live beside the
trainer, not inside the loss, because their hooks need the training loop's state (the model to
snapshot, the epoch, the raw inputs); the loss stays a function of (z, y, D).

To add one: subclass `Regulariser`, implement `term`, override the hooks it needs, and pass an
instance to `fit(config, regularisers=[...])` (or register it in `REGULARISERS`, e.g.
`@REGULARISERS.register("name")`, and map a Config field onto it in
`dmllab.build.build_regularisers`).
"""

from __future__ import annotations

from torch import Tensor, nn

from dmllab.geometry.base import Geometry
from dmllab.registry import Registry

__all__ = ["REGULARISERS", "Regulariser"]


class Regulariser(nn.Module):
    """Base class of the terms the trainer adds to the base loss; see the module docstring.

    Defaults: always active, does not read D, no epoch hooks, no history entries. `fit` does not
    optimise a regulariser's own parameters (none of the built-in ones has any)."""

    #: whether `term` reads the batch matrix D (the trainer then passes it, shared with the loss)
    reads_distances: bool = False

    @property
    def active(self) -> bool:
        """Whether `term` applies at this step."""
        return True

    def start_epoch(self, epoch: int, epochs: int) -> dict[str, float]:
        """Called before epoch `epoch` (0-based) of `epochs`; returns entries for its history
        row."""
        return {}

    def term(
        self, z: Tensor, labels: Tensor, D: Tensor | None, x: Tensor
    ) -> tuple[Tensor, dict[str, float]]:
        """(weighted term, statistics) for one batch; the term is added to the loss as it is."""
        raise NotImplementedError

    def end_epoch(self, model: nn.Module, geometry: Geometry, epoch: int) -> None:
        """Called after epoch `epoch`'s last batch with the trained model and geometry."""

    def start_fit(self, model: nn.Module, geometry: Geometry) -> None:
        """Called once before training (and before a checkpoint is loaded) with the model as a
        step runs it and the geometry."""


#: name -> Regulariser class; its options are the constructor's keyword arguments
REGULARISERS: Registry[type[Regulariser]] = Registry("regulariser")
