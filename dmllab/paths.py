"""File names as text that every stream and file accepts.

A file name is bytes. Python turns the bytes of a name that are not UTF-8 (a Latin-1 `café.jpg`
copied from an old camera or a Windows zip) into lone surrogates ("caf\\udce9.jpg"), which open
the file but cannot be written to a strict UTF-8 stream or file: `print` raises
UnicodeEncodeError. Every message, listing and report of the lab that shows a path shows
`printable(path)`, in which each such byte reads as a backslash escape (`caf\\xe9.jpg`); names
that are valid UTF-8 are unchanged. The path itself (for opening, deleting) stays as it was.

>>> printable("caf\\udce9.jpg")
'caf\\\\xe9.jpg'
>>> printable("café.jpg")
'café.jpg'
"""

from __future__ import annotations

import os

__all__ = ["printable"]


def printable(value: str | bytes | os.PathLike[str] | os.PathLike[bytes]) -> str:
    """`value` (text, a path, or a name's bytes) as valid Unicode: the bytes of a file name that
    are not UTF-8 as `\\xNN` escapes, any other lone surrogate as `\\udNNN`."""
    text = os.fspath(value)
    if isinstance(text, bytes):
        return text.decode("utf-8", "backslashreplace")
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # surrogates that no file name's bytes make
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
