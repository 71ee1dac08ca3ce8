"""The runbook's minimum stage durations, and how long a stage has run at its sample rate.

A stage may be left only after it ran its minimum duration AT ITS SAMPLE RATE (stage 1: 3 days
at 1%, stage 2: 5 days at 5%, stage 3: 7 days at 10%): one hour of good records is not three
days of them. ``gate --stage N`` turns GO into HOLD until then (``gate.held``); the console
shows the time left and refuses "next stage" on HOLD without an explicit override.

Where the clock starts, first answer wins:

1. ``--since`` (the operator says when the stage started): source ``--since``.
2. The flag audit log (``PARTIAL_TRUST_FLAGS_AUDIT_LOG``): the latest *run* at the stage's
   rate. A run starts when the sample rate is set to that rate (a ``partial-trust-sample-rate``
   line, or a resume line's ``sample_rate_new``) or when the corridor is turned back on at it
   (an enable line); it ends at the next change of rate, or at a kill (console, CLI or
   auto-rollback). So a sample-rate change resets the clock, and time spent killed never
   counts. Source ``flag-audit-log``.
3. The risk log: the first record of the latest unbroken run of records carrying the stage's
   ``sample_rate`` (records at another rate end the run; ``null`` rates are ignored). The
   risk log cannot see a kill (a killed corridor writes nothing), so it is the fallback only.
   Source ``risk-log``.
4. Nothing: the start is unknown, and an unknown start is never "long enough" (HOLD, with a
   message that names ``--since``). Source ``none``.

Elapsed time runs to the end of the run (the rate changed, or a kill), else to ``--until``
or now, whichever is earlier; a start in the future counts as 0.

The table below is the one place for the durations and stage rates. It is meant to be folded
into the shared thresholds table (``partial_trust/thresholds.py``: ``Stage.sample_rate``,
``Stage.min_days``) once that lands; until then everything reads it from here. Standard library
only: ``partial_trust.flags.flagfile`` imports the stage-1 rate from here.
"""

from __future__ import annotations

import json
import math
import os
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

from partial_trust.environment import Environment
from partial_trust.thresholds import SHADOW, STAGES

#: the runbook's stage presets: sample rate of stage 1, 2, 3 (1% -> 5% -> 10%), from the table
STAGE_SAMPLE_RATE: Final[dict[int, float]] = {n: s.sample_rate for n, s in STAGES.items()}
#: the runbook's minimum duration of each stage at its sample rate, from the table
STAGE_MIN_DURATION: Final[dict[int, timedelta]] = {
    n: timedelta(days=s.min_days) for n, s in STAGES.items()
}
AUDIT_ENV: Final = "PARTIAL_TRUST_FLAGS_AUDIT_LOG"
DEFAULT_AUDIT_LOG: Final = "logs/partial_trust_flag_audit.jsonl"
SAMPLE_RATE_KEY: Final = "partial-trust-sample-rate"
ENABLED_KEY: Final = "partial-trust-enabled"
MAX_AUDIT_LINE: Final = 64 * 1024  # longer lines are not the console's: skipped
_EPS: Final = 1e-9
#: ``Duration.stage`` of the shadow stage (before stage 1; ``thresholds.SHADOW``)
SHADOW_STAGE: Final = 0
SHADOW_MIN_DURATION: Final = timedelta(days=SHADOW.min_days)

Run = tuple[datetime, datetime | None]  # start, end (None: still running)


class DurationError(ValueError):
    """The audit log named for the clock cannot be read (the gate turns it into exit 3)."""


def same_rate(a: float, b: float) -> bool:
    return math.isclose(a, b, abs_tol=_EPS)


def default_audit_log(env: Environment) -> Path:
    return Path(env.get(AUDIT_ENV) or DEFAULT_AUDIT_LOG)


