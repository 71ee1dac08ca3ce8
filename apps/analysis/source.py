"""Turn ``--risk-log`` arguments into regular files, and open them without ever blocking.

A FIFO opened for a blocking read waits for a writer forever, ``/dev/zero`` never ends and a
directory cannot be read: each is refused with its name before any counting starts. Files
are ``stat``-ed, then opened with ``O_NONBLOCK`` (which returns at once even for a FIFO with
no writer) and judged again by ``fstat`` on that same descriptor, so a path swapped between
the check and the read cannot slip a device in; worker processes open their ranges the same
way. Globs and folders name what they matched, and a match that is not a regular file is
refused too (silently skipping it would analyze less than the operator asked for).
"""

from __future__ import annotations

import glob
import os
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO, Final

from partial_trust.apps.analysis.limits import InputError

_FLAGS: Final = (
    os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOCTTY", 0)
)
_KINDS: Final = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _reason(exc: Exception) -> str:
    return (exc.strerror if isinstance(exc, OSError) else None) or str(exc)


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def open_regular(path: str | os.PathLike[str]) -> tuple[BinaryIO, int]:
    """``(file, size)`` for a regular file; InputError for anything else or any OS error."""
    name = os.fspath(path)
    try:
        mode = os.stat(name).st_mode  # first, to name a socket (which open() cannot) kindly
        if not stat.S_ISREG(mode):
            raise InputError(f"risk log {name!r} is {_kind(mode)}, not a regular file")
        fd = os.open(name, _FLAGS)
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the name
        raise InputError(f"cannot read risk log {name!r}: {_reason(exc)}") from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise InputError(f"risk log {name!r} is {_kind(info.st_mode)}, not a regular file")
        return os.fdopen(fd, "rb"), info.st_size
    except BaseException:
        os.close(fd)
        raise


def expand(patterns: Iterable[str]) -> list[Path]:
    """Paths from files, globs and folders (a folder means its ``*.jsonl*`` files), in order.

    Every path is opened once (and closed) here, so a missing, unreadable or non-regular
    input fails with its name before any counting starts.
    """
    out: list[Path] = []
    for pattern in patterns:
        if glob.has_magic(pattern):
            found = sorted(Path(p) for p in glob.glob(pattern))
            if not found:
                raise InputError(f"no risk log matches {pattern!r}")
        elif _is_dir(pattern):
            found = sorted(Path(pattern).glob("*.jsonl*"))
            if not found:
                raise InputError(f"no risk log (*.jsonl*) in folder {pattern!r}")
        else:
            found = [Path(pattern)]
        out += [p for p in found if p not in out]
    for path in out:
        f, _ = open_regular(path)
        f.close()
    return out


def _is_dir(pattern: str) -> bool:
    try:
        return stat.S_ISDIR(os.stat(pattern).st_mode)  # stat never blocks, even on a FIFO
    except (OSError, ValueError):
        return False
