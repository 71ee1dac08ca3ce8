"""``ReviewWriter``: the ``ReviewSink`` that keeps cases in the encrypted SQLite store.

The request path only appends a ``ReviewCase`` to a bounded deque (``submit``: no I/O, no
JSON, no encryption, no lock); one daemon thread opens the store, encrypts and inserts, and
deletes expired cases (on open and every ``PURGE_INTERVAL_S``). A full queue or a full store
drops the case and counts it.

Every fault of the store turns review OFF, never the corridor: the file is not a store
(corrupted), the key is missing, malformed or wrong, the disk is full, the file cannot be
opened. ``active`` goes false, ``status()["reason"]`` says why (``/health`` shows it), the
queue is emptied and later cases are dropped and counted (``dropped_off``, per corridor, so
the dashboard and the ``PartialTrustReviewStoreFailing`` alert see a store that stays off).
A restart tries again. Faults that come while the app runs (the file overwritten, truncated,
deleted or replaced under the writer) are found by ``review_integrity`` before every batch
and every ``CHECK_INTERVAL_S`` when idle; a disk that fills mid-run is ``SQLITE_FULL``.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Final

from partial_trust.middleware import review_integrity, review_store
from partial_trust.middleware.review import ReviewCase, ReviewSettings, wanted
from partial_trust.middleware.review_store import ReviewStoreError
from partial_trust.outcome import Outcome

logger = logging.getLogger(__name__)
RESULTS: Final = ("kept", "dropped_full", "dropped_queue", "dropped_off", "failed")


def _command_json(command: Any) -> Any:
    dump = getattr(command, "model_dump", None)
    return dump(mode="json") if callable(dump) else command


def _text(command: Any) -> str | None:
    text = getattr(command, "text", None)
    return text if isinstance(text, str) else None


class ReviewWriter:
    #: Seconds between two retention sweeps (class-level so tests can shrink it).
    PURGE_INTERVAL_S: float = 60.0
    #: Seconds between two checks that the store is still the file opened, when idle (a
    #: batch is always checked first).
    CHECK_INTERVAL_S: float = 5.0
    #: ``PRAGMA max_page_count`` on the writer's own connection (``None``: SQLite's). A test
    #: hook: a small value makes the store's disk "fill" for real (``SQLITE_FULL``) mid-run.
    PAGE_LIMIT: int | None = None

    def __init__(
        self,
        settings: ReviewSettings,
        *,
        max_queue: int = 256,
        on_result: Callable[[str, str, int], None] | None = None,
    ) -> None:
        self.settings = settings
        self._capacity = max(1, max_queue)
        self._queue: deque[ReviewCase] = deque()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._on_result = on_result
        self._lock = threading.Lock()
        self._totals = dict.fromkeys(RESULTS, 0)
        self.purged = 0
        #: True once the store opened with the right key; False after any fault.
        self.active = False
        self.reason: str | None = "not started"
        self._ready = threading.Event()
        self._wal_inode: int | None = None

    # -- request path -------------------------------------------------------------------
    def wants(self, outcome: Outcome) -> bool:
        """Every wanted case is handed over, even while off: ``submit`` counts it."""
        return wanted(outcome, self.settings)

    def submit(self, case: ReviewCase) -> bool:
        try:
            # while the store opens (not ready yet) cases wait in the queue like any other
            open_or_opening = self.active or not self._ready.is_set()
            if open_or_opening and not self._closed and len(self._queue) < self._capacity:
                self._queue.append(case)
                if not self._wake.is_set():
                    self._wake.set()
                return True
            result = "dropped_queue" if open_or_opening and not self._closed else "dropped_off"
        except Exception:
            result = "failed"
        self._count(case.corridor, result)
        return False

    # -- lifecycle ----------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None and not self._closed:
            self._thread = threading.Thread(
                target=self._run, name="partial-trust-review", daemon=True
            )
            self._thread.start()

    def wait_ready(self, timeout: float = 5.0) -> bool:
        """Until the store has opened or failed to (tests; the app never waits)."""
        return self._ready.wait(timeout)

    def close(self, timeout: float = 5.0) -> None:
        self._closed = True
        self._wake.set()
        thread = self._thread
        if thread is not None and thread.is_alive():
            thread.join(timeout)

    def status(self) -> dict[str, object]:
        with self._lock:
            totals = dict(self._totals)
        return {
            "configured": True,
            "active": self.active,
            "reason": self.reason,
            "path": self.settings.path,
            "share": self.settings.share,
            "fallbacks": self.settings.include_fallbacks,
            "retention_days": self.settings.retention_days,
            "queue_depth": len(self._queue),
            "purged": self.purged,
            **totals,
        }

    # -- writer thread ------------------------------------------------------------------
    def _run(self) -> None:
        db = self._open()
        self._ready.set()
        if db is None:
            return
        next_purge = time.monotonic() + self.PURGE_INTERVAL_S
        next_check = time.monotonic() + self.CHECK_INTERVAL_S
        try:
            while True:
                self._wake.wait(min(1.0, self.PURGE_INTERVAL_S, self.CHECK_INTERVAL_S))
                self._wake.clear()
                stopping = self._closed
                if self._queue or time.monotonic() >= next_check:
                    next_check = time.monotonic() + self.CHECK_INTERVAL_S
                    if not self._guard(self._check_intact):
                        return
                if not self._drain(db):
                    return
                if time.monotonic() >= next_purge:
                    next_purge = time.monotonic() + self.PURGE_INTERVAL_S
                    if not self._guard(lambda: self._purge(db)):
                        return
                if stopping:
                    return
        finally:
            with contextlib.suppress(sqlite3.Error):
                db.close()
            self._opened.release()  # after the connection: see review_integrity

    def _open(self) -> sqlite3.Connection | None:
        try:
            fernet = review_store.cipher(self.settings.key)
            db = review_store.connect(self.settings.path)
            try:
                review_store.prepare(db, fernet)
                self._fernet = fernet
                self._purge(db)
                if self.PAGE_LIMIT is not None:
                    db.execute(f"PRAGMA max_page_count = {int(self.PAGE_LIMIT)}")
                self._opened = review_integrity.Fingerprint.take(self.settings.path, db)
            except BaseException:
                db.close()
                raise
        except ReviewStoreError as exc:
            self._off(str(exc))
            return None
        except (sqlite3.Error, OSError) as exc:
            self._off(review_store.describe(exc))
            return None
        self.active, self.reason = True, None
        return db

    def _check_intact(self) -> None:
        self._wal_inode = review_integrity.check(
            self.settings.path, self._opened, self._fernet, self._wal_inode
        )

    def _purge(self, db: sqlite3.Connection) -> None:
        self.purged += review_store.purge(db, self.settings.retention_s)

    def _drain(self, db: sqlite3.Connection) -> bool:
        queue = self._queue
        while queue:
            case = queue.popleft()
            if not self._guard(functools.partial(self._keep, db, case), case.corridor):
                return False
        return True

    def _keep(self, db: sqlite3.Connection, case: ReviewCase) -> None:
        payload = review_store.seal(
            self._fernet,
            {
                "command": _command_json(case.command),
                "text": _text(case.command),
                "baseline": case.baseline,
                "candidate": case.candidate,
                "command_key": case.command_key,
            },
        )
        kept = review_store.insert(
            db,
            corridor=case.corridor,
            mode=case.mode,
            status=case.status,
            reason=case.reason,
            created=case.created,
            payload=payload,
            max_cases=self.settings.max_cases,
            max_bytes=self.settings.max_bytes,
        )
        self._count(case.corridor, "kept" if kept else "dropped_full")

    def _guard(self, step: Callable[[], None], corridor: str | None = None) -> bool:
        """Run one store step; any store fault turns review off (``False``)."""
        try:
            step()
        except (sqlite3.Error, OSError, ReviewStoreError) as exc:
            if corridor is not None:
                self._count(corridor, "failed")
            reason = str(exc) if isinstance(exc, ReviewStoreError) else None
            self._off(reason or review_store.describe(exc))
            return False
        except Exception as exc:  # e.g. a candidate JSON cannot encode: this case only
            if corridor is not None:
                self._count(corridor, "failed")
            logger.warning("a review case could not be kept (%s)", type(exc).__name__)
        return True

    def _off(self, reason: str) -> None:
        self.active, self.reason = False, reason
        self._ready.set()  # from now on ``submit`` drops and counts instead of queueing
        while self._queue:
            self._count(self._queue.popleft().corridor, "dropped_off")
        logger.warning("the review store is off: %s; the corridor keeps serving", reason)

    def _count(self, corridor: str, result: str, n: int = 1) -> None:
        with self._lock:
            self._totals[result] += n
        if self._on_result is not None and corridor:
            with contextlib.suppress(Exception):
                self._on_result(corridor, result, n)
