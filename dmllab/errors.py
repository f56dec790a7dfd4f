"""One line for an error: what happened first, and the file it happened to.

A full disk surfaces as the last line of a chain of four tracebacks; `describe` walks the chain
and names the operating-system error and its file (`No space left on device: out/cell/model.pt`).
The lab's own errors (a bad value, grid or record, a busy folder) already say what happened and
to which file, cause included: their message is the line. The line is printable whatever bytes a
file name holds (`dmllab.paths.printable`).
"""

from __future__ import annotations

import errno

from dmllab.locks import FolderBusy
from dmllab.paths import printable
from dmllab.records import RecordError
from dmllab.values import BadValue

COMPLETE = (BadValue, RecordError, FolderBusy)
"""The lab's errors whose message is the whole story (what, where, why, and how to fix it)."""


def describe(error: BaseException) -> str:
    """`error` as one line: the first line of one of the lab's own errors (`COMPLETE`), else the
    innermost operating-system error with its file when there is one, a failed notebook cell's
    own error, else the exception's type and first line; any bytes of a file name in it as `\\x`
    escapes."""
    return printable(_describe(error))


def _describe(error: BaseException) -> str:
    if isinstance(error, COMPLETE):  # the lab's own messages say all there is
        return _first_line(str(error))
    chain: list[BaseException] = []
    seen: BaseException | None = error
    while seen is not None and seen not in chain:
        chain.append(seen)
        seen = seen.__cause__ or seen.__context__
    for cause in reversed(chain):
        if isinstance(cause, OSError) and cause.errno is not None:
            name = errno.errorcode.get(cause.errno, str(cause.errno))
            where = f": {cause.filename}" if cause.filename else ""
            return f"{cause.strerror or name} ({name}){where}"
    if hasattr(error, "ename") and hasattr(error, "evalue"):  # papermill: the notebook raised
        cell = getattr(error, "exec_count", None)
        return f"{error.ename}: {_first_line(str(error.evalue))}" + (
            f" (notebook cell [{cell}])" if cell else ""
        )
    return f"{type(error).__name__}: {_first_line(str(error))}"


def _first_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[0].strip() if lines else "(no message)"
