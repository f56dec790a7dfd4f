"""The few helpers `fit` needs to run unchanged under PyTorch DDP, and a local launcher.

    torchrun --nproc_per_node 4 -m dmllab fit config.json            # NCCL on GPUs, gloo on CPU
    dmllab fit config.json --nproc 4                                 # CPU ranks on this machine

Every rank draws its shard of the same class-balanced global batch; embeddings (and LSD teacher
embeddings) are all-gathered so nearest positives, negatives and LSD lists see the *global*
batch, with gradients kept for the rank's own rows. Only rank 0 writes records.

`launch` starts the ranks on one machine without opening anything to the network: they meet
through a file store in a private temporary folder (no TCP store), and gloo's connections
between ranks bind the loopback interface. `torchrun` instead runs an elastic agent whose TCP
store listens on every interface, even with `--standalone`, because it is built to be reached
from other machines.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import Tensor


def is_active() -> bool:
    """True inside an initialised process group of more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process's rank in the process group; 0 outside one."""
    return dist.get_rank() if is_active() else 0


def world_size() -> int:
    """The number of processes in the process group; 1 outside one."""
    return dist.get_world_size() if is_active() else 1


def is_main() -> bool:
    """True on rank 0, the one rank that writes records and shows progress (and outside DDP)."""
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


def launch(fn: Callable[..., Any], nproc: int, *args: Any) -> None:
    """Run `fn(*args)` in `nproc` new local processes joined in one gloo (CPU) process group.

    Nothing listens beyond 127.0.0.1: the ranks meet through a `FileStore` in a private temporary
    folder, and gloo binds the loopback interface. `fn` must be picklable (a module-level
    function); each rank reads its place from `rank()` / `world_size()` and gets
    cpu_count // nproc threads. Returns when every rank has finished. Raises ValueError for
    nproc < 1, RuntimeError when this machine has no loopback interface, and
    torch.multiprocessing.ProcessRaisedException (with the rank's traceback) when a rank fails.
    """
    if not isinstance(nproc, int) or nproc < 1:
        raise ValueError(f"launch needs nproc >= 1 processes; got {nproc!r}")
    interface = _loopback_interface()
    folder = tempfile.mkdtemp(prefix="dmllab-ranks-")
    try:
        mp.start_processes(
            _run_rank,
            args=(fn, args, nproc, os.path.join(folder, "store"), interface),
            nprocs=nproc,
            join=True,
            start_method="spawn",
        )
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _run_rank(
    rank_: int, fn: Callable[..., Any], args: tuple, world: int, store: str, interface: str
) -> None:
    os.environ["GLOO_SOCKET_IFNAME"] = interface  # read by gloo when the group is created
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank_, world_size=world)
    try:
        fn(*args)
    finally:
        dist.destroy_process_group()


def _loopback_interface() -> str:
    names = {name for _, name in socket.if_nameindex()}
    for name in ("lo", "lo0"):  # Linux, macOS / BSD
        if name in names:
            return name
    raise RuntimeError(
        f"no loopback network interface (lo or lo0) among {sorted(names)}; local ranks "
        "bind only to loopback, so start them with torchrun on this machine instead"
    )
