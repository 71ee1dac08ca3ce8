"""The stage-aware alerts: one rule per stage, its line taken from ``partial_trust.thresholds``.

Each rule reads ``corridor:partial_trust_rollout_stage:from_sample_rate`` (the stage the
corridor's sample rate is at) and carries a ``stage`` label, so exactly one rule of a name can
fire for a corridor and its summary names the stage's own line. A stage's effective rollback
lines page (critical), its go lines warn: the gate says ROLLBACK / NO-GO on the same numbers
(the one rule: ``thresholds.PAGE_RULE``).
"""

from __future__ import annotations

from collections.abc import Iterator

from alerts.alert_spec import Alert
from partial_trust import thresholds

STAGE = "corridor:partial_trust_rollout_stage:from_sample_rate"
ENABLED = "corridor:partial_trust_flag_enabled:max"
ON_STAGE = f"and on (corridor) {STAGE} == {{stage}}"
KILL = "Runbook: rollback immediately - run `partial-trust flags kill`."
STAGES = sorted(thresholds.STAGES)

#: figure -> (recorded value, sample guard, unit, what it is, page name, warning name)
FIGURES = {
    "error_rate": (
        "corridor:partial_trust_error_rate:ratio_rate5m",
        "corridor:partial_trust_sampled:increase5m",
        "ratio",
        "of sampled requests ended in error",
        "PartialTrustErrorRateHigh",
        "PartialTrustErrorRateAboveGoLine",
    ),
    "intent_mismatch_rate": (
        "corridor:partial_trust_intent_mismatch_rate:ratio_rate5m",
        "corridor:partial_trust_intent_checked:increase5m",
        "ratio",
        "of parsed LLM candidates disagreed with the baseline intent",
        "PartialTrustIntentMismatchRollback",
        "PartialTrustIntentMismatchHigh",
    ),
    "latency_p95": (
        "corridor:partial_trust_llm_latency_seconds:p95_rate5m",
        "corridor:partial_trust_llm_calls:increase5m",
        "seconds",
        "is the 95th percentile of LLM candidate latency",
        "PartialTrustLLMLatencyRollback",
        "PartialTrustLLMLatencyHigh",
    ),
}


def _value(figure: str) -> str:
    if figure == "latency_p95":
        return "{{ $value | humanizeDuration }}"
    return "{{ $value | humanizePercentage }}"


def _in_unit(figure: str, line: float) -> float:
    """The table holds latency in ms; Prometheus compares seconds."""
    return line / 1000 if figure == "latency_p95" else line


def _expr(figure: str, *, page: bool) -> str:
    value, guard, *_ = FIGURES[figure]
    lines = [f"{value} {{op}} {{threshold}}", f"and on (corridor) {guard} >= {{min_samples}}"]
    if page:  # the page asks for a rollback: once the kill switch is on it has been done
        lines.append(f"and on (corridor) {ENABLED} == 1")
    return "\n".join([*lines, ON_STAGE])


def rollback_pages() -> Iterator[Alert]:
    """Critical, per stage: the effective rollback line of each figure that has one."""
    for figure, (_, _, unit, what, name, _) in FIGURES.items():
        for stage in STAGES:
            line = thresholds.rollback_line(stage, figure)
            if line is None:
                continue
            error = figure == "error_rate"
            yield Alert(
                name=name,
                unit=unit,
                severity="critical",
                threshold=_in_unit(figure, line),
                min_samples=20,
                for_="2m" if error else "5m",
                expr=_expr(figure, page=True),
                summary=(
                    f"Partial trust corridor {{{{ $labels.corridor }}}}: {figure} above @T@, "
                    "stage @S@'s rollback line - roll back now"
                ),
                description=(
                    f"{_value(figure)} {what} in corridor {{{{ $labels.corridor }}}} over the "
                    "last 5m: above stage @S@'s rollback line @T@ (the stricter of the "
                    "monitoring table's and the stage's own; the gate says ROLLBACK), at least "
                    f"@N@ in the window. {KILL}"
                ),
                anchor=name.lower(),
                action="Rollback immediately",
                figure=figure,
                stage=stage,
                labels=(("stage", str(stage)), *((("window", "5m"),) if error else ())),
            )


