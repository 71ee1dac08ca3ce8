"""``gate --stage shadow``: may the corridor leave shadow for the first canary stage?

Every number is in ``partial_trust.thresholds.SHADOW`` (the one table). Judged over the
records with ``mode: shadow`` only (a canary record says nothing about shadow):

* go: ``agreement_rate`` (shadow) strictly above the line of the week the shadow run is in:
  week 1 (elapsed < 7 days) ``agreement_week1`` (80%), from week 2 on ``agreement_week2``
  (90%); an unknown start takes week 2's line. The minimum duration is one week, so GO always
  needs the week-2 line; in week 1 the week-1 line tells "on track" (HOLD) from "off track"
  (NO-GO).
* go: at least ``min_records`` shadow records with an agreement verdict (true or false):
  fewer is never GO, whatever the rate.
* go / rollback: the shadow error_rate against stage 1's error lines (the stage GO leads to):
  at or above its go line holds, above its effective rollback line is ROLLBACK.

Then the verdict rules of ``gate``: CANNOT-EVALUATE when the input is not evidence, ROLLBACK
when a rollback line is crossed, GO only when every go criterion passes (a missing figure is
insufficient-data, never a pass), else NO-GO; GO becomes HOLD until the shadow run has lasted
``min_days`` (``durations.shadow_duration``). Exit codes as for the other stages.
"""

from __future__ import annotations

import operator
from typing import Final

from partial_trust import thresholds
from partial_trust.apps.analysis.durations import Duration
from partial_trust.apps.analysis.figures import Figures
from partial_trust.apps.analysis.gate import Criterion, Result, Verdict, verdict_of
from partial_trust.thresholds import SHADOW, Bound

MODE: Final = "shadow"
_NEXT: Final = SHADOW.next_stage


def _error_lines() -> tuple[float, float]:
    go = thresholds.go_line(_NEXT, "error_rate")
    rollback = thresholds.rollback_line(_NEXT, "error_rate")
    assert go is not None and rollback is not None  # stage 1 has both in the table
    return go, rollback


def agreement_line(duration: Duration) -> float:
    """The agreement line for the week the shadow run is in (unknown start: week 2's)."""
    days = None if duration.elapsed_s is None else duration.elapsed_s / 86400
    return SHADOW.agreement_line(days)


def _judge(kind: str, bound: Bound, value: float | None, detail: str = "") -> Criterion:
    if value is None:
        return Criterion(kind, bound, value, Result.INSUFFICIENT, detail)
    ops = {"<": operator.lt, ">": operator.gt, ">=": operator.ge}
    met = ops[bound.op](value, bound.limit)
    return Criterion(
        kind, bound, value, Result.PASS if met == (kind == "go") else Result.FAIL, detail
    )


def evaluate(figures: Figures, duration: Duration) -> tuple[Verdict, list[Criterion]]:
    """The data verdict of the shadow stage (before the duration; see ``held``)."""
    agreement = figures.agreement_rate_of(MODE)
    errors = figures.status_rate_of(MODE, "error")
    line = agreement_line(duration)
    week = "week 1" if line == SHADOW.agreement_week1 else "week 2 on"
    go_err, rollback_err = _error_lines()
    out = [
        _judge(
            "go",
            Bound("agreement_rate", ">", line),
            agreement.value,
            f"{agreement.numerator:,} / {agreement.denominator:,} shadow records; the {week} line",
        ),
        _judge(
            "go",
            Bound("agreement_records", ">=", SHADOW.min_records),
            float(agreement.denominator),
        ),
        _judge("go", Bound("error_rate", "<", go_err), errors.value, "shadow records only"),
        _judge(
            "rollback", Bound("error_rate", ">", rollback_err), errors.value, "shadow records only"
        ),
    ]
    return verdict_of(figures, out), out


MANUAL: Final = (
    "disagreements reviewed (seed 004: identify patterns, save edge cases)",
    "no LLM provider outage",
)
