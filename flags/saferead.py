"""Read a flag file without trusting what sits at its path.

Whoever can write the flag file's directory decides what ``open()`` meets there: a FIFO (a
plain read blocks until a writer appears, forever), a symlink to ``/dev/zero`` (never ends),
a directory, a 100 MB document (seconds of parsing with the GIL held), a file on a stuck
network mount. ``read_regular`` refuses all of them with a ``FlagFileError`` naming the reason:

* ``stat`` first: anything that is not a regular file is refused before it is even opened (an
  ``open`` of some devices has side effects);
* ``open(O_RDONLY | O_NONBLOCK | O_NOCTTY)`` then ``fstat`` on the descriptor: what was opened is
  what is checked, so swapping the path between the two steps gains nothing, and a FIFO swapped
  in meanwhile does not block the open;
* at most ``MAX_FLAG_FILE_BYTES`` (1 MiB; the shipped file is ~1 KB), checked on the size and
  again while reading, because a file may grow while it is read;
* a ``deadline_s`` (1 s) checked between chunks. A single ``read`` stuck in the kernel cannot be
  interrupted from Python, which is why callers on the request path never call this on the
  event loop: the flag file guard runs it on its own thread and reports a read that has not
  returned by the deadline as "too slow".

Symlinks are followed (a Kubernetes ConfigMap mount is a chain of symlinks): what matters is
the file at the end of the chain.
"""

from __future__ import annotations

import os
import stat
import time

MAX_FLAG_FILE_BYTES = 1 << 20
READ_DEADLINE_S = 1.0
_CHUNK = 64 * 1024
_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC


class UnsafeFileError(ValueError):
    """The path cannot be read as a flag file; the message says why, for ``/health``."""


def kind_of(mode: int) -> str:
    """What a non-regular file is ("a FIFO", "a directory"...), in an operator's words."""
    for test, name in (
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def _refuse_unless_regular(path: str, st: os.stat_result, max_bytes: int) -> None:
    if not stat.S_ISREG(st.st_mode):
        raise UnsafeFileError(f"{path}: refused: it is {kind_of(st.st_mode)}, not a regular file")
    if st.st_size > max_bytes:
        raise UnsafeFileError(
            f"{path}: refused: {st.st_size} bytes is over the {max_bytes}-byte limit "
            "for a flag file"
        )


def read_regular(
    path: str | os.PathLike[str],
    *,
    max_bytes: int = MAX_FLAG_FILE_BYTES,
    deadline_s: float = READ_DEADLINE_S,
) -> bytes:
    """The file's bytes, or ``UnsafeFileError`` (see the module docstring). Blocking."""
    name = os.fspath(path)
    started = time.monotonic()
    try:
        _refuse_unless_regular(name, os.stat(name), max_bytes)
        fd = os.open(name, _FLAGS)
    except OSError as exc:
        raise UnsafeFileError(f"{name}: cannot read the flag file ({_why(exc)})") from None
    try:
        _refuse_unless_regular(name, os.fstat(fd), max_bytes)
        chunks: list[bytes] = []
        total = 0
        while True:
            if time.monotonic() - started > deadline_s:
                raise UnsafeFileError(
                    f"{name}: refused: reading it took longer than {deadline_s:g} s (too slow)"
                )
            chunk = os.read(fd, _CHUNK)
            if not chunk:
                return b"".join(chunks)
            total += len(chunk)
            if total > max_bytes:
                raise UnsafeFileError(
                    f"{name}: refused: it grew over the {max_bytes}-byte limit while being read"
                )
            chunks.append(chunk)
    except OSError as exc:
        raise UnsafeFileError(f"{name}: cannot read the flag file ({_why(exc)})") from None
    finally:
        os.close(fd)


def _why(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__
