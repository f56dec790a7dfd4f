"""Listwise Self-Distillation (LSD): distil the model's own earlier similarity lists.

Zeng, Yang, Wang, Satoh, "Improving Generalization of Metric Learning via Listwise
Self-distillation", arXiv 2206.08880 (2022); specified from the official code's default path.

For a batch with student dissimilarities D and teacher dissimilarities D_T (the teacher is the
student's own snapshot from the end of the previous epoch, fed the same batch), each anchor i
has two lists over the whole batch row, self included:

    s_ij = -D[i, j],   t_ij = -D_T[i, j]          (for normalised embeddings and the cosine
                                                   geometry this is z_i . z_j up to a constant)
    q_i = softmax(s_i / tau)   (student)          p_i = softmax(t_i / tau)   (teacher, detached)

    L_KD = tau^2 * (1/B) * sum_i KL(p_i || q_i) = tau^2 * (1/B) * sum_ij p_ij (log p_ij - log q_ij)

and the training objective is L = L_base + (e / E) * alpha * L_KD, with e the 0-based epoch and
E the number of epochs: zero in epoch 0, constant within an epoch. The effective strength is
alpha * tau^2. Optional (off by default): `include_self=False` drops the diagonal from the lists;
`beta_neg` multiplies the negatives' entries of both similarity matrices before the softmax (the
official code's non-standard path).

>>> import torch
>>> D = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
>>> lsd = ListwiseSelfDistillation(alpha=10.0, tau=1.0)
>>> float(lsd(D, D, torch.tensor([0, 1])))     # teacher = student: nothing to distil
0.0
>>> lsd.weight(epoch=0, epochs=4), lsd.weight(epoch=2, epochs=4)
(0.0, 5.0)
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F


class ListwiseSelfDistillation(nn.Module):
    """tau^2 * mean_i KL(softmax(-D_T[i]/tau) || softmax(-D[i]/tau)); see the module docstring."""

    def __init__(self, alpha: float, tau: float = 1.0, include_self: bool = True,
                 beta_neg: float | None = None) -> None:
        super().__init__()
        if not isinstance(alpha, (int, float)) or alpha < 0:
            raise ValueError(f"LSD alpha must be a number >= 0 (0 switches LSD off); got {alpha!r}")
        if not isinstance(tau, (int, float)) or tau <= 0:
            raise ValueError(f"LSD tau must be a temperature > 0; got {tau!r}")
        if beta_neg is not None and beta_neg <= 0:
            raise ValueError(f"LSD beta_neg must be > 0 or None; got {beta_neg!r}")
        self.alpha = float(alpha)
        self.tau = float(tau)
        self.include_self = include_self
        self.beta_neg = beta_neg

    @property
    def strength(self) -> float:
        """alpha * tau^2, the knob that actually sets how hard the lists are distilled."""
        return self.alpha * self.tau ** 2

    def weight(self, epoch: int, epochs: int) -> float:
        """(e / E) * alpha: zero in epoch 0, rising linearly, constant within an epoch."""
        if not 0 <= epoch < epochs:
            raise ValueError(f"epoch must be in [0, {epochs}); got {epoch}")
        return self.alpha * epoch / epochs

    def forward(self, distances: Tensor, teacher_distances: Tensor, labels: Tensor) -> Tensor:
        """The unweighted KD term (tau^2 included) for one batch."""
        if distances.dim() != 2 or distances.shape != teacher_distances.shape:
            raise ValueError(
                "LSD needs the student's and the teacher's [B, B] batch matrices of the same shape; got "
                f"{tuple(distances.shape)} and {tuple(teacher_distances.shape)}")
        if distances.shape[0] != distances.shape[1] or len(labels) != distances.shape[0]:
            raise ValueError(
                f"LSD needs a square [B, B] batch matrix and B labels; got {tuple(distances.shape)} "
                f"and {len(labels)} labels")
        student = -distances
        teacher = -teacher_distances.detach()
        if self.beta_neg is not None:
            negative = labels[:, None] != labels[None, :]
            student = torch.where(negative, student * self.beta_neg, student)
            teacher = torch.where(negative, teacher * self.beta_neg, teacher)
        if not self.include_self:
            size = len(labels)
            off_diagonal = ~torch.eye(size, dtype=torch.bool, device=distances.device)
            student = student[off_diagonal].view(size, size - 1)
            teacher = teacher[off_diagonal].view(size, size - 1)
        log_q = F.log_softmax(student / self.tau, dim=1)
        log_p = F.log_softmax(teacher / self.tau, dim=1)
        kl_per_anchor = (log_p.exp() * (log_p - log_q)).sum(dim=1)
        return self.tau ** 2 * kl_per_anchor.mean()

    def extra_repr(self) -> str:
        return (f"alpha={self.alpha}, tau={self.tau}, include_self={self.include_self}, "
                f"beta_neg={self.beta_neg}")
