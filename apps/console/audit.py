"""The flag audit log: one JSON object per line, appended with ``O_APPEND`` in one ``write``.

Every change made through the console (source ``ui``), by Alertmanager (``auto-rollback``) or
by the CLI (``cli``, via ``record``) is one line::

    {"time": "2026-11-23T03:12:09.123Z", "schema": "partial-trust-flag-audit/1",
     "source": "ui", "actor": "alice", "key": "partial-trust-enabled", "old": true,
     "new": false, "reason": "error spike", "variant": "off", "file": "/srv/flags.json",
     "client": "127.0.0.1"}

Resume lines add ``resume_at`` (``stage 1``: the playbook's restart, or ``kept rate``),
``sample_rate_old`` and ``sample_rate_new`` (``resume_fields``); the stage clock of
``partial_trust.apps.analysis.durations`` reads ``sample_rate_new`` as a sample-rate change. Console
advance lines add ``gate_verdict``, and an advance against the gate adds ``override: true``,
``overridden_verdict`` and ``gate_why``.

Auto-rollback lines add ``fingerprint``, ``starts_at``, ``alertname`` and ``corridor``; the
(fingerprint, starts_at) pair is how a repeated notification is recognised, across restarts and
worker processes, because the log itself is the record. An alert naming a corridor that is not
on the code's allowlist changes no flag; its line has source ``webhook``, ``action``
``ignored``, no ``key``/``old``/``new``, and the alert's ``corridor_label``, fingerprint and
``starts_at`` (written once per pair, ``partial_trust.apps.console.webhook``). ``locked()``
takes an exclusive ``flock`` on the log so "already handled?" and "handle it" are one step.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from partial_trust.apps.console import text
from partial_trust.environment import Environment
from partial_trust.flags.flagfile import Change

SCHEMA = "partial-trust-flag-audit/1"
SOURCES = frozenset({"ui", "cli", "auto-rollback"})
AUDIT_ENV = "PARTIAL_TRUST_FLAGS_AUDIT_LOG"
DEFAULT_AUDIT_PATH = "logs/partial_trust_flag_audit.jsonl"


def default_audit_path(env: Environment) -> Path:
    """``PARTIAL_TRUST_FLAGS_AUDIT_LOG`` or ``logs/partial_trust_flag_audit.jsonl``."""
    return Path(env.get(AUDIT_ENV) or DEFAULT_AUDIT_PATH).absolute()


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def entry(
    change: Change, *, source: str, actor: str, reason: str, **extra: object
) -> dict[str, Any]:
    """One audit record for a change made by ``partial_trust.flags.flagfile``."""
    if source not in SOURCES:
        raise ValueError(f"audit source {source!r}: expected one of {sorted(SOURCES)}")
    # The console refuses spoofing characters (422); what other writers pass (the CLI's
    # reason and login name, Alertmanager's labels) is escaped, so no line ever carries one.
    record: dict[str, Any] = text.escape_all(
        {
            "time": now_rfc3339(),
            "schema": SCHEMA,
            "source": source,
            "actor": actor,
            "key": change.key,
            "old": change.old,
            "new": change.new,
            "reason": reason,
            "variant": change.variant,
            **({"replaced_broken_file": change.replaced} if change.replaced is not None else {}),
            **{k: v for k, v in extra.items() if v is not None},
        }
    )
    return record


def resume_fields(change: Change) -> dict[str, object]:
    """What a resume did to the sample rate, for its audit line ({} for other changes)."""
    if change.rate is None:
        return {}
    return {
        "resume_at": "kept rate" if change.kept_rate else "stage 1",
        "sample_rate_old": change.rate[0],
        "sample_rate_new": change.rate[1],
    }


def _encode(record: Mapping[str, Any]) -> bytes:
    return (json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n").encode()


class AuditLog:
    def __init__(self, path: Path) -> None:
        self.path = path

    def open_fd(self) -> int:
        """An append-only descriptor; opened *before* a change so that an unwritable log
        refuses the change instead of leaving it unrecorded."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        return os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)

    def write(self, fd: int, record: Mapping[str, Any]) -> None:
        data = _encode(record)
        written = os.write(fd, data)  # one write with O_APPEND: lines never interleave
        if written != len(data):
            raise OSError(f"{self.path}: short write ({written} of {len(data)} bytes)")

    def append(self, record: Mapping[str, Any]) -> None:
        fd = self.open_fd()
        try:
            self.write(fd, record)
        finally:
            os.close(fd)

    @contextlib.contextmanager
    def locked(self) -> Iterator[int]:
        """An append descriptor holding an exclusive lock for the ``with`` block."""
        fd = self.open_fd()
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield fd
        finally:
            os.close(fd)

    def records(self) -> list[dict[str, Any]]:
        """Oldest first; a line that is not a JSON object (a hand edit) is skipped."""
        return self.read_from(0)[0]

    def read_from(self, offset: int) -> tuple[list[dict[str, Any]], int]:
        """The records of the lines that start at or after byte ``offset``, and the offset
        after the last complete line (where the next call should start)."""
        try:
            with open(self.path, "rb") as f:
                f.seek(offset)
                data = f.read()
        except FileNotFoundError:
            return [], 0
        end = data.rfind(b"\n") + 1  # a line still being written is read next time
        out = []
        for line in data[:end].splitlines():
            try:
                item = json.loads(line)
            except (UnicodeDecodeError, json.JSONDecodeError):
                continue
            if isinstance(item, dict):
                out.append(item)
        return out, offset + end

    def newest_first(self, limit: int = 100) -> list[dict[str, Any]]:
        """For display: every string escaped (``text.escape``), whoever wrote the line."""
        return [text.escape_all(r) for r in list(reversed(self.records()))[:limit]]

    def handled(self, fingerprint: str, starts_at: str) -> bool:
        return (fingerprint, starts_at) in handled_alerts(self.records())

    def auto_rollbacks(self, corridor: str | None = None) -> list[datetime]:
        """Times of the auto-rollback records (for one corridor, if given)."""
        out = []
        for r in self.records():
            if r.get("source") != "auto-rollback":
                continue
            if corridor is not None and r.get("corridor") != corridor:
                continue
            try:
                out.append(datetime.fromisoformat(str(r.get("time")).replace("Z", "+00:00")))
            except ValueError:
                continue
        return out

    def recent_auto_rollbacks(self, window: timedelta, corridor: str | None = None) -> int:
        since = datetime.now(UTC) - window
        return sum(1 for t in self.auto_rollbacks(corridor) if t >= since)


def handled_alerts(records: list[dict[str, Any]]) -> set[tuple[str, str]]:
    """The (fingerprint, starts_at) pairs that auto-rollback lines have handled: the line's
    own pair and those it lists under ``handled`` (one kill for several alerts)."""
    out: set[tuple[str, str]] = set()
    for r in records:
        if r.get("source") != "auto-rollback":
            continue
        out.add((str(r.get("fingerprint")), str(r.get("starts_at"))))
        also = r.get("handled")
        for pair in also if isinstance(also, list) else []:
            if isinstance(pair, list) and len(pair) == 2:
                out.add((str(pair[0]), str(pair[1])))
    return out


def record(
    path: Path,
    change: Change,
    *,
    reason: str,
    actor: str | None = None,
    source: str = "cli",
    **extra: object,
) -> dict[str, Any]:
    """Append one line for a change already made (what ``partial-trust flags set`` calls);
    a resume's rate fields (``resume_fields``) are added by itself."""
    if actor is None:
        import getpass

        try:
            actor = getpass.getuser()
        except (KeyError, OSError):
            actor = "unknown"
    line = entry(
        change, source=source, actor=actor, reason=reason, **resume_fields(change), **extra
    )
    AuditLog(path).append(line)
    return line