def rfc3339(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def human(seconds: float) -> str:
    """``2 d 22 h 58 min``, ``1 h 02 min``, ``7 min`` (whole minutes, rounded down)."""
    minutes = max(0, int(seconds)) // 60
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    if days:
        return f"{days} d {hours:02d} h {mins:02d} min"
    if hours:
        return f"{hours} h {mins:02d} min"
    return f"{mins} min"


@dataclass(frozen=True, slots=True)
class Duration:
    """How long ``stage`` has run at its rate, against its minimum."""

    stage: int
    required_s: int
    elapsed_s: int | None  # None: the start is unknown
    since: str | None  # RFC 3339 start of the run
    until: str | None  # RFC 3339 end of the run when it ended (rate changed, killed)
    source: str  # "--since" | "flag-audit-log" | "risk-log" | "none"

    @property
    def left_s(self) -> int | None:
        return None if self.elapsed_s is None else max(0, self.required_s - self.elapsed_s)

    @property
    def done(self) -> bool:
        return self.left_s == 0

    @property
    def rate(self) -> float:
        return STAGE_SAMPLE_RATE[self.stage]

    def summary(self) -> str:
        """One line: ``stage 1 has run 1 h 02 min of its 3 days at 1%; 2 d 22 h 58 min left``."""
        days = self.required_s // 86400
        if self.stage == SHADOW_STAGE:
            return self._shadow_summary(days)
        of = f"of its {days} days at {self.rate:.0%}"
        if self.elapsed_s is None:
            return (
                f"stage {self.stage} needs {days} days at {self.rate:.0%}, and when it started "
                "is unknown (no sample-rate change to it in the flag audit log, no risk record "
                "at that rate): pass --since RFC3339 to say when"
            )
        ran = f"stage {self.stage} has run {human(self.elapsed_s)} {of}"
        ended = f" (the run ended {self.until})" if self.until else ""
        if self.done:
            return f"{ran}{ended}: the minimum duration is met"
        return f"{ran}{ended}; {human(self.left_s or 0)} left"

    def _shadow_summary(self, days: int) -> str:
        if self.elapsed_s is None:
            return (
                f"shadow needs {days} days in shadow mode, and when it started is unknown (no "
                "risk record with mode shadow): pass --since RFC3339 to say when"
            )
        ran = f"shadow has run {human(self.elapsed_s)} of its {days} days"
        ended = f" (the run ended {self.until})" if self.until else ""
        if self.done:
            return f"{ran}{ended}: the minimum duration is met"
        return f"{ran}{ended}; {human(self.left_s or 0)} left"

    def to_json(self) -> dict[str, Any]:
        return {
            "required_s": self.required_s,
            "elapsed_s": self.elapsed_s,
            "left_s": self.left_s,
            "since": self.since,
            "until": self.until,
            "source": self.source,
            "summary": self.summary(),
        }


def _time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        ts = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except (ValueError, OverflowError):
        return None
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def read_audit(path: Path) -> list[dict[str, Any]]:
    """The audit log's JSON objects, oldest first; [] when it does not exist.

    Opened without blocking and only if it is a regular file (a FIFO at the path never hangs
    the gate); lines that are not JSON objects, or longer than ``MAX_AUDIT_LINE``, are skipped.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return []
    except OSError as exc:
        why = exc.strerror or exc
        raise DurationError(f"cannot read the flag audit log {str(path)!r}: {why}") from exc
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise DurationError(f"the flag audit log {str(path)!r} is not a regular file")
    with os.fdopen(fd, "rb") as f:
        out = []
        for line in f:
            if len(line) > MAX_AUDIT_LINE:
                continue
            try:
                item = json.loads(line)
            except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
                continue
            if isinstance(item, dict):
                out.append(item)
    return out


def audit_run(records: Iterable[dict[str, Any]], rate: float, until: datetime) -> Run | None:
    """The latest run at ``rate`` in audit ``records`` before ``until`` (module docstring)."""
    events = sorted(
        ((ts, r) for r in records if (ts := _time(r.get("time"))) is not None and ts < until),
        key=lambda e: e[0],
    )
    current: float | None = None
    enabled = True  # unknown counts as on: the clock starts at the rate change
    start: datetime | None = None
    last: Run | None = None
    for ts, r in events:
        new_rate = _number(r.get("sample_rate_new"))
        if r.get("key") == SAMPLE_RATE_KEY:
            new_rate = _number(r.get("new"))
        if new_rate is not None:
            if start is not None and not same_rate(new_rate, rate):
                last, start = (start, ts), None
            current = new_rate
        if r.get("key") == ENABLED_KEY and isinstance(r.get("new"), bool):
            if not r["new"] and start is not None:
                last, start = (start, ts), None
            enabled = r["new"]
        running = enabled and current is not None and same_rate(current, rate)
        if running and start is None:
            start = ts
        elif running and new_rate is not None and r.get("key") == SAMPLE_RATE_KEY:
            start = ts  # the rate was set again to the same value: a fresh start, as asked
    return (start, None) if start is not None else last


def stage_duration(
    stage: int,
    *,
    since: datetime | None = None,
    audit_log: Path | None = None,
    risk_logs: Sequence[Path] = (),
    until: datetime | None = None,
    now: datetime | None = None,
) -> Duration:
    """How long ``stage`` has run at its sample rate; the sources in the module docstring."""
    now = now or datetime.now(UTC)
    end_of_view = min(now, until) if until is not None else now
    rate = STAGE_SAMPLE_RATE[stage]
    run: Run | None = None
    source = "none"
    if since is not None:
        run, source = (since, None), "--since"
    if run is None and audit_log is not None:
        run = audit_run(read_audit(audit_log), rate, end_of_view)
        source = "flag-audit-log" if run is not None else source
    if run is None and risk_logs:
        from partial_trust.apps.analysis.stage_start import risk_log_run

        run = risk_log_run(risk_logs, rate, end_of_view)
        source = "risk-log" if run is not None else source
    return from_run(stage, run, source, end_of_view)


def shadow_duration(
    *,
    since: datetime | None = None,
    risk_logs: Sequence[Path] = (),
    until: datetime | None = None,
    now: datetime | None = None,
) -> Duration:
    """How long the shadow stage has run: from ``--since``, else from the first record with
    ``mode: shadow`` of the latest unbroken run of such records in the risk log (a record in
    another mode ends the run); unknown otherwise (never long enough)."""
    now = now or datetime.now(UTC)
    end_of_view = min(now, until) if until is not None else now
    run: Run | None = None
    source = "none"
    if since is not None:
        run, source = (since, None), "--since"
    elif risk_logs:
        from partial_trust.apps.analysis.stage_start import risk_log_mode_run

        run = risk_log_mode_run(risk_logs, "shadow", end_of_view)
        source = "risk-log" if run is not None else source
    return from_run(SHADOW_STAGE, run, source, end_of_view)


def from_run(stage: int, run: Run | None, source: str, end_of_view: datetime) -> Duration:
    """The ``Duration`` of ``run`` (None: unknown start), counted up to ``end_of_view``."""
    minimum = SHADOW_MIN_DURATION if stage == SHADOW_STAGE else STAGE_MIN_DURATION[stage]
    required = int(minimum.total_seconds())
    if run is None:
        return Duration(stage, required, None, None, None, "none")
    start, end = run
    elapsed = max(0, int(((end or end_of_view) - start).total_seconds()))
    return Duration(stage, required, elapsed, rfc3339(start), rfc3339(end) if end else None, source)
