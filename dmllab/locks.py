"""A folder used by one process at a time: two sweeps never write into one folder.

The lock is `flock` on `FOLDER/.lock` (or another lock file's `name`), which holds the owner's PID
for the message; the operating system releases it when the owner exits or is killed, so a crashed
sweep never blocks the next. A `shared` lock is held by any number of processes at once (the
shards of one sweep) and keeps out an exclusive one; it writes no owner, and the last sharer to
leave removes the lock file.
"""

from __future__ import annotations

import fcntl
import os
import socket
import time
from pathlib import Path


class FolderBusy(RuntimeError):
    """Another live process holds the folder; the message names it (PID, host, what, since when)
    and what to do."""


class FolderLock:
    """`with FolderLock(folder, "a sweep of grid.yaml"):` (or acquire / release) holds `folder`.

    Raises FolderBusy naming the owner (PID, host, what, since when) when another process holds it,
    OSError when the lock file cannot be created (read-only or missing folder)."""

    def __init__(self, folder: Path, what: str, *, name: str = ".lock", shared: bool = False):
        self.path = Path(folder) / name
        self.what = what
        self.shared = shared
        self.descriptor: int | None = None

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()

    def acquire(self) -> FolderLock:
        """Take the folder, or raise FolderBusy naming its owner."""
        while True:
            descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(
                    descriptor, (fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX) | fcntl.LOCK_NB
                )
            except BlockingIOError:
                owner = os.read(descriptor, 500).decode(errors="replace").strip() or "a process"
                os.close(descriptor)
                raise FolderBusy(
                    f"{self.path.parent} is in use by {owner}; wait for it to finish, "
                    "or give this one another output folder"
                ) from None
            try:
                current = os.stat(self.path).st_ino
            except FileNotFoundError:
                current = None
            if (
                current == os.fstat(descriptor).st_ino
            ):  # not a lock file its last owner just removed
                break
            os.close(descriptor)
        if not self.shared:
            os.ftruncate(descriptor, 0)
            os.write(
                descriptor,
                f"PID {os.getpid()} on {socket.gethostname()} ({self.what}, since "
                f"{time.strftime('%H:%M:%S')})".encode(),
            )
        self.descriptor = descriptor
        return self

    def release(self) -> None:
        """Give the folder back (removes the lock file; a shared lock only when no one else holds
        it)."""
        if self.descriptor is not None:
            try:
                if self.shared:  # the last sharer (the only one that can take it alone) removes it
                    fcntl.flock(self.descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                self.path.unlink(missing_ok=True)
            except BlockingIOError:
                pass
            finally:
                os.close(self.descriptor)
                self.descriptor = None

    def held(self) -> str | None:
        """The owner of this lock file when another live process holds it (exclusively, or shared
        for a shared lock), else None; takes nothing."""
        try:
            descriptor = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            fcntl.flock(descriptor, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return os.read(descriptor, 500).decode(errors="replace").strip() or "a process"
        finally:
            os.close(descriptor)
        return None
