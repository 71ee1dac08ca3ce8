"""Is the review store still the file the writer opened? Checked while the app runs.

SQLite does not notice a store that changes under an open connection: a file overwritten,
truncated, deleted or replaced (or its ``-wal``) while the writer holds it keeps accepting
inserts, into a page cache and a WAL no reader will ever see again, and the writer would
count them ``kept``. So before every batch, and every ``CHECK_INTERVAL_S`` when idle, the
writer compares the file with what it opened (``Fingerprint``) and reads the key check back
through a fresh connection, as the console would. Any mismatch is a ``ReviewStoreError``,
which turns review off with the reason on ``/health``.

Closing a descriptor of our own on the main file would drop the POSIX locks SQLite holds on
it for this process (SQLite's "how to corrupt" 2.2), so the ``Watch`` opens one descriptor
when the store opens, reads the header through it, and closes it only after the writer's
connection is closed (a console mounted in the same process opens its own short-lived
connections per request; one open at that very moment would lose its locks, a window of
one shutdown or one fault). A fresh connection on an empty main file deletes the WAL, so the cheap
checks run first and the probe only when they pass. The ``-wal`` is not locked by SQLite,
so its header is read directly. Not caught: another valid store copied over the file in
place while its pages are still in our WAL (the probe then reads our own pages); the first
checkpoint after it is.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from typing import Final

from cryptography.fernet import Fernet

from partial_trust.middleware import review_store
from partial_trust.middleware.review_store import ReviewStoreError

_WAL_MAGIC: Final = (b"\x37\x7f\x06\x82", b"\x37\x7f\x06\x83")
_WAL_HEADER: Final = 32
_DB_MAGIC: Final = b"SQLite format 3\x00"
CHANGED: Final = "the store file changed while the app ran ({what}); review is off until a restart"


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """The identity of the store's main file when the writer opened it, and a descriptor on
    it kept open until the writer's connection is closed (see the module's docstring)."""

    device: int
    inode: int
    page_size: int
    fd: int

    @classmethod
    def take(cls, path: str, db: sqlite3.Connection) -> Fingerprint:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        st = os.fstat(fd)
        page_size = int(db.execute("PRAGMA page_size").fetchone()[0])
        return cls(st.st_dev, st.st_ino, page_size, fd)

    def release(self) -> None:
        """Only after the writer's connection is closed."""
        os.close(self.fd)


def _changed(what: str) -> ReviewStoreError:
    return ReviewStoreError(CHANGED.format(what=what))


def _check_main(path: str, opened: Fingerprint) -> None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise _changed("deleted") from None
    if (st.st_dev, st.st_ino) != (opened.device, opened.inode):
        raise _changed("replaced")
    if st.st_size < opened.page_size:
        raise _changed("truncated")
    if os.pread(opened.fd, len(_DB_MAGIC), 0) != _DB_MAGIC:
        raise _changed("overwritten")


def _check_wal(path: str, wal_inode: int | None) -> int | None:
    """The WAL's inode (``None``: no WAL yet); raises when it was replaced or mangled."""
    wal = f"{path}-wal"
    try:
        with open(wal, "rb") as handle:
            st = os.fstat(handle.fileno())
            header = handle.read(_WAL_HEADER)
    except FileNotFoundError:
        if wal_inode is not None:
            raise _changed("its -wal was deleted") from None
        return None
    if wal_inode is not None and st.st_ino != wal_inode:
        raise _changed("its -wal was replaced")
    if header and (len(header) < _WAL_HEADER or header[:4] not in _WAL_MAGIC):
        raise _changed("its -wal was overwritten or truncated")
    return st.st_ino


def _probe(path: str, fernet: Fernet) -> None:
    """Read the key check back through a fresh connection (``mode=rw``: never creates)."""
    try:
        probe = sqlite3.connect(f"file:{path}?mode=rw", uri=True, timeout=5.0)
    except sqlite3.Error as exc:
        raise ReviewStoreError(review_store.describe(exc)) from None
    try:
        probe.execute("PRAGMA busy_timeout = 5000")
        review_store.check_key(probe, fernet)
    except sqlite3.DatabaseError as exc:
        raise _changed(review_store.describe(exc)) from None
    except ReviewStoreError as exc:
        raise _changed(str(exc)) from None
    finally:
        probe.close()


def check(path: str, opened: Fingerprint, fernet: Fernet, wal_inode: int | None) -> int | None:
    """Raise ``ReviewStoreError`` unless the store is still the one opened; returns the WAL
    inode to remember for the next check."""
    try:
        _check_main(path, opened)
        wal_inode = _check_wal(path, wal_inode)
    except OSError as exc:
        raise ReviewStoreError(review_store.describe(exc)) from None
    _probe(path, fernet)
    return wal_inode
