"""THE rollout table: stages, their go and rollback lines, the monitoring table's alarms.

Written once, here, and read by the alert rules (``alerts/generate.py``), the gate
(``apps/analysis/gate.py``), the HTML report and the dashboard's threshold lines
(``alerts/dashboard_thresholds.py``); tests check that each of them equals this table.
Standard library only: the analyzer shim must still run on a bare Python.

**The one rule (page vs hold).** The runbook gives rollback lines twice: per stage ("No-Go ->
rollback if", e.g. stage 1: error_rate > 0.10) and in its monitoring table, which has no stage
(error_rate > 0.05: "Rollback immediately"). Both are *sufficient* conditions for a rollback,
so a stage rolls back when ANY line that applies to it is crossed: **the effective rollback
line of a figure is the stricter of the monitoring table's rollback line and the stage's
own**. Stage 1's error line is therefore 5% (the 10% line is kept as written but never binds),
stage 2's 5%, stage 3's 3%. Crossing an effective rollback line is ROLLBACK in the gate and a
page (critical) in the alerts; failing a go line (value at or above it) is NO-GO (hold) in the
gate and a warning in the alerts. The monitoring table's other rows ("investigate", "reduce")
are warnings at every stage.

**Which stage a sample rate is at** (``stage_for_rate``): the lowest stage whose rate is at or
above it: rate <= 1% is stage 1, (1%, 5%] stage 2, above 5% stage 3 (also above 10%: past the
plan, judged by the strictest lines). A rate between two presets has left the lower stage's
exposure, so the higher stage's lines apply.

**Latency lines the timeout hides.** An LLM call is cut at min(timeout flag, profile cap)
(default 200 ms, default profile cap 500 ms), so a p95 can never exceed the timeout: every
latency line at or above it (300/400/500 ms) cannot be crossed, and slower calls end as
``llm_timeout`` errors instead. ``TIMEOUT_SHARE_LINE`` covers them: the p95 is at least the
timeout exactly when more than 5% (1 - 0.95) of the sampled calls time out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

#: the runbook's default LLM timeout (PARTIAL_TRUST_TIMEOUT_MS) and the default profile's cap
DEFAULT_TIMEOUT_MS: Final = 200
DEFAULT_PROFILE_CAP_MS: Final = 500
P95: Final = 0.95
#: share of sampled calls ending as llm_timeout above which the p95 has reached the timeout
TIMEOUT_SHARE_LINE: Final = round(1 - P95, 10)
#: the outage page (multi-window, as burn-rate alerting does): more than half of the sampled
#: calls of the last minute failed AND the 5-minute error rate is above the stage's rollback
#: line. Pages within 90 s of onset; a slow drift keeps the 5-minute rules and their guards.
OUTAGE_WINDOW: Final = "1m"
OUTAGE_ERROR_SHARE: Final = 0.5
OUTAGE_MIN_SAMPLES: Final = 10


@dataclass(frozen=True, slots=True)
class Bound:
    """``figure <op> limit``: for go bounds the condition to meet, for rollback the trigger."""

    figure: str  # error_rate | intent_mismatch_rate | latency_p95 | sampled | stable_acceptance
    op: str  # "<", "<=", ">", ">="
    limit: float


@dataclass(frozen=True, slots=True)
class Stage:
    number: int
    sample_rate: float
    min_days: int  # the runbook's minimum duration at this stage's sample rate
    go: tuple[Bound, ...]
    rollback: tuple[Bound, ...]  # the runbook's own lines for this stage, as written
    manual: tuple[str, ...]  # runbook checks no log can answer; listed, never judged


@dataclass(frozen=True, slots=True)
class Alarm:
    """A row of the runbook's monitoring table ("Metrics to watch")."""

    figure: str
    limit: float  # crossed when the figure is strictly above it
    action: str
    rollback: bool  # "Rollback immediately" pages; every other action warns


