"""The few helpers `fit` needs to run unchanged under `torchrun` (PyTorch DDP).

    torchrun --nproc_per_node 4 -m dmllab run-config config.json     # NCCL on GPUs, gloo on CPU

Every rank draws its shard of the same class-balanced global batch; embeddings (and LSD teacher
embeddings) are all-gathered so nearest positives, negatives and LSD lists see the *global*
batch, with gradients kept for the rank's own rows. Only rank 0 writes records.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
from torch import Tensor


def is_active() -> bool:
    """True inside an initialised process group of more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if is_active() else 0


def world_size() -> int:
    return dist.get_world_size() if is_active() else 1


def is_main() -> bool:
    return rank() == 0


def init_from_env(device: torch.device) -> bool:
    """Join the process group that `torchrun` describes in the environment (no-op otherwise).

    Returns True when this process is one of several ranks.
    """
    if dist.is_available() and dist.is_initialized():
        return is_active()
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend=backend)
    return is_active()


def gather(tensor: Tensor) -> Tensor:
    """Concatenate `tensor` from every rank in rank order, keeping the gradient of the local part.

    All ranks must pass tensors of the same shape. Outside a process group this is the identity.
    """
    if not is_active():
        return tensor
    parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, tensor.detach().contiguous())
    parts[dist.get_rank()] = tensor
    return torch.cat(parts)
