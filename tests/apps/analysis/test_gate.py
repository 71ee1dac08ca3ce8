"""Stage gates at every boundary: just below, at and just above each threshold, per stage.

Figures are built directly (the gate judges a ``Figures``, whatever its source), with
denominators of 10 000 so "just above/below" is one record: 0.0499 / 0.05 / 0.0501.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from partial_trust import thresholds
from partial_trust.apps.analysis.figures import Figures, HourCounts
from partial_trust.apps.analysis.gate import STAGES, Bound, Result, Verdict, evaluate, stability

N = 10_000
DAY1, DAY2 = "2026-11-23T%02d", "2026-11-24T%02d"


def stable_hours(
    accept: tuple[float, float] = (0.9, 0.9), per_day: int = N // 2
) -> tuple[HourCounts, ...]:
    return tuple(
        HourCounts(day % 12, per_day, round(per_day * a), 0)
        for day, a in ((DAY1, accept[0]), (DAY2, accept[1]))
    )


def figs(
    *,
    sampled: int = N,
    errors: int = 0,
    intent_false: int = 0,
    p95: float | None = 100.0,
    hours: tuple[HourCounts, ...] | None = None,
) -> Figures:
    return Figures(
        records=sampled,
        status_counts={"accepted_llm": sampled - errors, "fallback_deterministic": 0,
                       "error": errors, "skipped": 0},
        reason_counts={},
        intent_match={"true": N - intent_false, "false": intent_false, "null": 0},
        entity_key_match={"true": N, "false": 0, "null": 0},
        latency_count=sampled,
        latency_p95=p95,
        hours=stable_hours() if hours is None else hours,
    )  # fmt: skip


def result(fig: Figures, stage: int, kind: str, figure: str) -> tuple[Verdict, Result]:
    verdict, criteria, _ = evaluate(fig, stage)
    (c,) = [c for c in criteria if c.kind == kind and c.bound.figure == figure]
    return verdict, c.result


@pytest.mark.parametrize("stage", [1, 2, 3])
def test_healthy_figures_are_go(stage: int) -> None:
    verdict, criteria, _ = evaluate(figs(), stage)
    assert verdict is Verdict.GO, criteria
    assert all(c.result is Result.PASS for c in criteria)


GO_RATE = [  # stage, figure, go limit (strictly below passes)
    (1, "error_rate", 0.05), (1, "intent_mismatch_rate", 0.10),
    (2, "error_rate", 0.03), (2, "intent_mismatch_rate", 0.05),
    (3, "error_rate", 0.02), (3, "intent_mismatch_rate", 0.05),
]  # fmt: skip


def _with(figure: str, count: int) -> Figures:
    return figs(errors=count) if figure == "error_rate" else figs(intent_false=count)


@pytest.mark.parametrize(("stage", "figure", "limit"), GO_RATE)
def test_go_rate_boundaries(stage: int, figure: str, limit: float) -> None:
    at = round(limit * N)
    assert result(_with(figure, at - 1), stage, "go", figure) == (Verdict.GO, Result.PASS)
    for count in (at, at + 1):  # at the limit is not below it: hold (no rollback line here)
        assert result(_with(figure, count), stage, "go", figure)[1] is Result.FAIL
        assert result(_with(figure, count), stage, "go", figure)[0] is not Verdict.GO


ROLLBACK_RATE = [  # stage, figure, effective rollback line (strictly above fires)
    # stage 1: the monitoring table's 5% "Rollback immediately" is stricter than the stage's
    # own 10% line, and the stricter line wins (partial_trust/thresholds.py, the one rule)
    (1, "error_rate", 0.05),
    (2, "error_rate", 0.05), (2, "intent_mismatch_rate", 0.10),
    (3, "error_rate", 0.03), (3, "intent_mismatch_rate", 0.05),
]  # fmt: skip


@pytest.mark.parametrize(("stage", "figure", "line"), ROLLBACK_RATE)
def test_rollback_rate_boundaries(stage: int, figure: str, line: float) -> None:
    at = round(line * N)
    for count in (at - 1, at):
        verdict, res = result(_with(figure, count), stage, "rollback", figure)
        assert res is Result.PASS and verdict is not Verdict.ROLLBACK
    assert result(_with(figure, at + 1), stage, "rollback", figure) == (
        Verdict.ROLLBACK,
        Result.FAIL,
    )


@pytest.mark.parametrize(
    ("stage", "go", "rollback"), [(1, 500, None), (2, 400, 500), (3, 300, 400)]
)
def test_latency_boundaries(stage: int, go: float, rollback: float | None) -> None:
    assert result(figs(p95=go - 0.01), stage, "go", "latency_p95") == (Verdict.GO, Result.PASS)
    assert result(figs(p95=go), stage, "go", "latency_p95") == (Verdict.NO_GO, Result.FAIL)
    assert result(figs(p95=go + 0.01), stage, "go", "latency_p95")[1] is Result.FAIL
    if rollback is not None:
        assert result(figs(p95=rollback), stage, "rollback", "latency_p95")[0] is Verdict.NO_GO
        above = result(figs(p95=rollback + 0.01), stage, "rollback", "latency_p95")
        assert above == (Verdict.ROLLBACK, Result.FAIL)


@pytest.mark.parametrize(("stage", "minimum"), [(1, 50), (2, 200), (3, 200)])
def test_minimum_sampled(stage: int, minimum: int) -> None:
    hours = stable_hours(per_day=max(minimum // 2, 50))
    ok = figs(sampled=minimum, hours=hours)
    assert result(ok, stage, "go", "sampled") == (Verdict.GO, Result.PASS)
    short = figs(sampled=minimum - 1, hours=hours)
    assert result(short, stage, "go", "sampled") == (Verdict.NO_GO, Result.FAIL)


@pytest.mark.parametrize("stage", [1, 2, 3])
def test_no_data_is_never_go_and_never_rollback(stage: int) -> None:
    empty = Figures(0, {}, {}, {}, {}, 0, None)
    verdict, criteria, _ = evaluate(empty, stage)
    assert verdict is Verdict.CANNOT_EVALUATE and verdict.exit_code == 3
    assert all(c.result is Result.INSUFFICIENT for c in criteria if c.bound.figure != "sampled")
    assert [c.result for c in criteria if c.bound.figure == "sampled"] == [Result.FAIL]


@pytest.mark.parametrize("stage", [2, 3])
def test_stability_boundaries(stage: int) -> None:
    # 0.9 -> 0.72 is exactly a 20% relative drop: still stable; one record less is not.
    at = figs(hours=stable_hours((0.9, 0.72)))
    assert result(at, stage, "go", "stable_acceptance") == (Verdict.GO, Result.PASS)
    below = figs(hours=(HourCounts(DAY1 % 0, N, 9000, 0), HourCounts(DAY2 % 0, N, 7199, 0)))
    assert result(below, stage, "go", "stable_acceptance") == (Verdict.NO_GO, Result.FAIL)
    rise = figs(hours=stable_hours((0.5, 0.99)))
    assert result(rise, stage, "go", "stable_acceptance")[1] is Result.PASS
    one_window = figs(hours=(HourCounts(DAY1 % 0, N, 9000, 0),))
    assert result(one_window, stage, "go", "stable_acceptance") == (
        Verdict.NO_GO,
        Result.INSUFFICIENT,
    )


def test_stage_one_ignores_stability() -> None:
    assert all(b.figure != "stable_acceptance" for b in STAGES[1].go)
    assert evaluate(figs(hours=()), 1)[0] is Verdict.GO


def test_small_windows_are_pooled_until_they_carry_enough_evidence() -> None:
    hours = [HourCounts(DAY1 % h, 10, 9, 0) for h in range(12)]  # 120 sampled on day 1
    hours += [HourCounts(DAY2 % 0, 30, 27, 0), HourCounts("2026-11-25T00", 20, 18, 0)]
    stab = stability(hours, window_hours=24, min_sampled=50)
    # day 2 (30) is pooled with day 3 (20): two windows, both at 0.9
    assert stab.windows == ((DAY1 % 0, 120, 108), (DAY2 % 0, 50, 45))
    assert stab.stable is True and stab.worst_drop == 0
    hourly = stability(hours, window_hours=1, min_sampled=50)
    assert [w[1] for w in hourly.windows] == [50, 50, 70]  # short last window joins the previous


def test_min_sampled_can_only_be_raised() -> None:
    _, criteria, _ = evaluate(figs(sampled=60), 1, min_sampled=10)
    (c,) = [c for c in criteria if c.bound.figure == "sampled"]
    assert c.bound.limit == 50 and c.result is Result.PASS
    verdict, criteria, _ = evaluate(figs(sampled=60), 1, min_sampled=100)
    assert verdict is Verdict.NO_GO


def test_stages_are_the_one_table() -> None:
    """The gate's lines are partial_trust.thresholds' (go lines + the timeout-share line, the
    effective rollback lines), not a copy."""
    for number, spec in thresholds.STAGES.items():
        gate = STAGES[number]
        assert gate.go == (*spec.go, Bound("timeout_share", "<=", thresholds.TIMEOUT_SHARE_LINE))
        assert gate.rollback == thresholds.rollback_lines(number)
        assert gate.manual == spec.manual and gate.min_days == spec.min_days
    # the one rule: stricter of the monitoring table's rollback line and the stage's own
    assert thresholds.rollback_line(1, "error_rate") == 0.05  # not the stage's 0.10
    assert thresholds.rollback_line(2, "error_rate") == 0.05
    assert thresholds.rollback_line(3, "error_rate") == 0.03


@pytest.mark.parametrize("stage", [1, 2, 3])
def test_stage_one_at_8_percent_errors_rolls_back(stage: int) -> None:
    """The issue's case: 8% errors. Every stage's effective line is at most 5%: ROLLBACK,
    exactly what the alert says (a page)."""
    assert evaluate(figs(errors=800), stage)[0] is Verdict.ROLLBACK


def test_timeout_share_line_shows_the_hidden_latency() -> None:
    """A p95 cannot exceed the timeout: the timeout share tells what the latency line cannot."""
    timeouts = replace(figs(errors=500), reason_counts={"llm_timeout": 500})
    _, criteria, _ = evaluate(timeouts, 1)
    (share,) = [c for c in criteria if c.bound.figure == "timeout_share"]
    assert share.result is Result.PASS and share.value == pytest.approx(0.05)
    more = replace(figs(errors=501), reason_counts={"llm_timeout": 501})
    (share,) = [c for c in evaluate(more, 1)[1] if c.bound.figure == "timeout_share"]
    assert share.result is Result.FAIL and share.text.startswith("timeout_share")
    # the latency criteria say whether the timeout hides them
    known = evaluate(figs(), 3, timeout_ms=200)[1]
    (p95,) = [c for c in known if c.bound.figure == "latency_p95" and c.kind == "go"]
    assert p95.detail.startswith("cannot fail: the LLM timeout (200 ms) is not above it")
    slow = evaluate(figs(), 3, timeout_ms=800)[1]
    assert all(c.detail == "" for c in slow if c.bound.figure == "latency_p95")
    unknown = evaluate(figs(), 1)[1]
    (p95,) = [c for c in unknown if c.bound.figure == "latency_p95"]
    assert "cannot fail while the LLM timeout is <= 500 ms (default 200 ms" in p95.detail