STAGES: Final[dict[int, Stage]] = {
    1: Stage(
        1,
        0.01,
        3,
        go=(
            Bound("error_rate", "<", 0.05),
            Bound("intent_mismatch_rate", "<", 0.10),
            Bound("latency_p95", "<", 500),
            Bound("sampled", ">=", 50),
        ),
        rollback=(Bound("error_rate", ">", 0.10),),
        manual=("no user-reported incidents", "no LLM provider outage"),
    ),
    2: Stage(
        2,
        0.05,
        5,
        go=(
            Bound("error_rate", "<", 0.03),
            Bound("intent_mismatch_rate", "<", 0.05),
            Bound("latency_p95", "<", 400),
            Bound("stable_acceptance", ">=", 1),
            Bound("sampled", ">=", 200),
        ),
        # "regression vs Stage 1 metrics" read as "fails a stage-1 go bar"
        rollback=(
            Bound("error_rate", ">", 0.05),
            Bound("intent_mismatch_rate", ">", 0.10),
            Bound("latency_p95", ">", 500),
        ),
        manual=("no user-reported incidents",),
    ),
    3: Stage(
        3,
        0.10,
        7,
        go=(
            Bound("error_rate", "<", 0.02),
            Bound("intent_mismatch_rate", "<", 0.05),
            Bound("latency_p95", "<", 300),
            Bound("stable_acceptance", ">=", 1),
            Bound("sampled", ">=", 200),
        ),
        # our definition: regressing past the stage-2 go bars that admitted it
        rollback=(
            Bound("error_rate", ">", 0.03),
            Bound("intent_mismatch_rate", ">", 0.05),
            Bound("latency_p95", ">", 400),
        ),
        manual=("no user-reported incidents",),
    ),
}

#: the monitoring table; latency in ms, the acceptance drop relative, staleness in seconds
MONITORING: Final[tuple[Alarm, ...]] = (
    Alarm("error_rate", 0.05, "Rollback immediately", rollback=True),
    Alarm("intent_mismatch_rate", 0.10, "Investigate, reduce sample rate", rollback=False),
    Alarm("entity_key_mismatch_rate", 0.20, "Investigate acceptance rules", rollback=False),
    Alarm("latency_p95", 500, "Reduce timeout or sample rate", rollback=False),
    Alarm("acceptance_drop", 0.20, "Investigate LLM provider", rollback=False),
    Alarm("risk_log_age_seconds", 3600, "Check application health", rollback=False),
)

PAGE_RULE: Final = (
    "A stage rolls back (the gate says ROLLBACK, the alert pages) when a figure crosses its "
    "effective rollback line: the stricter of the monitoring table's rollback line and the "
    "stage's own. Failing a go line holds the stage (NO-GO, a warning)."
)


def stage_for_rate(rate: float) -> int:
    """The stage whose lines judge a corridor sampled at ``rate`` (module docstring)."""
    for number, stage in sorted(STAGES.items()):
        if rate <= stage.sample_rate:
            return number
    return max(STAGES)


def alarm(figure: str) -> Alarm | None:
    return next((a for a in MONITORING if a.figure == figure), None)


def rollback_lines(stage: int) -> tuple[Bound, ...]:
    """The effective rollback lines of ``stage``: the one rule (module docstring)."""
    lines: dict[str, float] = {}
    candidates = [(b.figure, b.limit) for b in STAGES[stage].rollback]
    candidates += [(a.figure, a.limit) for a in MONITORING if a.rollback]
    for figure, limit in candidates:
        lines[figure] = min(limit, lines.get(figure, limit))
    return tuple(Bound(f, ">", limit) for f, limit in lines.items())


def rollback_line(stage: int, figure: str) -> float | None:
    return next((b.limit for b in rollback_lines(stage) if b.figure == figure), None)


def go_line(stage: int, figure: str) -> float | None:
    return next((b.limit for b in STAGES[stage].go if b.figure == figure), None)


def latency_line_reachable(limit_ms: float, timeout_ms: float | None) -> bool:
    """Can a p95 cross ``limit_ms`` while calls are cut at ``timeout_ms``? (None: unknown)."""
    return timeout_ms is None or timeout_ms > limit_ms