def go_warnings() -> Iterator[Alert]:
    """Warning, per stage: the stage's go line failed (hold the stage, do not advance)."""
    for figure, (_, _, unit, what, _, name) in FIGURES.items():
        for stage in STAGES:
            line = thresholds.go_line(stage, figure)
            if line is None:
                continue
            row = thresholds.alarm(figure)
            action = row.action if row and not row.rollback else "Hold the stage, investigate"
            # a p95 read from histogram buckets lands exactly on a bucket edge (the lines are
            # edges): only a value above the line is evidence; rates fail their go line at it
            op = ">" if figure == "latency_p95" else ">="
            yield Alert(
                name=name,
                unit=unit,
                severity="warning",
                threshold=_in_unit(figure, line),
                min_samples=20,
                for_="10m",
                expr=_expr(figure, page=False),
                summary=(
                    f"Partial trust corridor {{{{ $labels.corridor }}}}: {figure} not below "
                    "@T@, stage @S@'s go line - hold the stage"
                ),
                description=(
                    f"{_value(figure)} {what} in corridor {{{{ $labels.corridor }}}} over the "
                    "last 5m: not below stage @S@'s go line @T@ (the gate says NO-GO: hold the "
                    "stage, do not advance), at least @N@ in the window. "
                    f"Runbook: {action.lower()}."
                ),
                anchor=name.lower(),
                action=action,
                figure=figure,
                stage=stage,
                op=op,
                labels=(("stage", str(stage)),),
            )


def outage_pages() -> Iterator[Alert]:
    """Critical, per stage: most of the last minute's sampled calls failed (an outage).
    Same name as the 5-minute page, so the auto-rollback and the inhibition act on it too."""
    w = thresholds.OUTAGE_WINDOW
    share = thresholds.OUTAGE_ERROR_SHARE
    for stage in STAGES:
        line = thresholds.rollback_line(stage, "error_rate")
        assert line is not None
        yield Alert(
            name="PartialTrustErrorRateHigh",
            unit="ratio",
            severity="critical",
            threshold=line,
            min_samples=thresholds.OUTAGE_MIN_SAMPLES,
            for_="15s",
            expr=(
                f"corridor:partial_trust_error_rate:ratio_rate{w} > {share:g}\n"
                "and on (corridor) corridor:partial_trust_error_rate:ratio_rate5m > {threshold}\n"
                f"and on (corridor) corridor:partial_trust_sampled:increase{w}"
                " >= {min_samples}\n"
                f"and on (corridor) {ENABLED} == 1\n{ON_STAGE}"
            ),
            summary=(
                "Partial trust corridor {{ $labels.corridor }}: LLM outage - "
                f"more than {share:.0%} errors in {w} - roll back now"
            ),
            description=(
                "{{ $value | humanizePercentage }} of sampled requests in corridor "
                f"{{{{ $labels.corridor }}}} ended in error over the last {w} (more than "
                f"{share:.0%}, at least @N@ sampled) and the 5m error rate is above stage "
                f"@S@'s rollback line @T@. {KILL}"
            ),
            anchor="partialtrusterrorratehigh",
            action="Rollback immediately",
            figure="error_rate",
            stage=stage,
            labels=(("stage", str(stage)), ("window", w)),
        )


def markdown_table() -> str:
    """The stage table as it appears in ``alerts/playbooks.md`` (a test keeps them equal)."""

    def lines(bounds: list[tuple[str, str, float]]) -> str:
        return ", ".join(
            f"{figure} {op} {limit:g}{' ms' if figure == 'latency_p95' else ''}"
            for figure, op, limit in bounds
        )

    rows = [
        "| stage | sample rate | minimum duration | pages (effective rollback lines) "
        "| warns (go lines failed) |",
        "| --- | --- | --- | --- | --- |",
    ]
    previous: float | None = None
    for n in STAGES:
        spec = thresholds.STAGES[n]
        if previous is None:
            rates = f"≤ {spec.sample_rate:g}"
        elif n == STAGES[-1]:
            rates = f"> {previous:g} (preset {spec.sample_rate:g})"
        else:
            rates = f"> {previous:g}, ≤ {spec.sample_rate:g}"
        previous = spec.sample_rate
        page = [(b.figure, ">", b.limit) for b in thresholds.rollback_lines(n)]
        warn = [
            (figure, ">=" if figure != "latency_p95" else ">", line)
            for figure in FIGURES
            if (line := thresholds.go_line(n, figure)) is not None
        ]
        rows.append(f"| {n} | {rates} | {spec.min_days} days | {lines(page)} | {lines(warn)} |")
    return "\n".join(rows)
