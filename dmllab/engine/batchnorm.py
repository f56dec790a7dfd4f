"""What BatchNorm layers do in training (`Config.batchnorm`).

"batch"   statistics of each process's own batch (under DDP: of the rank's share of it, so
          a run over N ranks differs from one process, as for any DDP training)
"frozen"  running statistics and affine parameters fixed (torchvision's FrozenBatchNorm2d):
          the standard DML protocol for ImageNet-pretrained trunks (Roth et al. 2020), and
          the same in one process and over N ranks. `dmllab.build` already builds the model
          this way (so a saved run's record rebuilds it the same), and `apply_batchnorm` then
          finds no BatchNorm left to change
"sync"    statistics over the global batch of all ranks (torch's SyncBatchNorm; CUDA only):
          what one process would compute on the whole batch
"auto"    "sync" under DDP on CUDA (torchrun on GPUs), otherwise "batch"; under CPU ranks
          (`dmllab fit --nproc N`, gloo) a model with BatchNorm gets a warning, since
          SyncBatchNorm needs CUDA: use "frozen" there for results that match one process
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from dmllab.backbones import freeze_batchnorm

__all__ = ["BatchNormWarning", "apply_batchnorm", "has_batchnorm"]

# The BatchNorm layers that keep running statistics (torch's public classes).
_BATCHNORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


class BatchNormWarning(UserWarning):
    """BatchNorm statistics that differ between one process and several ranks."""


def has_batchnorm(model: nn.Module) -> bool:
    """Whether `model` has a BatchNorm layer that trains its statistics."""
    return any(isinstance(m, _BATCHNORMS) for m in model.modules())


def apply_batchnorm(model: nn.Module, mode: str, *, ddp: bool, device: torch.device) -> nn.Module:
    """`model` with its BatchNorm layers set up for `mode` (module docstring); returns the model
    (changed in place where possible). Raises ValueError for "sync" off CUDA."""
    if not has_batchnorm(model):
        return model
    if mode == "auto":
        mode = "sync" if ddp and device.type == "cuda" else "batch"
        if ddp and device.type != "cuda":
            warnings.warn(
                "BatchNorm statistics are per rank under CPU DDP (SyncBatchNorm needs CUDA), so "
                "this run's metrics differ from one process's; Config.batchnorm='frozen' makes "
                "them agree",
                BatchNormWarning,
                stacklevel=3,
            )
    if mode == "batch":
        return model
    if mode == "frozen":
        return freeze_batchnorm(model)
    if device.type != "cuda":
        raise ValueError(
            "Config.batchnorm='sync' needs CUDA devices (torch's SyncBatchNorm); on CPU ranks use "
            "'frozen' (the same in one process and in N) or 'batch' (per-rank statistics)"
        )
    return nn.SyncBatchNorm.convert_sync_batchnorm(model) if ddp else model
