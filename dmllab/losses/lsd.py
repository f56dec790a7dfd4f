"""Listwise Self-Distillation (LSD): distil the model's own earlier similarity lists.

Zeng, Yang, Wang, Satoh, "Improving Generalization of Metric Learning via Listwise
Self-distillation", arXiv 2206.08880 (2022); specified from the official code's default path.

For a batch, the student's similarity matrix S and the teacher's T (the teacher is the student's
own snapshot from the end of the previous epoch, fed the same batch) give each anchor i two lists
over the whole batch row, self included:

    q_i = softmax(S_i / tau)   (student)          p_i = softmax(T_i / tau)   (teacher, detached)

    L_KD = tau^2 * (1/B) * sum_i KL(p_i || q_i) = tau^2 * (1/B) * sum_ij p_ij (log p_ij - log q_ij)

and the training objective is L = L_base + (e / E) * alpha * L_KD, with e the 0-based epoch and
E the number of epochs: zero in epoch 0, constant within an epoch. The effective strength is
alpha * tau^2.

Which similarities (`lists`):

- `"cosine"`, the official path: s_ij = z_i . z_j of the L2-normalised embeddings, whatever
  distance the base loss uses. `lists_for(geometry, normalized)` picks it for `euclidean`,
  `sqeuclidean` (normalised embeddings) and `cosine` (always). For `euclidean`, -D =
  -sqrt(2 - 2 s_ij) would be a different, sharper-near-neighbours list, so a given alpha would
  act differently from the paper's.
- `"distance"`, dmllab's extension for learned or unnormalised geometries (Bregman, or
  `normalize=False`), where no cosine exists: s_ij = -D[i, j] of the training geometry.

As a `Regulariser` (`dmllab.losses.regularisers`) LSD owns its schedule and its teacher: the
trainer calls `start_epoch` (the weight (e / E) * alpha of the epoch), `term` on every batch once
a teacher exists, and `end_epoch`, which snapshots the model and geometry as the next epoch's
teacher (`Teacher`). Its history entries: `lsd_weight` and `lsd_strength` per epoch, `lsd_term`
(the unweighted KD term) per batch.

With a cross-batch memory (`Config.memory_size`) the lists stay within the batch: the teacher
sees the batch's inputs, and a memory row, computed by earlier weights, has no input to show it,
so the trainer hands LSD the batch's own columns D[:, :B] of the matrix the loss reads.

The base loss's reduction sets LSD's relative weight: the official triplet criterion averages
over *all* sampled triplets (`reduction="mean"`, dmllab's default), so the base term shrinks as
triplets are satisfied and alpha = 200 matters; averaging over the active triplets only
(`"nonzero"`) keeps the base term large and makes the same alpha much weaker.

Optional (off by default): `include_self=False` drops the diagonal from the lists; `beta_neg`
multiplies the negatives' entries of both similarity matrices before the softmax (the official
code's non-standard path).

>>> import torch
>>> S = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
>>> lsd = ListwiseSelfDistillation(alpha=10.0, tau=1.0)
>>> float(lsd(S, S, torch.tensor([0, 1])))     # teacher = student: nothing to distil
0.0
>>> lsd.weight(epoch=0, epochs=4), lsd.weight(epoch=2, epochs=4)
(0.0, 5.0)
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from dmllab import distributed
from dmllab.geometry.base import Geometry
from dmllab.losses.regularisers import REGULARISERS, Regulariser

__all__ = ["ListwiseSelfDistillation", "Teacher", "lists_for", "LISTS"]

LISTS = ("cosine", "distance")


def lists_for(geometry: Geometry, normalized: bool) -> str:
    """`"cosine"` (the official path) where the geometry has a cosine for these embeddings,
    else `"distance"` (-D, dmllab's extension); see the module docstring."""
    return "cosine" if geometry.has_cosine(normalized) else "distance"


@REGULARISERS.register("lsd")
class ListwiseSelfDistillation(Regulariser):
    """tau^2 * mean_i KL(softmax(T[i]/tau) || softmax(S[i]/tau)) on [B, B] similarity matrices.

    alpha:        weight reached at the last epoch (>= 0; 0 switches LSD off). Paper default 200.
    tau:          temperature of the lists (> 0). The knob that matters is alpha * tau^2.
    include_self: keep the diagonal in each list (the official default).
    beta_neg:     optional factor on the negatives' similarities (None = off).
    lists:        `"cosine"` (z_i . z_j of normalised embeddings, the official path) or
                  `"distance"` (-D of the training geometry); see `lists_for`.
    Raises ValueError for out-of-range values.
    """

    def __init__(
        self,
        alpha: float,
        tau: float = 1.0,
        include_self: bool = True,
        beta_neg: float | None = None,
        lists: str = "cosine",
    ) -> None:
        super().__init__()
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not alpha >= 0:
            raise ValueError(f"LSD alpha must be a number >= 0 (0 switches LSD off); got {alpha!r}")
        if isinstance(tau, bool) or not isinstance(tau, (int, float)) or not tau > 0:
            raise ValueError(f"LSD tau must be a temperature > 0; got {tau!r}")
        if beta_neg is not None and not beta_neg > 0:
            raise ValueError(f"LSD beta_neg must be > 0 or None; got {beta_neg!r}")
        if lists not in LISTS:
            raise ValueError(f"LSD lists must be one of {', '.join(LISTS)}; got {lists!r}")
        self.alpha = float(alpha)
        self.tau = float(tau)
        self.include_self = include_self
        self.beta_neg = beta_neg
        self.lists = lists
        self.reads_distances = lists == "distance"  # the -D lists read the base loss's batch matrix
        self.teacher: Teacher | None = None  # set at the end of every epoch
        self.epoch_weight = 0.0  # the weight of the current epoch
        # the student (model, geometry), kept in a tuple so that they are not submodules
        self._student: tuple[nn.Module, Geometry] | None = None

    @property
    def strength(self) -> float:
        """alpha * tau^2, the knob that actually sets how hard the lists are distilled."""
        return self.alpha * self.tau**2

    def weight(self, epoch: int, epochs: int) -> float:
        """(e / E) * alpha: zero in epoch 0, rising linearly, constant within an epoch."""
        if not 0 <= epoch < epochs:
            raise ValueError(f"epoch must be in [0, {epochs}); got {epoch}")
        return self.alpha * epoch / epochs

    def similarities(
        self, embeddings: Tensor, geometry: Geometry, distances: Tensor | None = None
    ) -> Tensor:
        """The [B, B] similarity matrix whose rows are the lists, from embeddings [B, d].

        `"cosine"`: normalise(z) @ normalise(z).T. `"distance"`: -D, with D = `distances` when
        given (the batch matrix the base loss already computed) else geometry.pairwise(z, z)."""
        if self.lists == "distance" and distances is None:
            distances = geometry.pairwise(embeddings, embeddings)
        return self._lists(embeddings, distances)

    def _lists(self, embeddings: Tensor, distances: Tensor | None) -> Tensor:
        if self.lists == "cosine":
            unit = F.normalize(embeddings, dim=1)
            return unit @ unit.T
        if distances is None:
            raise ValueError(
                "LSD's -D lists read the batch matrix: pass D = geometry.pairwise(z, z)"
            )
        return -distances

    # -- the regulariser contract --------------------------------------------------------------

    @property
    def active(self) -> bool:
        """From the epoch after the first teacher snapshot on, while the weight is > 0."""
        return self.teacher is not None and self.epoch_weight > 0

    def start_epoch(self, epoch: int, epochs: int) -> dict[str, float]:
        """Sets the epoch's weight (e / E) * alpha; history: `lsd_weight`, `lsd_strength`."""
        self.epoch_weight = self.weight(epoch, epochs)
        return {"lsd_weight": self.epoch_weight, "lsd_strength": self.strength}

    def term(
        self, z: Tensor, labels: Tensor, D: Tensor | None, x: Tensor
    ) -> tuple[Tensor, dict[str, float]]:
        """epoch weight * KD term of the student's lists of z against the teacher's lists of the
        same batch x; statistics: `lsd_term`, the unweighted KD term."""
        if self.teacher is None:
            raise ValueError(
                "LSD has no teacher yet: the trainer sets one at the end of every epoch (end_epoch)"
            )
        kd = self(self._lists(z, D), self.teacher.similarities(x, self), labels)
        return self.epoch_weight * kd, {"lsd_term": float(kd.detach())}

    def end_epoch(self, model: nn.Module, geometry: Geometry, epoch: int) -> None:
        """The model and geometry at the end of `epoch` become the next epoch's teacher."""
        self.teacher = Teacher.snapshot(model, geometry, epoch)

    def start_fit(self, model: nn.Module, geometry: Geometry) -> None:
        """Keep the student, so that a checkpointed teacher can be rebuilt in its shape."""
        self._student = (model, geometry)

    def get_extra_state(self) -> dict[str, Any]:
        """The epoch's weight and the teacher's weights and epoch (None before the first epoch
        ends): what a checkpoint keeps of LSD."""
        teacher = self.teacher
        return {
            "epoch_weight": self.epoch_weight,
            "teacher": None
            if teacher is None
            else {
                "epoch": teacher.epoch,
                "model": teacher.model.state_dict(),
                "geometry": teacher.geometry.state_dict(),
            },
        }

    def set_extra_state(self, state: dict[str, Any]) -> None:
        """Take back what `get_extra_state` returned; the teacher is rebuilt in the shape of the
        student given to `start_fit`. Raises ValueError when there is none."""
        self.epoch_weight = float(state["epoch_weight"])
        saved = state["teacher"]
        if saved is None:
            self.teacher = None
            return
        if self._student is None:
            raise ValueError(
                "LSD cannot rebuild its checkpointed teacher before start_fit(model, geometry) "
                "gave it the student's shape"
            )
        teacher = Teacher.snapshot(*self._student, epoch=int(saved["epoch"]))
        teacher.model.load_state_dict(saved["model"])
        teacher.geometry.load_state_dict(saved["geometry"])
        self.teacher = teacher

    def forward(self, student: Tensor, teacher: Tensor, labels: Tensor) -> Tensor:
        """The unweighted KD term (tau^2 included) for one batch of similarity matrices [B, B]
        (larger = closer); the teacher's is detached."""
        if student.dim() != 2 or student.shape != teacher.shape:
            raise ValueError(
                "LSD needs the student's and the teacher's [B, B] batch similarity matrices "
                f"of the same shape; got {tuple(student.shape)} and {tuple(teacher.shape)}"
            )
        if student.shape[0] != student.shape[1] or len(labels) != student.shape[0]:
            raise ValueError(
                f"LSD needs a square [B, B] batch matrix and B labels; got {tuple(student.shape)} "
                f"and {len(labels)} labels"
            )
        teacher = teacher.detach()
        if self.beta_neg is not None:
            negative = labels[:, None] != labels[None, :]
            student = torch.where(negative, student * self.beta_neg, student)
            teacher = torch.where(negative, teacher * self.beta_neg, teacher)
        if not self.include_self:
            size = len(labels)
            off_diagonal = ~torch.eye(size, dtype=torch.bool, device=student.device)
            student = student[off_diagonal].view(size, size - 1)
            teacher = teacher[off_diagonal].view(size, size - 1)
        log_q = F.log_softmax(student / self.tau, dim=1)
        log_p = F.log_softmax(teacher / self.tau, dim=1)
        kl_per_anchor = (log_p.exp() * (log_p - log_q)).sum(dim=1)
        return self.tau**2 * kl_per_anchor.mean()

    def extra_repr(self) -> str:
        return (
            f"alpha={self.alpha}, tau={self.tau}, include_self={self.include_self}, "
            f"beta_neg={self.beta_neg}, lists={self.lists!r}"
        )


@dataclass
class Teacher:
    """The LSD teacher: frozen copies of the model and geometry from the end of an epoch (eval
    mode, no gradients), fed the student's very batch."""

    model: nn.Module
    geometry: Geometry
    epoch: int

    @classmethod
    def snapshot(cls, model: nn.Module, geometry: Geometry, epoch: int) -> Teacher:
        return cls(_frozen(model), _frozen(geometry), epoch)

    @torch.no_grad()
    def similarities(self, x: Tensor, lsd: ListwiseSelfDistillation) -> Tensor:
        """The teacher's [B, B] similarity matrix of the (all-gathered) batch x, as `lsd` lists
        it."""
        return lsd.similarities(distributed.gather(self.model(x)), self.geometry)


_Module = TypeVar("_Module", bound=nn.Module)


def _frozen(module: _Module) -> _Module:
    """A deep copy of `module` in eval mode whose parameters need no gradient."""
    clone = copy.deepcopy(module).eval()
    for parameter in clone.parameters():
        parameter.requires_grad_(False)
    return clone