def unreachable_latency_lines(timeout_ms: float | None) -> list[dict[str, object]]:
    """The latency lines (every stage's go and rollback lines, and the monitoring table's)
    that can never be crossed while calls are cut at ``timeout_ms``: a timed-out call is an
    error, not a slow answer, so its p95 never passes the timeout. ``/health`` shows them, so
    nobody reads a quiet latency alert as good news; the timeout-share rule covers them."""
    lines: list[dict[str, object]] = []
    for number, stage in sorted(STAGES.items()):
        for kind, bounds in (("go", stage.go), ("rollback", stage.rollback)):
            for bound in bounds:
                if bound.figure == "latency_p95" and not latency_line_reachable(
                    bound.limit, timeout_ms
                ):
                    lines.append({"stage": number, "line": kind, "ms": bound.limit})
    for alarm_ in MONITORING:
        if alarm_.figure == "latency_p95" and not latency_line_reachable(alarm_.limit, timeout_ms):
            lines.append({"stage": None, "line": "monitoring", "ms": alarm_.limit})
    return lines


def category(stage: int, figure: str, value: float) -> str:
    """What the table tells the operator about one figure: ``rollback``, ``hold`` or ``go``."""
    line = rollback_line(stage, figure)
    if line is not None and value > line:
        return "rollback"
    go = go_line(stage, figure)
    return "hold" if go is not None and value >= go else "go"


# -- the shadow stage (DESIGN "Wave 2"; seed 004 "Shadow Mode (Week 1-2)") -----------------
@dataclass(frozen=True, slots=True)
class ShadowStage:
    """The stage before stage 1: nothing served, agreement measured.

    Seed 004: "Target: >80% agreement in Week 1, >90% agreement in Week 2", and "Test in shadow
    mode again (1 week minimum)". So the shadow stage runs at least ``min_days`` (one week);
    while it is in its first week its agreement must stay above ``agreement_week1`` (the
    on-track line; below it the gate says NO-GO and the alert warns), and to leave it (at or
    after ``min_days``, i.e. in week 2 or later) agreement must be above ``agreement_week2``.
    ``min_records``: records with an agreement verdict (true or false) the gate needs before
    it can say GO; fewer is never GO. Errors are judged by stage 1's lines (the first canary
    stage's), so a shadow run that would fail stage 1's error line does not lead into it.
    """

    min_days: int
    agreement_week1: float  # agreement_rate must be strictly above it in week 1
    agreement_week2: float  # ... and strictly above this one to leave shadow
    min_records: int  # agreement records (true + false) before GO is possible
    next_stage: int  # the stage GO leads to

    def agreement_line(self, elapsed_days: float | None) -> float:
        """The line that applies after ``elapsed_days`` in shadow (unknown: week 2's)."""
        if elapsed_days is not None and elapsed_days < 7:
            return self.agreement_week1
        return self.agreement_week2


SHADOW: Final = ShadowStage(
    min_days=7, agreement_week1=0.80, agreement_week2=0.90, min_records=200, next_stage=1
)
#: the agreement alert: a warning when the 1h agreement rate is at or below the week-1 line
#: (a shadow run below it is off track at any age), over at least this many agreement records
#: in the hour, for ``AGREEMENT_ALERT_FOR``.
AGREEMENT_WINDOW: Final = "1h"
AGREEMENT_MIN_SAMPLES: Final = 20
AGREEMENT_ALERT_FOR: Final = "15m"


# -- the advisory stage (DESIGN "Wave 2"; seed 004 "Advisory Mode") ------------------------
@dataclass(frozen=True, slots=True)
class AdvisoryStage:
    """Reviewers judge kept disagreements; the override rate gates leaving advisory.

    Seed 004: "override rate < 10%"; DESIGN: "< 5% read, < 10% write/commit". The rate must
    be strictly below the corridor's risk-class line; a class without a line (``deploy``,
    ``admin``: never promoted on reviews alone) is never GO. ``min_verdicts``: verdicts the
    gate needs before it can say GO; fewer is HOLD (keep reviewing), never GO.
    """

    override_lines: dict[str, float]
    min_verdicts: int

    def override_line(self, risk_class: str) -> float | None:
        return self.override_lines.get(risk_class)


#: the risk classes, least to most dangerous (DESIGN "Risk classes")
RISK_CLASSES: Final = ("read", "write", "commit", "deploy", "admin")
ADVISORY: Final = AdvisoryStage(
    override_lines={"read": 0.05, "write": 0.10, "commit": 0.10}, min_verdicts=50
)
