"""The review store's file: SQLite (standard library), raw fields encrypted with Fernet.

One file, three tables. ``meta`` holds the schema name and a key check (a token of a fixed
text), so a wrong key is found when the store opens, not when a reviewer reads garbage.
``cases`` keeps the clear fields needed to choose and count (corridor, mode, status, reason,
time) and one encrypted ``payload`` (command, baseline, candidate). ``verdicts`` keeps what a
reviewer decided (verdict and category in clear: they are closed enums and feed the override
rate without a key; the optional note encrypted) and outlives its case, so the rate keeps
its history after the case itself is deleted at the end of its retention.

``secure_delete`` overwrites deleted rows, WAL lets the console read while the app writes,
and ``busy_timeout`` makes several app instances on one file wait for each other instead of
failing. Everything here is blocking I/O: the app calls it from the review writer's thread
(``partial_trust.middleware.review_writer``), the console from a worker thread.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from typing import Any, Final

from cryptography.fernet import Fernet, InvalidToken

SCHEMA: Final = "partial-trust-review/1"
_CHECK: Final = b"partial-trust-review key check"
_DDL: Final = (
    "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value BLOB NOT NULL)",
    "CREATE TABLE IF NOT EXISTS cases (id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " corridor TEXT NOT NULL, mode TEXT NOT NULL, status TEXT NOT NULL, reason TEXT NOT NULL,"
    " created REAL NOT NULL, payload BLOB NOT NULL)",
    "CREATE INDEX IF NOT EXISTS cases_created ON cases (created)",
    "CREATE TABLE IF NOT EXISTS verdicts (case_id INTEGER PRIMARY KEY,"
    " corridor TEXT NOT NULL, verdict TEXT NOT NULL, category TEXT NOT NULL,"
    " reviewer TEXT NOT NULL, judged REAL NOT NULL, case_created REAL NOT NULL, note BLOB)",
)


class ReviewStoreError(Exception):
    """The store cannot be used; the message is the reason ``/health`` shows (no raw data)."""


def cipher(key: str) -> Fernet:
    """The Fernet cipher of ``key`` (``partial-trust review keygen`` makes one)."""
    if not key:
        raise ReviewStoreError("PARTIAL_TRUST_REVIEW_KEY is not set")
    try:
        return Fernet(key.encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        raise ReviewStoreError(
            "PARTIAL_TRUST_REVIEW_KEY is not a Fernet key (32 url-safe base64 bytes)"
        ) from None


def connect(path: str, *, readonly: bool = False) -> sqlite3.Connection:
    """A connection with the store's pragmas; ``ReviewStoreError`` for an unusable file."""
    try:
        if readonly:
            db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5.0)
        else:
            parent = os.path.dirname(os.path.abspath(path))
            os.makedirs(parent, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600)
            os.close(fd)
            db = sqlite3.connect(path, timeout=5.0)
        db.execute("PRAGMA busy_timeout = 5000")
        if not readonly:
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA secure_delete = ON")
        return db
    except (sqlite3.Error, OSError) as exc:
        raise ReviewStoreError(describe(exc)) from None


def describe(exc: BaseException) -> str:
    """A reason for ``/health``: the kind of fault, never a row's content."""
    text = str(exc).lower()
    if isinstance(exc, sqlite3.DatabaseError) and "not a database" in text:
        return "the store file is not a review store (corrupted?)"
    if "full" in text or getattr(exc, "sqlite_errorname", "") == "SQLITE_FULL":
        return "the store's disk is full"
    if isinstance(exc, OSError):
        return f"the store file cannot be opened ({exc.strerror or type(exc).__name__})"
    if isinstance(exc, sqlite3.DatabaseError) and ("malformed" in text or "corrupt" in text):
        return "the store file is corrupted"
    if str(getattr(exc, "sqlite_errorname", "")).startswith("SQLITE_IOERR"):
        return "a disk I/O error on the store's files (truncated or removed?)"
    return f"the store failed ({type(exc).__name__})"


def prepare(db: sqlite3.Connection, fernet: Fernet) -> None:
    """Create the tables (first use) and check the key against the stored check token."""
    try:
        with db:
            for statement in _DDL:
                db.execute(statement)
            if db.execute("SELECT COUNT(*) FROM meta").fetchone()[0] == 0:
                db.execute("INSERT INTO meta VALUES ('schema', ?)", (SCHEMA.encode(),))
                db.execute("INSERT INTO meta VALUES ('key_check', ?)", (fernet.encrypt(_CHECK),))
                return
        check_key(db, fernet)
    except sqlite3.Error as exc:
        raise ReviewStoreError(describe(exc)) from None


def check_key(db: sqlite3.Connection, fernet: Fernet) -> None:
    """``ReviewStoreError`` unless ``db`` is a review store that ``fernet`` opens (the
    writer calls it at open and again while it runs, on a fresh connection)."""
    rows = dict(db.execute("SELECT name, value FROM meta").fetchall())
    if bytes(rows.get("schema", b"")) != SCHEMA.encode():
        raise ReviewStoreError("the store file has another schema")
    try:
        ok = fernet.decrypt(bytes(rows.get("key_check", b""))) == _CHECK
    except InvalidToken:
        ok = False
    if not ok:
        raise ReviewStoreError("PARTIAL_TRUST_REVIEW_KEY does not open this store (wrong key)")


def seal(fernet: Fernet, value: object) -> bytes:
    return fernet.encrypt(json.dumps(value, ensure_ascii=False, default=str).encode("utf-8"))


def unseal(fernet: Fernet, token: bytes) -> Any:
    return json.loads(fernet.decrypt(bytes(token)))


def size_bytes(db: sqlite3.Connection) -> int:
    pages = db.execute("PRAGMA page_count").fetchone()[0]
    free = db.execute("PRAGMA freelist_count").fetchone()[0]
    return int((pages - free) * db.execute("PRAGMA page_size").fetchone()[0])


def insert(
    db: sqlite3.Connection,
    *,
    corridor: str,
    mode: str,
    status: str,
    reason: str,
    created: float,
    payload: bytes,
    max_cases: int,
    max_bytes: int,
) -> bool:
    """Keep one case; ``False`` when the caps are reached (the caller drops and counts)."""
    count = db.execute("SELECT COUNT(*) FROM cases").fetchone()[0]
    if count >= max_cases or size_bytes(db) + len(payload) > max_bytes:
        return False
    with db:
        db.execute(
            "INSERT INTO cases (corridor, mode, status, reason, created, payload)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (corridor, mode, status, reason, created, payload),
        )
    return True


def purge(db: sqlite3.Connection, retention_s: float, now: float | None = None) -> int:
    """Delete every case older than the retention, and the notes judged on them."""
    cutoff = (time.time() if now is None else now) - retention_s
    with db:
        db.execute("UPDATE verdicts SET note = NULL WHERE case_created < ?", (cutoff,))
        deleted = db.execute("DELETE FROM cases WHERE created < ?", (cutoff,)).rowcount
    return int(deleted)
