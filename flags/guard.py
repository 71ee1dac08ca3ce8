"""The flag file guard: the only code that reads the operator's flag file for the service.

The flagd FILE resolver, left alone on the operator's path, reads it with a plain ``open()``
(a FIFO there blocks it forever, ``/dev/zero`` never ends), reloads only on a *newer* mtime (a
kill restored with ``cp -p`` or ``touch -d`` is missed), and keeps serving the last good flags
from a broken file. So it never sees that path. The guard, on its own daemon thread (not the
default executor: a read stuck in the kernel must not starve other ``to_thread`` users):

1. every ``poll_s`` reads the file with ``partial_trust.flags.saferead`` (regular files only, 1
MiB, 1 s);
2. hashes the bytes (SHA-256) and validates new content with ``partial_trust.flags.flagmodel``
(parsing only
   when the hash changed, so an unchanged 1 MiB file costs a read and a hash, not a parse);
3. when the *validated content* changes, writes it to a private snapshot file (a ``0700``
   temporary directory; temp file + ``os.replace``, with a strictly increasing mtime) that the
   flagd resolver watches, adding one flag, ``SNAPSHOT_FLAG``, whose value is the hash.

The settings source evaluates ``SNAPSHOT_FLAG`` to learn exactly which content flagd serves,
and uses flagd's values only when it is the content the guard validated last. Anything wrong
with the file (missing, unreadable, not a regular file, oversized, invalid, a read not done
within the deadline) is ``state().error``, and the corridor is off. The file is re-read when
its ``stat`` changes, while its ctime is recent (several writes in one coarse clock tick), and
at least every ``reread_s`` anyway, so any change of content is seen, whatever its mtime.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import stat
import tempfile
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from partial_trust.flags.flagmodel import FlagFileError, parse_document
from partial_trust.flags.saferead import (
    MAX_FLAG_FILE_BYTES,
    READ_DEADLINE_S,
    UnsafeFileError,
    read_regular,
)

logger = logging.getLogger("partial_trust.flags")
#: the extra flag in the private snapshot: its value is the hash of the content flagd serves
SNAPSHOT_FLAG = "partial-trust-snapshot"
NO_CONTENT = "none"  # SNAPSHOT_FLAG's value before any valid content was read
_RECENT_NS = 2_000_000_000  # ctime younger than this: more writes may share its clock tick
_MTIME_STEP_NS = 1_000_000  # flagd compares float seconds: 1 ms is far above their precision


@dataclass(frozen=True)
class GuardState:
    """``error`` None: ``digest`` is valid content, written to the snapshot at ``changed_at``."""

    error: str | None
    digest: str | None
    changed_at: float


def _snapshot_bytes(raw: dict[str, Any], digest: str) -> bytes:
    flags = raw.setdefault("flags", {})
    flags[SNAPSHOT_FLAG] = {"state": "ENABLED", "variants": {"v": digest}, "defaultVariant": "v"}
    return json.dumps(raw, ensure_ascii=False).encode()


class FlagFileGuard:
    """Reads ``path`` safely and keeps ``snapshot_path`` in step (see the module docstring)."""

    def __init__(
        self,
        path: Path,
        *,
        poll_s: float = 0.05,
        deadline_s: float = READ_DEADLINE_S,
        max_bytes: int = MAX_FLAG_FILE_BYTES,
        reread_s: float = 1.0,
    ) -> None:
        self.path = path
        self.poll_s, self.deadline_s, self.max_bytes, self.reread_s = (
            poll_s,
            deadline_s,
            max_bytes,
            reread_s,
        )
        self._dir = Path(tempfile.mkdtemp(prefix="partial-trust-flags-"))  # mode 0700
        self.snapshot_path = self._dir / "flags.json"
        # removed by cleanup() (the provider's shutdown), or when collected if never started
        self._finalizer = weakref.finalize(self, shutil.rmtree, str(self._dir), True)
        self._lock = threading.Lock()
        self._state = GuardState("the flag file has not been read yet", None, time.monotonic())
        self._busy_since: float | None = None
        self._seen: tuple[tuple[int, ...], str, str | None] | None = None  # key, digest, error
        self._read_at = -float("inf")
        self._valid: tuple[str, bytes] | None = None  # digest and snapshot of valid content
        self._mtime_ns = 0
        self._listeners: list[Callable[[], None]] = []
        self._stop = threading.Event()
        self._first = threading.Event()
        self._thread: threading.Thread | None = None

    # --- lifecycle ------------------------------------------------------------------------
    def start(self) -> None:
        """Write the empty snapshot, start the thread, wait (≤ the deadline) for a first read."""
        if self._thread is not None:
            return
        self._write_bytes(_snapshot_bytes({"flags": {}}, NO_CONTENT))
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="partial-trust-flag-guard")
        self._thread.daemon = True
        self._thread.start()
        self._first.wait(self.deadline_s + self.poll_s)

    def stop(self) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(self.deadline_s)  # a read stuck in the kernel stays behind (daemon)

    def cleanup(self) -> None:
        """Remove the private directory (after ``stop()``, once flagd no longer polls it)."""
        self._finalizer()

    def add_listener(self, callback: Callable[[], None]) -> None:
        """Called from the guard's thread after every change of ``state()``."""
        self._listeners.append(callback)

    def remove_listener(self, callback: Callable[[], None]) -> None:
        with contextlib.suppress(ValueError):
            self._listeners.remove(callback)

    def state(self) -> GuardState:
        """The last result; a read in progress for longer than the deadline is an error."""
        with self._lock:
            current, busy = self._state, self._busy_since
        if busy is not None and time.monotonic() - busy > self.deadline_s:
            slow = f"{self.path}: refused: reading it took longer than {self.deadline_s:g} s"
            return GuardState(f"{slow} (too slow)", current.digest, current.changed_at)
        return current

    # --- the thread -----------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll()
            except Exception:  # never let the guard die: its state would freeze
                logger.exception("flag file guard: unexpected error")
                self._set(GuardState("flag file guard failed (see the log)", None, 0.0))
            self._first.set()
            self._stop.wait(self.poll_s)

    def poll(self) -> None:
        """One look at the file (the thread calls it; tests may call it directly)."""
        with self._lock:
            self._busy_since = time.monotonic()
        try:
            error, digest = self._look()
        finally:
            with self._lock:
                self._busy_since = None
                previous = self._state
        if self._stop.is_set():
            return  # stopped while reading: the snapshot directory may be gone on purpose
        checked = self._valid if error is None else None  # (digest, snapshot bytes)
        if (
            checked is not None
            and checked[0] == digest
            and (digest != previous.digest or not self.snapshot_path.exists())
        ):
            try:
                self._write_bytes(checked[1])
            except OSError as exc:
                error = f"cannot write the private flag snapshot {self.snapshot_path} ({exc})"
            else:
                self._set(GuardState(None, digest, time.monotonic()))
                return
        self._set(GuardState(error, previous.digest, previous.changed_at))

    def _look(self) -> tuple[str | None, str | None]:
        """(error, digest); new valid content is kept in ``_valid`` as snapshot bytes."""
        try:
            st = os.stat(self.path)
        except OSError as exc:
            return f"{self.path}: cannot read the flag file ({exc.strerror})", None
        key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_mode)
        now = time.monotonic()
        recent = time.time_ns() - st.st_ctime_ns < _RECENT_NS
        seen = self._seen
        if (
            seen is not None
            and seen[0] == key
            and stat.S_ISREG(st.st_mode)
            and not recent
            and now - self._read_at < self.reread_s
        ):
            return seen[2], seen[1]
        self._read_at = now
        try:
            data = read_regular(self.path, max_bytes=self.max_bytes, deadline_s=self.deadline_s)
        except UnsafeFileError as exc:
            self._seen = None
            return str(exc), None
        digest = hashlib.sha256(data).hexdigest()
        if seen is not None and seen[1] == digest:
            self._seen = (key, digest, seen[2])
            return seen[2], digest
        try:
            raw, _ = parse_document(data, str(self.path))
        except FlagFileError as exc:
            self._seen = (key, digest, str(exc))
            return str(exc), digest
        self._valid = (digest, _snapshot_bytes(raw, digest))
        self._seen = (key, digest, None)
        return None, digest

    def _write_bytes(self, data: bytes) -> None:
        """The snapshot, atomically, with an mtime later than any before it."""
        self._dir.mkdir(mode=0o700, exist_ok=True)  # a /tmp cleaner may have removed it
        fd, tmp = tempfile.mkstemp(prefix=".flags.", suffix=".tmp", dir=self._dir)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            self._mtime_ns = max(time.time_ns(), self._mtime_ns + _MTIME_STEP_NS)
            os.utime(tmp, ns=(self._mtime_ns, self._mtime_ns))
            os.replace(tmp, self.snapshot_path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    def _set(self, new: GuardState) -> None:
        with self._lock:
            changed, self._state = new != self._state, new
        if changed:
            for callback in list(self._listeners):
                try:
                    callback()
                except Exception:
                    logger.exception("flag file guard listener failed")
