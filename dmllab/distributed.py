"""The few helpers `fit` needs to run unchanged under PyTorch DDP, and a local launcher.

    torchrun --nproc_per_node 4 -m dmllab fit config.json            # NCCL on GPUs, gloo on CPU
    dmllab fit config.json --nproc 4                                 # CPU ranks on this machine

Every rank draws its shard of the same class-balanced global batch; embeddings (and LSD teacher
embeddings) are all-gathered so nearest positives, negatives and LSD lists see the *global*
batch, with gradients kept for the rank's own rows. Only rank 0 writes records.

`launch` starts the ranks on one machine without opening anything to the network: they meet
through a file store in a private temporary folder (no TCP store), and gloo's connections
between ranks bind the loopback interface. A rank's error reaches the caller as the error itself
(its type, message and cause, as one process would raise it), with the rank's traceback as its
innermost cause. `torchrun` instead runs an elastic agent whose TCP
store listens on every interface, even with `--standalone`, because it is built to be reached
from other machines.
"""

from __future__ import annotations

import itertools
import os
import pickle
import shutil
import signal
import socket
import tempfile
import threading
import time
import traceback
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
    nproc < 1 and RuntimeError when this machine has no loopback interface. When a rank fails,
    raises the first rank's error itself (the one that failed first; the others fail because it
    left): the same type, message and cause as in one process, its traceback in the rank as its
    innermost cause (`RankTraceback`), or a `RankError` with the type's name and the message
    when the error cannot be rebuilt here. A rank killed without an error (a signal) raises
    torch.multiprocessing.ProcessExitedException. Interrupted (Ctrl-C) or terminated (SIGTERM,
    then SystemExit(143)), it ends the ranks and removes its temporary folder first.
    """
    if not isinstance(nproc, int) or nproc < 1:
        raise ValueError(f"launch needs nproc >= 1 processes; got {nproc!r}")
    interface = _loopback_interface()
    folder = tempfile.mkdtemp(prefix="dmllab-ranks-")
    failure: BaseException | None = None
    context = None
    terminated = _raise_on_sigterm()
    try:
        context = mp.start_processes(
            _run_rank,
            args=(fn, args, nproc, folder, interface),
            nprocs=nproc,
            join=False,
            start_method="spawn",
        )
        # after a failure the other ranks get a few seconds to end on their own (their peer left)
        while not context.join(grace_period=_GRACE_SECONDS):
            pass
    except (mp.ProcessRaisedException, mp.ProcessExitedException):
        failure = _first_failure(folder)
        if failure is None:
            raise
    finally:
        if context is not None:  # interrupted or terminated: the ranks end with the launcher
            for process in context.processes:
                if process.is_alive():
                    process.terminate()
                process.join()
        terminated.restore()
        shutil.rmtree(folder, ignore_errors=True)
    if failure is not None:
        raise failure  # raised here, outside the handler, so no launcher exception is chained


class _raise_on_sigterm:
    """SIGTERM raises SystemExit(143) (128 + SIGTERM, as a shell reports it) in the main thread
    until `restore`, so that `launch` ends its ranks and removes its folder on the way out (the
    default action ends the process without running any `finally`). Elsewhere: nothing."""

    def __init__(self) -> None:
        self.previous: Any = None
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGTERM, self._terminate)

    @staticmethod
    def _terminate(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    def restore(self) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGTERM, self.previous)
            self.previous = None


class RankTraceback(Exception):
    """The traceback of an error in a rank, as text: the innermost cause of the error `launch`
    raises, so that a full traceback (`--debug`) shows where in the rank it happened."""


class RankError(RuntimeError):
    """A rank's error that cannot be rebuilt in the launching process (its class cannot be
    pickled or constructed again): "TypeName: message", the rank's traceback as its cause."""


# Seconds the other ranks get to end by themselves after one failed, before they are terminated.
_GRACE_SECONDS = 10.0
# Links of a rank error's chain of causes that are carried to the launching process.
_CHAIN_LIMIT = 8


def _run_rank(
    rank_: int, fn: Callable[..., Any], args: tuple, world: int, folder: str, interface: str
) -> None:
    try:
        os.environ["GLOO_SOCKET_IFNAME"] = interface  # read by gloo when the group is created
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))
        store = os.path.join(folder, "store")
        dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank_, world_size=world)
        try:
            fn(*args)
            # every rank leaves the group together: a rank that tore its gloo connections down
            # while rank 0 still evaluated was sometimes aborted (std::terminate) on the way out
            dist.barrier()
        except (Exception, SystemExit) as error:
            _keep_failure(error, rank_, folder)  # before the others lose this rank and fail too
            raise
        finally:
            dist.destroy_process_group()
    except (Exception, SystemExit) as error:
        _keep_failure(error, rank_, folder)  # joining the group failed (kept once)
        raise


def _keep_failure(error: BaseException, rank_: int, folder: str) -> None:
    """Write what `launch` needs to raise `error` again into folder/failed-<rank> (atomically):
    when it happened, and each link of its chain of causes, pickled where that round-trips.
    A rank's first failure is kept; what follows from it is not."""
    when = time.time()
    path = os.path.join(folder, f"failed-{rank_}")
    if os.path.exists(path):
        return
    links: list[BaseException] = []
    seen: BaseException | None = error
    while seen is not None and len(links) < _CHAIN_LIMIT and all(seen is not c for c in links):
        links.append(seen)
        seen = seen.__cause__ or (None if seen.__suppress_context__ else seen.__context__)
    chain = [(_pickled(link), type(link).__name__, str(link)) for link in links]
    record = {
        "time": when,
        "rank": rank_,
        "chain": chain,
        "traceback": "".join(traceback.format_exception(type(error), error, error.__traceback__)),
    }
    try:
        with open(path + ".tmp", "wb") as file:
            pickle.dump(record, file)
        os.replace(path + ".tmp", path)
    except OSError:  # no room to write it: the launcher then reports torch's own exception
        return


def _pickled(error: BaseException) -> bytes | None:
    """`error` pickled, or None when it does not come back from its pickle as the same kind."""
    try:
        data = pickle.dumps(error)
        again = pickle.loads(data)
    except Exception:  # any error of a user's exception class: then it is carried as text
        return None
    return data if type(again) is type(error) and str(again) == str(error) else None


def _first_failure(folder: str) -> BaseException | None:
    """The error of the rank that failed first, rebuilt with its causes, or None if no rank left
    one (it was killed, or failed before it could write)."""
    records = []
    for name in os.listdir(folder):
        if name.startswith("failed-") and not name.endswith(".tmp"):
            with open(os.path.join(folder, name), "rb") as file:
                records.append(pickle.load(file))
    if not records:
        return None
    first = min(records, key=lambda record: (record["time"], record["rank"]))
    chain = [
        pickle.loads(data) if data is not None else RankError(f"{kind}: {message}")
        for data, kind, message in first["chain"]
    ]
    chain.append(RankTraceback(f"in rank {first['rank']}:\n{first['traceback'].rstrip()}"))
    for outer, inner in itertools.pairwise(chain):
        outer.__cause__ = inner
    return chain[0]


def _loopback_interface() -> str:
    names = {name for _, name in socket.if_nameindex()}
    for name in ("lo", "lo0"):  # Linux, macOS / BSD
        if name in names:
            return name
    raise RuntimeError(
        f"no loopback network interface (lo or lo0) among {sorted(names)}; local ranks "
        "bind only to loopback, so start them with torchrun on this machine instead"
    )
