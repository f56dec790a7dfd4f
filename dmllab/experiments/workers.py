"""Worker processes for sweeps: one task at a time each, a dead worker's task retried, and no
worker outliving the process that started it.

`concurrent.futures.ProcessPoolExecutor` cannot do this: when one worker dies it marks the whole
pool broken and fails every pending task without saying which one the dead worker held. Here
each worker is a `multiprocessing` process (spawn, so no OpenMP pool is forked mid-flight) with
its own pipe, so the parent always knows which task a worker held when it died.

Workers die with their parent: on Linux through `prctl(PR_SET_PDEATHSIG, SIGKILL)` (the kernel
kills them even when the parent is killed with SIGKILL), elsewhere through a thread that exits
when the parent pid changes. Jupyter kernels started by a worker exit on their own within a
second of the worker (ipykernel's parent poller).
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

_PR_SET_PDEATHSIG = 1


@dataclass
class Outcome:
    """What became of one task: its `result`, or `died` (how its worker died) after the last try.

    `retrying` outcomes report a death that is followed by another try of the same task."""

    task: Any
    result: Any = None
    died: str | None = None
    retrying: bool = False


@dataclass
class _Worker:
    process: Any
    connection: Connection
    task: Any = None
    tries: int = 0


def run_tasks(
    function: Callable[[Any], Any], tasks: list[Any], workers: int, *, retries: int = 1
) -> Iterator[Outcome]:
    """Run `function(task)` for every task in `workers` processes; yield an Outcome as each ends.

    `function` must be importable (spawn pickles it by name) and should catch its own errors: an
    exception that escapes it counts as the worker's death. A task whose worker dies is tried
    again up to `retries` more times, in a fresh worker; the other tasks go on. Every worker is
    killed when the generator is closed or the caller is interrupted (workers ignore SIGINT: a
    Ctrl-C reaches the caller alone, which then stops them)."""
    pool = WorkerPool(function, workers)
    try:
        yield from pool.map(tasks, retries=retries)
    finally:
        pool.close()


class WorkerPool:
    """`workers` processes that run `function(task)` and stay between batches of tasks, so that
    a caller with several batches (a lesson that runs several plans) starts them, and imports
    torch in them, once.

    `map(tasks)` yields an Outcome as each task ends, as `run_tasks` does; when it ends, or is
    closed or interrupted, the workers still busy are killed (their tasks are not finished) and
    the idle ones wait for the next `map`. `close()` stops them all; a worker also dies with the
    process that started it."""

    def __init__(self, function: Callable[[Any], Any], workers: int) -> None:
        if workers < 1:
            raise ValueError(f"workers must be at least 1 (got {workers})")
        self.function = function
        self.workers = workers
        self._idle: list[_Worker] = []
        self._context = multiprocessing.get_context("spawn")

    def map(self, tasks: list[Any], *, retries: int = 1) -> Generator[Outcome, None, None]:
        """Run every task; yield its Outcome as it ends (not in the order of `tasks`)."""
        waiting = deque((task, 0) for task in tasks)
        busy: list[_Worker] = []
        try:
            while waiting or busy:
                while waiting and len(busy) < self.workers:
                    worker = self._take()
                    worker.task, worker.tries = waiting.popleft()
                    worker.connection.send(worker.task)
                    busy.append(worker)
                wait([w.connection for w in busy] + [w.process.sentinel for w in busy])
                for worker in list(busy):
                    message = _receive(worker)
                    if message is not None:
                        busy.remove(worker)
                        self._idle.append(worker)
                        task, worker.task = worker.task, None
                        yield Outcome(task, result=message[0])
                    elif not worker.process.is_alive():
                        busy.remove(worker)
                        _stop(worker)
                        how = _death(worker.process.exitcode)
                        again = worker.tries < retries
                        if again:
                            waiting.appendleft((worker.task, worker.tries + 1))
                        yield Outcome(worker.task, died=how, retrying=again)
        finally:
            for worker in busy:
                _stop(worker)

    def close(self) -> None:
        """Stop every idle worker (map stops the busy ones)."""
        while self._idle:
            _stop(self._idle.pop())

    def _take(self) -> _Worker:
        while self._idle:
            worker = self._idle.pop()
            if worker.process.is_alive():
                return worker
            _stop(worker)
        return _start(self._context, self.function)


def _receive(worker: _Worker) -> tuple[Any] | None:
    try:
        if worker.connection.poll():
            return worker.connection.recv()
    except (EOFError, OSError):
        pass
    return None


def _start(context: Any, function: Callable[[Any], Any]) -> _Worker:
    parent_end, child_end = context.Pipe()
    process = context.Process(target=_serve, args=(function, child_end, os.getpid()), daemon=True)
    process.start()
    child_end.close()
    return _Worker(process, parent_end)


def _stop(worker: _Worker) -> None:
    worker.connection.close()  # an idle worker sees EOF and exits; a busy one is killed
    if worker.task is not None and worker.process.is_alive():
        worker.process.kill()
    worker.process.join(timeout=2)
    if worker.process.is_alive():
        worker.process.kill()
        worker.process.join(timeout=2)


def _death(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        return f"killed by {signal.Signals(-exitcode).name}"
    return f"exited with status {exitcode}"


def _serve(function: Callable[[Any], Any], connection: Connection, parent_pid: int) -> None:
    _die_with_parent(parent_pid)
    # Ctrl-C reaches the whole process group; the parent stops its workers itself, so a worker
    # does not print a traceback of its own.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    while True:
        try:
            task = connection.recv()
        except EOFError:
            return
        connection.send((function(task),))


def _die_with_parent(parent_pid: int) -> None:
    """Make this process exit when `parent_pid` (its parent) does, however the parent dies."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    else:
        threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True).start()
    if os.getppid() != parent_pid:  # the parent died before the guard was in place
        os._exit(1)


def _watch_parent(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(0.5)
    os._exit(1)
