"""Turn risk-log bytes into counts: a regex fast path for canonical lines, JSON for the rest.

Why not ``json.loads`` per line: it costs ~5 µs a line here, 5x the whole budget (≥ 1M
lines/s). The risk-log writer emits one fixed shape (``partial_trust.middleware.risk_log.FIELDS``
in order,
compact separators), so one anchored, multi-line regex validates a whole chunk of such lines
in C and hands back only the few fields the figures need. A chunk where any line does not fit
that shape (a foreign line, another writer's spacing, an escaped string) is re-read line by
line with the strict model (``records.py``), so odd input changes speed, never the answer.
A line that does not validate, or is longer than ``MAX_LINE``, is foreign; the regex only
matches lines that also validate.

A ``Tally`` holds only counts and is mergeable, so byte ranges can be counted in worker
processes and summed; latencies are kept as a count per distinct value (the writer rounds to
0.01 ms), which keeps exact percentiles in a few MB instead of one float per record. Both
counters are bounded whatever the input (``limits.py``): past ``MAX_LATENCY_KEYS`` distinct
latencies they fall into 0.1%-wide buckets; past ``MAX_RECORD_KEYS`` groups the input is
refused, so memory stays flat.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from operator import itemgetter
from typing import Final

from partial_trust.apps.analysis.limits import (
    LATENCY_BUCKET_RATIO,
    MAX_LATENCY_KEYS,
    MAX_LINE,
    MAX_RECORD_KEYS,
    PREFIX_FOREIGN_FLOOR,
    GiveUp,
    InputError,
)
from partial_trust.apps.analysis.records import LINE, SCHEMA, parse_line

__all__ = ["LINE", "SAMPLED", "SCHEMA", "STATUSES", "Tally", "Window", "parse_time"]

STATUSES: Final = ("accepted_llm", "fallback_deterministic", "error", "skipped")
SAMPLED: Final = frozenset({"accepted_llm", "fallback_deterministic", "error"})

_HOUR_PREFIX: Final = b'{"timestamp":"'
_UTC: Final = b'Z","schema":"partial_trust_risk/v1"'  # the hour prefix is a UTC hour

#: hour, status, reason, intent, entity, mode, agreement. A line without ``mode`` counts as
#: canary, without ``agreement`` as null (``_canonical``: the regex gives b"" for them).
Key = tuple[bytes, bytes, bytes, bytes, bytes, bytes, bytes]
LatKey = tuple[bytes, bytes]  # status, latency token
_KEY: Final = itemgetter(0, 1, 2, 4, 5, 6, 7)
_LATENCY: Final = itemgetter(1, 3)  # (status, latency token): only sampled ones count, later


@dataclass(frozen=True, slots=True)
class Window:
    """Half-open time window [since, until); ``None`` ends are open."""

    since: datetime | None = None
    until: datetime | None = None

    def contains(self, ts: datetime) -> bool:
        return (self.since is None or ts >= self.since) and (self.until is None or ts < self.until)

    def hour(self, hour: bytes) -> str:
        """The UTC hour ``YYYY-MM-DDTHH`` lies wholly "in" or "out" of the window, or "edge"."""
        try:
            start = datetime.strptime(hour.decode(), "%Y-%m-%dT%H").replace(tzinfo=UTC)
        except (ValueError, UnicodeDecodeError):
            return "edge"
        end = start + timedelta(hours=1)
        after_since = self.since is None or start >= self.since
        if after_since and (self.until is None or end <= self.until):
            return "in"
        if (self.since is not None and end <= self.since) or (
            self.until is not None and start >= self.until
        ):
            return "out"
        return "edge"

    @property
    def open(self) -> bool:
        return self.since is None and self.until is None


def parse_time(text: str) -> datetime | None:
    """RFC 3339 → aware UTC datetime; naive input is taken as UTC; junk → None."""
    try:
        ts = datetime.fromisoformat(text.strip())
        return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)
    except (ValueError, OverflowError):  # OverflowError: year 1 or 9999 shifted by an offset
        return None


@dataclass(slots=True)
class Tally:
    """Mergeable counts over records; see the module docstring."""

    window: Window = field(default_factory=lambda: Window())
    records: Counter[Key] = field(default_factory=Counter)
    latencies: Counter[LatKey] = field(default_factory=Counter)  # (status, value)
    foreign: int = 0  # complete lines that are not a valid risk record (see records.py)
    overlong: int = 0  # of those, lines longer than MAX_LINE (skipped unread)
    latency_exact: bool = True  # False: latencies were bucketed (see MAX_LATENCY_KEYS)
    torn: int = 0  # an unterminated, unparseable fragment at the end of a file
    outside_window: int = 0
    blank: int = 0
    lines: int = 0
    legacy: int = 0  # records in the window with no ``schema``: the original application's
    #: when to stop reading for too many foreign lines (``limits.GiveUp``); None: never
    give_up: GiveUp | None = None

    def merge(self, other: Tally) -> None:
        self.records.update(other.records)
        self._check_records()
        if not other.latency_exact:
            self._coarsen()
        self._add_latencies(other.latencies, bucketed=not other.latency_exact)
        self.foreign += other.foreign
        self.overlong += other.overlong
        self.torn += other.torn
        self.outside_window += other.outside_window
        self.blank += other.blank
        self.lines += other.lines
        self.legacy += other.legacy

    # -- chunks of complete lines ---------------------------------------------------------
    def add_chunk(self, data: bytes, start: int = 0, end: int | None = None) -> None:
        """Count ``data[start:end]``: whole lines, each ending in ``\\n``.

        Offsets instead of a slice: a slice would copy megabytes per block for nothing.
        """
        end = len(data) if end is None else end
        n = data.count(b"\n", start, end)
        if not n:
            return
        if not self.window.open:
            where = self._one_hour(data, start, end, n)
            if where == "out" and data.count(_UTC, start, end) == n:  # all n wholly outside
                self.lines += n
                self.outside_window += n
                return
            if where != "in":
                data = self._in_window(data[start:end].split(b"\n")[:n])
                start, end, n = 0, len(data), data.count(b"\n")
        found = LINE.findall(data, start, end)
        if len(found) == n:
            self.lines += n
            # map/itemgetter: no Python per line; then one step per distinct key (a few)
            for key, count in Counter(map(_KEY, found)).items():
                self.records[_canonical(key)] += count
            self._check_records()
            if self.latency_exact:
                self.latencies.update(map(_LATENCY, found))  # C speed, the common case
                if len(self.latencies) > MAX_LATENCY_KEYS:
                    self._coarsen()
            else:
                self._add_latencies(Counter(map(_LATENCY, found)))
            return
        for line in data[start:end].split(b"\n")[:n]:
            self.add_line(line)

    def _one_hour(self, data: bytes, start: int, end: int, n: int) -> str | None:
        """Where the chunk's hour lies ("in", "out", "edge"), if all n lines share one hour."""
        if not data.startswith(_HOUR_PREFIX, start):
            return None
        at = start + len(_HOUR_PREFIX)
        hour = data[at : at + 13]
        return self.window.hour(hour) if data.count(_HOUR_PREFIX + hour, start, end) == n else None

    def _in_window(self, lines: list[bytes]) -> bytes:
        """The lines of ``lines`` inside the window (as a chunk), the rest counted as outside.

        Reads only the hour prefix when that hour lies wholly inside or outside the window and
        the full timestamp in the boundary hours; lines of any other shape are kept, for the
        slow path to judge. Records dropped as outside the window are not validated further.
        """
        keep: list[bytes] = []
        state: dict[bytes, str] = {}
        at = len(_HOUR_PREFIX)
        for line in lines:
            if not line.startswith(_HOUR_PREFIX):
                keep.append(line)
                continue
            hour = line[at : at + 13]
            where = state.get(hour) or state.setdefault(hour, self.window.hour(hour))
            if where == "edge" or (where == "out" and line.find(_UTC, at) < 0):
                ts = parse_time(line[at : line.find(b'"', at)].decode("utf-8", "replace"))
                where = "in" if ts is None or self.window.contains(ts) else "out"
            if where == "in":
                keep.append(line)
            else:
                self.lines += 1
                self.outside_window += 1
        return b"".join(line + b"\n" for line in keep)

    # -- single lines (slow path) ---------------------------------------------------------
    def add_line(self, line: bytes, *, final: bool = False) -> None:
        """Count one line (no ``\\n``). ``final``: an unterminated end-of-file fragment."""
        if len(line) > MAX_LINE:
            self.add_overlong(final=final)
            return
        self.lines += 1
        if not line.strip():
            self.blank += 1
            return
        parsed = parse_line(line)
        if parsed is None:
            if final:
                self.torn += 1
            else:
                self.foreign += 1
                self._check_foreign()
            return
        (ts, (hour, status, reason, latency, intent, entity, mode, agree)), legacy = parsed
        if not self.window.open and not self.window.contains(ts):
            self.outside_window += 1
            return
        self.legacy += legacy
        self.records[(hour, status, reason, intent, entity, mode, agree)] += 1
        self._check_records()
        self._add_latencies(Counter({(status, latency): 1}))

    def add_overlong(self, *, final: bool = False) -> None:
        """A line longer than ``MAX_LINE``: foreign (torn at the end of a file), never read."""
        self.lines += 1
        self.overlong += 1
        if final:
            self.torn += 1
        else:
            self.foreign += 1
            self._check_foreign()

    def add_tail(self, fragment: bytes) -> None:
        """The bytes after a file's last newline: a record missing its newline, or torn."""
        if fragment:
            self.add_line(fragment, final=True)

    # -- bounds -----------------------------------------------------------------------------
    def _check_foreign(self) -> None:
        give_up = self.give_up
        if give_up is None:
            return
        if self.foreign > give_up.limit:
            raise InputError(
                f"cannot evaluate: more than {give_up.limit:,} lines are not valid risk records, "
                "too large a share of the most records this input can hold: not a risk log "
                "(stopped reading)"
            )
        read = self.lines - self.blank
        if self.foreign >= PREFIX_FOREIGN_FLOOR and self.foreign > give_up.share * read:
            raise InputError(
                f"cannot evaluate: {self.foreign:,} of {read:,} lines read are not valid risk "
                f"records, over {give_up.share:.0%}: not a risk log (stopped reading)"
            )

    def _check_records(self) -> None:
        if len(self.records) > MAX_RECORD_KEYS:
            raise InputError(
                f"more than {MAX_RECORD_KEYS:,} distinct (hour, outcome) groups: timestamps "
                "are spread too widely to judge; narrow the input with --since/--until"
            )

    def _add_latencies(self, counts: Counter[LatKey], *, bucketed: bool = False) -> None:
        """Add (status, latency) counts; bucket them once the exact set grew too large."""
        lat = self.latencies
        if self.latency_exact or bucketed:
            lat.update(counts)
            if self.latency_exact and len(lat) > MAX_LATENCY_KEYS:
                self._coarsen()
            return
        for (status, token), n in counts.items():
            lat[(status, _bucket(token))] += n

    def _coarsen(self) -> None:
        """Switch to bucketed latencies for good (see ``limits.MAX_LATENCY_KEYS``)."""
        if self.latency_exact:
            exact, self.latencies, self.latency_exact = self.latencies, Counter(), False
            self._add_latencies(exact)


def _canonical(key: Key) -> Key:
    """The key with an absent mode read as canary and an absent agreement as null."""
    if key[5] and key[6]:
        return key
    return (*key[:5], key[5] or b"canary", key[6] or b"null")


_LOG_RATIO: Final = math.log(LATENCY_BUCKET_RATIO)
_FLOOR_MS: Final = 0.01  # the writer's resolution; smaller latencies share one bucket


def _bucket(token: bytes) -> bytes:
    """The representative of a latency's log-spaced bucket (its geometric midpoint)."""
    if token == b"null":
        return token
    value = float(token)
    if value < _FLOOR_MS:
        return b"0"
    index = math.floor(math.log(value / _FLOOR_MS) / _LOG_RATIO)
    return repr(_FLOOR_MS * LATENCY_BUCKET_RATIO ** (index + 0.5)).encode()
