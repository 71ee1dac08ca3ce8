"""The runbook's stage gates as data: go criteria, rollback criteria, one verdict.

Verdict: ROLLBACK (exit 2) if any rollback criterion fires; GO (exit 0) only if every go
criterion passes; otherwise NO-GO, hold the stage (exit 1). A criterion whose figure is
missing (zero denominator, no latencies, too few windows) is ``insufficient-data``: it never
passes, so missing data or too few samples can never give GO; it never fires a rollback
either, because absence of evidence is a reason to hold, not to roll back.

Cannot evaluate (exit 3, never GO): a risk log where more than 1% of the non-blank lines are
not valid risk records (foreign or torn), or with fewer than 10 valid records in the window.
Garbage is not evidence, and a wrong file or window must not read as "hold" or "go".

Lines. Every number is in ``partial_trust.thresholds`` (the one table the alerts, the HTML
report and the dashboard read too). Rollback lines are the effective ones of the one rule
there: the stricter of the stage's own line and the monitoring table's rollback line, so
stage 1 rolls back above 5% errors (the monitoring table's "Rollback immediately"), not 10%,
and the gate says ROLLBACK exactly where the alerts page. Stage 2's "regression vs Stage 1
metrics" is read as "fails a stage-1 go bar"; stage 3 rolls back when it regresses past the
stage-2 go bars that admitted it. Rollback lines need no minimum sample: a canary that fails
on its first requests should come back; rolling back is cheap.

Timeout. A p95 cannot exceed the LLM timeout (default 200 ms, capped by the profile at
500 ms), so a latency line at or above it cannot fail; the criterion says so, and the go line
``timeout_share <= 0.05`` (llm_timeout / sampled) shows when the p95 reached the timeout.

Stable acceptance_rate (stages 2 and 3). Sampled records are grouped into consecutive UTC
windows of ``window_hours`` (default 24: calendar days, the runbook's daily check). A window
with fewer than ``min_window_sampled`` (default 50) sampled records is pooled with the next
one (a short last window with the previous one), so every window carries enough evidence.
Stable iff there are at least 2 windows and no window's acceptance_rate is more than 20%
(relative) below the previous window's: rate[i] >= 0.8 * rate[i-1]. A drop of exactly 20%
is still stable. Fewer than 2 windows is insufficient-data.

HOLD (exit 1, like NO-GO): the data say GO but the stage has not yet run its minimum
duration at its sample rate (``durations``: 3, 5, 7 days). ``held`` applies it to a verdict:
only GO ever becomes HOLD; NO-GO, ROLLBACK and CANNOT-EVALUATE are never softened to it.
"""

from __future__ import annotations

import contextlib
import enum
import itertools
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Final

from partial_trust import thresholds
from partial_trust.apps.analysis.durations import Duration
from partial_trust.apps.analysis.figures import Figures, HourCounts
from partial_trust.apps.analysis.limits import MAX_FOREIGN_SHARE, MIN_RECORDS
from partial_trust.thresholds import TIMEOUT_SHARE_LINE, Bound, Stage, rollback_lines

__all__ = ["STAGES", "Bound", "Criterion", "Result", "Stage", "Verdict", "evaluate"]

MAX_RELATIVE_DROP: Final = 0.20


class Result(enum.StrEnum):
    PASS = "pass"
    FAIL = "fail"  # a go criterion not met, or a rollback line crossed
    INSUFFICIENT = "insufficient-data"


class Verdict(enum.StrEnum):
    GO = "GO"
    NO_GO = "NO-GO"
    ROLLBACK = "ROLLBACK"
    CANNOT_EVALUATE = "CANNOT-EVALUATE"  # the input is not evidence; see ``unevaluable``
    HOLD = "HOLD"  # GO on the data, but the stage's minimum duration is not met: see ``held``

    @property
    def exit_code(self) -> int:
        codes = {Verdict.GO: 0, Verdict.NO_GO: 1, Verdict.HOLD: 1, Verdict.ROLLBACK: 2}
        return codes.get(self, 3)


