"""The privacy-safe JSONL risk log: one line per non-``not_sampled`` outcome.

The request path only appends an ``Outcome`` to a deque (``submit``): no file I/O, no JSON, no
lock and, normally, no wake-up of another thread, so a slow or broken disk never stalls a
request. ``deque.append`` is atomic under the GIL; ``max_queue`` is checked with ``len`` first,
so the bound is approximate by the few threads that may race past it. A full queue drops the
record and counts it. One daemon thread wakes every ``flush_interval_s`` (or earlier, when the
queue passes a high-water mark and ``submit`` sets an Event), drains everything queued and
appends each batch with a single ``os.write`` on an ``O_APPEND`` descriptor, so lines from
several threads or worker processes never tear or interleave. Waking per interval, not per
record, keeps the writer from contending with the event loop for the GIL on every request.
After an interval that brought nothing the writer sleeps until the next ``submit`` wakes it
(once, for the first record of the next burst), so an idle log costs no wake-ups at all.
``close`` needs no queue slot: a flag and the Event stop the writer, then it flushes the rest.
A broken path is counted, logged at most once a minute and retried on every later batch, so
the log recovers when the fault ends.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import math
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Final

import anyio.to_thread

from partial_trust.middleware.risk_record import FIELDS, SCHEMA, line, record
from partial_trust.outcome import Outcome

__all__ = ["FIELDS", "SCHEMA", "RiskLog", "record"]

_BATCH: Final = 512  # records per os.write: bounds memory and the size of one atomic append
_OPEN_FLAGS: Final = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)

logger = logging.getLogger(__name__)


class RiskLog:
    """Lock-free bounded queue + one writer thread appending to ``path``; see the module doc."""

    #: Seconds between two log messages about a failing path (class-level so tests can shrink it).
    LOG_INTERVAL_S: float = 60.0
    #: Queue depth that wakes the writer before its interval: capped at half the capacity, so a
    #: burst is written well before it could fill the queue (class-level so tests can move it).
    WAKE_AT: int = 256

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        max_queue: int = 10_000,
        on_result: Callable[[str, int], None] | None = None,
        flush_interval_s: float = 0.05,
    ) -> None:
        wait = flush_interval_s  # "< 1e9" rejects NaN and inf, and stays below TIMEOUT_MAX
        if isinstance(wait, bool) or not isinstance(wait, int | float) or not 0 < wait < 1e9:
            raise ValueError(
                f"flush_interval_s must be a finite number of seconds > 0, got {wait!r}"
            )
        self.path = os.fspath(path)
        self._capacity = max(1, max_queue)
        self._queue: deque[Outcome] = deque()
        # submit compares the depth *before* its append, hence the -1.
        self._wake_depth = max(1, min(self._capacity // 2, self.WAKE_AT)) - 1
        self._wake = threading.Event()
        self._parked = False  # the writer sleeps until woken: nothing came in an interval
        self._interval = float(wait)
        self._on_result = on_result
        self._lock = threading.Lock()  # guards the counters only, never held across I/O
        self._totals = {"written": 0, "dropped": 0, "failed": 0}
        self._thread: threading.Thread | None = None
        self._closed = False
        self._fd: int | None = None
        self._torn = False  # a partial write left a fragment: start the next write with "\n"
        self._writable: bool | None = None
        self._last_log = -math.inf
        self.last_error: str | None = None
        self.last_write_timestamp: float | None = None

    # -- request path -------------------------------------------------------------------
    def submit(self, outcome: Outcome) -> bool:
        """Queue one outcome; O(1), never blocks or raises. False means dropped (and counted)."""
        try:  # the request must never see an exception from logging
            queue = self._queue
            depth = len(queue)
            if depth < self._capacity and not self._closed:
                queue.append(outcome)
                # is_set is a plain read; set() takes the Event's lock, so only on the edge:
                # at the high-water mark, or for the first record after an idle spell.
                if (depth >= self._wake_depth or self._parked) and not self._wake.is_set():
                    self._wake.set()
                return True
        except Exception:
            pass
        self._count("dropped", 1)
        return False

    # -- lifecycle ----------------------------------------------------------------------
    def start(self) -> None:
        """Start the writer thread (idempotent). Daemon: a hung disk never blocks exit."""
        if self._thread is None and not self._closed:
            self._thread = threading.Thread(
                target=self._run, name="partial-trust-risk-log", daemon=True
            )
            self._thread.start()

    def close(self, timeout: float = 5.0) -> None:
        """Flush everything queued, stop the writer and close the file; later submits drop."""
        self._closed = True
        self._wake.set()  # a flag + Event, not a marker: works even when the queue is full
        thread = self._thread
        if thread is not None and thread.is_alive():
            thread.join(timeout)
            if thread.is_alive():
                return  # the writer is stuck on the disk: leave it, it is a daemon
        self._flush()  # never started, or a submit raced past _closed: no one else drains now
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    async def aclose(self, timeout: float = 5.0) -> None:
        """``close`` on a worker thread, so an ASGI lifespan shutdown never blocks the loop."""
        await anyio.to_thread.run_sync(self.close, timeout)

    def status(self) -> dict[str, object]:
        """A snapshot for /health; cheap, no file I/O beyond an ``os.access`` probe."""
        with self._lock:
            totals = dict(self._totals)
        writable = self._writable if self._writable is not None else self._probe()
        return {
            "path": self.path,
            "writable": writable,
            "queue_depth": len(self._queue),
            "queue_capacity": self._capacity,
            **totals,
            "last_error": self.last_error,
            "last_write_timestamp": self.last_write_timestamp,
        }

    # -- writer thread ------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            self._wake.wait(self._interval)
            # Clear before draining, so a high-water set() during the drain is not lost; read
            # the flag before draining, so everything queued before close() is written.
            self._wake.clear()
            stopping = self._closed
            busy = bool(self._queue)
            self._flush()
            if stopping:
                return
            if not busy:
                self._park()

    def _park(self) -> None:
        """A whole interval brought nothing: sleep until a ``submit`` or ``close`` wakes us,
        so an idle log costs no wake-ups (20 a second otherwise). The flag is published
        before the queue is checked and ``submit`` appends before reading it, so under the
        GIL either this check sees the record or that ``submit`` sees the flag."""
        self._parked = True
        if not self._queue and not self._closed:
            self._wake.wait()
        self._parked = False
        # Woken by the first record: wait out the interval as usual, so the records of the
        # burst it starts go in one write rather than the first one alone; but never sleep
        # through a close() that came in meanwhile.
        self._wake.clear()
        if self._closed:
            self._wake.set()

    def _flush(self) -> None:
        """Write batches of up to ``_BATCH`` until the queue is empty (single consumer)."""
        queue, popleft = self._queue, self._queue.popleft
        while queue:
            # Only this thread pops, so the length can only grow under us: popleft can't fail.
            self._write([popleft() for _ in range(min(len(queue), _BATCH))])

    def _write(self, batch: list[Outcome]) -> None:
        """Serialise and append one batch; every record ends counted written or failed."""
        lines: list[bytes] = []
        for outcome in batch:
            try:
                lines.append(line(outcome))
            except Exception as exc:  # one bad record must not sink the batch
                self._fail(1, type(exc).__name__)
        if not lines:
            return
        data = (b"\n" if self._torn else b"") + b"".join(lines)
        done = 0
        try:
            fd = self._open()
            while done < len(data):
                n = os.write(fd, data[done:])
                if n <= 0:
                    raise OSError(errno.EIO, "short write")
                done += n
        except Exception as exc:  # OSError mostly; the thread must survive anything
            code = getattr(exc, "errno", None)
            name = errno.errorcode.get(code, type(exc).__name__) if code else type(exc).__name__
            whole = data.count(b"\n", 0, done) - (1 if self._torn and done else 0)
            if done:
                self._torn = data[done - 1 : done] != b"\n"
            self._count("written", max(0, whole))
            self._writable = False
            self._fail(len(lines) - max(0, whole), name)
            self._reset_fd()
            return
        self._torn = False
        self._writable = True
        self.last_write_timestamp = time.time()
        self._count("written", len(lines))

    def _open(self) -> int:
        """The append fd, re-opened after a failure or when the file was rotated away."""
        if self._fd is not None:
            try:
                if os.stat(self.path).st_ino == os.fstat(self._fd).st_ino:
                    return self._fd
            except OSError:
                pass
            self._reset_fd()
        parent = os.path.dirname(self.path)
        if parent:
            os.makedirs(parent, exist_ok=True)
        self._fd = os.open(self.path, _OPEN_FLAGS, 0o640)
        return self._fd

    def _reset_fd(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None

    def _fail(self, n: int, error: str) -> None:
        self.last_error = error
        self._count("failed", n)
        now = time.monotonic()
        if now - self._last_log >= self.LOG_INTERVAL_S:
            self._last_log = now
            logger.warning(
                "partial-trust risk log %s not writable (%s); records are being counted as "
                "failed and the write is retried; next message in %.0f s",
                self.path, error, self.LOG_INTERVAL_S,
            )  # fmt: skip

    def _count(self, result: str, n: int) -> None:
        if n <= 0:
            return
        with self._lock:
            self._totals[result] += n
        if self._on_result is not None:
            with contextlib.suppress(Exception):  # a metrics fault must not break logging
                self._on_result(result, n)

    def _probe(self) -> bool:
        path = self.path
        if os.path.exists(path):
            return os.path.isfile(path) and os.access(path, os.W_OK)
        parent = os.path.dirname(os.path.abspath(path))
        while not os.path.exists(parent):
            parent = os.path.dirname(parent)
        return os.path.isdir(parent) and os.access(parent, os.W_OK | os.X_OK)