#: every stage's go and rollback lines come from the one table (``partial_trust.thresholds``):
#: rollback lines are the effective ones (the stricter of the stage's and the monitoring
#: table's), plus a go line on the timeout share that shows when the timeout hides latency.
TIMEOUT_SHARE: Final = Bound("timeout_share", "<=", TIMEOUT_SHARE_LINE)
STAGES: Final = {
    n: replace(s, go=(*s.go, TIMEOUT_SHARE), rollback=rollback_lines(n))
    for n, s in thresholds.STAGES.items()
}

_OPS: Final[dict[str, Callable[[float, float], bool]]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


@dataclass(frozen=True, slots=True)
class Criterion:
    kind: str  # "go" | "rollback"
    bound: Bound
    value: float | None
    result: Result
    detail: str = ""

    @property
    def text(self) -> str:
        b = self.bound
        if b.figure == "stable_acceptance":
            return "acceptance_rate stable (no window drop > 20%)"
        if b.figure == "timeout_share":
            return f"timeout_share (llm_timeout / sampled) {b.op} {b.limit:g}"
        unit = " ms" if b.figure == "latency_p95" else ""
        return f"{b.figure} {b.op} {b.limit:g}{unit}"


@dataclass(frozen=True, slots=True)
class Stability:
    windows: tuple[tuple[str, int, int], ...]  # (first hour, sampled, accepted_llm)
    stable: bool | None  # None: fewer than 2 windows
    worst_drop: float | None  # largest relative window-over-window drop seen


def stability(
    hours: Sequence[HourCounts], window_hours: int = 24, min_sampled: int = 50
) -> Stability:
    """Acceptance-rate stability; the definition is in the module docstring."""
    buckets: dict[int, tuple[str, int, int]] = {}
    for h in sorted(hours, key=lambda h: h.hour):
        with contextlib.suppress(ValueError):  # an hour that is no date cannot be placed
            if h.sampled <= 0:
                continue
            index = _hour_index(h.hour) // max(1, window_hours)
            first, sampled, accepted = buckets.get(index, (h.hour, 0, 0))
            buckets[index] = (first, sampled + h.sampled, accepted + h.accepted_llm)
    windows: list[tuple[str, int, int]] = []
    pending: tuple[str, int, int] | None = None
    for _, cur in sorted(buckets.items()):
        if pending is not None:
            cur = (pending[0], pending[1] + cur[1], pending[2] + cur[2])
        pending = None if cur[1] >= min_sampled else cur
        if pending is None:
            windows.append(cur)
    if pending is not None and windows:
        last = windows.pop()
        windows.append((last[0], last[1] + pending[1], last[2] + pending[2]))
    if len(windows) < 2:
        return Stability(tuple(windows), None, None)
    drops = [
        (a[2] / a[1] - b[2] / b[1]) / (a[2] / a[1]) if a[2] else 0.0
        for a, b in itertools.pairwise(windows)
    ]
    worst = max(drops)
    # A tiny epsilon so that a drop of exactly 20% is not lost to float rounding.
    return Stability(tuple(windows), worst <= MAX_RELATIVE_DROP + 1e-12, worst)


def _hour_index(hour: str) -> int:
    return int(datetime.strptime(hour, "%Y-%m-%dT%H").replace(tzinfo=UTC).timestamp()) // 3600


def _value(figures: Figures, figure: str, stab: Stability) -> float | None:
    if figure == "latency_p95":
        return figures.latency_p95
    if figure == "sampled":
        return float(figures.sampled)
    if figure == "stable_acceptance":
        return None if stab.stable is None else float(stab.stable)
    if figure == "timeout_share":
        timeouts = figures.reason_counts.get("llm_timeout", 0)
        return timeouts / figures.sampled if figures.sampled else None
    return figures.rates()[figure].value


def _timeout_note(limit_ms: float, timeout_ms: int | None) -> str:
    """Why a latency line may be unable to fail: a p95 never exceeds the LLM timeout."""
    share = f"timeout_share > {TIMEOUT_SHARE_LINE:g} shows the p95 reached the timeout"
    if timeout_ms is None:
        return (
            f"cannot fail while the LLM timeout is <= {limit_ms:g} ms (default "
            f"{thresholds.DEFAULT_TIMEOUT_MS} ms, profile cap {thresholds.DEFAULT_PROFILE_CAP_MS}"
            f" ms): {share}"
        )
    if not thresholds.latency_line_reachable(limit_ms, timeout_ms):
        return f"cannot fail: the LLM timeout ({timeout_ms} ms) is not above it; {share}"
    return ""


def unevaluable(figures: Figures) -> str | None:
    """Why ``figures`` cannot be judged at all (see the module docstring), or None."""
    info = figures.input
    odd = int(info.get("foreign_lines", 0)) + int(info.get("torn_lines", 0))
    judged = int(info.get("lines", 0)) - int(info.get("blank_lines", 0))
    if odd and odd > MAX_FOREIGN_SHARE * judged:
        return (
            f"{odd:,} of {judged:,} lines ({odd / max(judged, 1):.1%}) are not valid risk "
            f"records (the bound is {MAX_FOREIGN_SHARE:.0%})"
        )
    if figures.records < MIN_RECORDS:
        return (
            f"{figures.records:,} valid risk record(s) in the window, fewer than {MIN_RECORDS}: "
            "wrong file or window?"
        )
    return None


def evaluate(
    figures: Figures,
    stage: int,
    *,
    window_hours: int = 24,
    min_window_sampled: int = 50,
    min_sampled: int | None = None,
    timeout_ms: int | None = None,
) -> tuple[Verdict, list[Criterion], Stability]:
    """Judge ``figures`` against ``stage``; see the module docstring for the rules.

    ``timeout_ms``: the LLM timeout in force, when the caller knows it; latency criteria it
    hides say so (unknown: they say which timeout would hide them)."""
    spec = STAGES[stage]
    stab = stability(figures.hours, window_hours, min_window_sampled)
    out: list[Criterion] = []
    for kind, bounds in (("go", spec.go), ("rollback", spec.rollback)):
        for bound in bounds:
            if bound.figure == "sampled" and min_sampled is not None:
                bound = Bound("sampled", ">=", max(bound.limit, float(min_sampled)))
            value = _value(figures, bound.figure, stab)
            if value is None:
                result = Result.INSUFFICIENT
            else:
                met = _OPS[bound.op](value, bound.limit)
                # go: met is a pass; rollback: met means the line was crossed.
                result = Result.PASS if met == (kind == "go") else Result.FAIL
            detail = ""
            if bound.figure == "stable_acceptance" and stab.worst_drop is not None:
                detail = f"{len(stab.windows)} windows, worst drop {stab.worst_drop:.1%}"
            elif bound.figure == "stable_acceptance":
                detail = f"{len(stab.windows)} window(s) with >= {min_window_sampled} sampled"
            elif bound.figure == "latency_p95":
                detail = _timeout_note(bound.limit, timeout_ms)
            out.append(Criterion(kind, bound, value, result, detail))
    return verdict_of(figures, out), out, stab


def verdict_of(figures: Figures, criteria: list[Criterion]) -> Verdict:
    """The one rule every gate applies to its criteria: data that is not evidence cannot be
    evaluated; any crossed rollback line rolls back; every go line met is GO; else NO-GO."""
    if unevaluable(figures) is not None:
        return Verdict.CANNOT_EVALUATE
    if any(c.kind == "rollback" and c.result is Result.FAIL for c in criteria):
        return Verdict.ROLLBACK
    if all(c.result is Result.PASS for c in criteria if c.kind == "go"):
        return Verdict.GO
    return Verdict.NO_GO


def held(verdict: Verdict, duration: Duration) -> Verdict:
    """GO becomes HOLD until ``duration`` is met (an unknown start is never met); any other
    verdict is returned as it is: a NO-GO, ROLLBACK or CANNOT-EVALUATE is never softened."""
    return Verdict.HOLD if verdict is Verdict.GO and not duration.done else verdict
