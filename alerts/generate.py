"""Render ``alerts/partial-trust.rules.yml`` and the dashboard's threshold lines from ONE table.

The table is ``partial_trust/thresholds.py`` (the rollout runbook's stages and monitoring table;
the gate and the HTML report read it too); change a number there (and nowhere else), run
``python alerts/generate.py``, and commit the rules file and the dashboard. Tests
(``tests/alerts/test_rules.py``, ``tests/dashboards/test_dashboard.py``) fail when the
committed files differ from this output.

    python alerts/generate.py            # rewrite the rules file and the dashboard thresholds
    python alerts/generate.py --check    # exit 1 if a committed file is out of date
    python alerts/generate.py --for 5s --stdout   # a copy with short ``for:`` (integration tests)
    python alerts/generate.py --runbook-base-url https://forge.example/org/repo/blob/main/alerts/playbooks.md

``runbook_url`` is absolute: ``--runbook-base-url`` + ``#`` + the alert's heading anchor in
``alerts/playbooks.md``. The default, ``https://partial-trust.example/alerts/playbooks.md``, is
a placeholder on a reserved domain: deployments set their own (where their people read the
playbooks), and the committed file uses the default.

This file holds the list of alerts and the command line; the rest is derived by
``alert_spec.py`` (one row -> one alerting rule), ``stage_alerts.py`` (the per-stage rules),
``recording_rules.py`` (the rates the alerts read, from the shapes in ``promql.py``),
``rules_yaml.py`` (the file's text) and ``dashboard_thresholds.py`` (the dashboard's lines).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from pathlib import Path

HERE = Path(__file__).resolve().parent
RULES_PATH = HERE / "partial-trust.rules.yml"
DASHBOARD_PATH = HERE.parent / "dashboards" / "partial-trust-corridor.json"
# ``python alerts/generate.py`` puts alerts/, not the checkout, on sys.path; the tests load
# this file by path. Either way its siblings are imported as ``alerts.*`` from the checkout.
if str(HERE.parent) not in sys.path:
    sys.path.insert(0, str(HERE.parent))

from alerts import dashboard_thresholds, rules_yaml  # noqa: E402
from alerts.alert_spec import DEFAULT_RUNBOOK_BASE_URL, Alert  # noqa: E402
from alerts.review_alerts import review_store_alerts  # noqa: E402
from alerts.stage_alerts import go_warnings, outage_pages, rollback_pages  # noqa: E402
from partial_trust import thresholds as table  # noqa: E402


def _alarm(figure: str) -> float:
    row = table.alarm(figure)
    assert row is not None, figure
    return row.limit


def _stage(alerts: Iterable[Alert], figure: str) -> tuple[Alert, ...]:
    return tuple(a for a in alerts if a.figure == figure)


#: Every alert, in the order of the rules file. The numbers come from the table
#: (``partial_trust/thresholds.py``); the stage-aware rules are built in ``stage_alerts.py``.
ALERTS: tuple[Alert, ...] = (
    *_stage(rollback_pages(), "error_rate"),
    *outage_pages(),
    *_stage(go_warnings(), "error_rate"),
    *_stage(go_warnings(), "intent_mismatch_rate"),
    *_stage(rollback_pages(), "intent_mismatch_rate"),
    Alert(
        name="PartialTrustEntityKeyMismatchHigh",
        unit="ratio",
        severity="warning",
        threshold=_alarm("entity_key_mismatch_rate"),
        min_samples=20,
        for_="10m",
        expr=(
            "corridor:partial_trust_entity_key_mismatch_rate:ratio_rate5m > {threshold}\n"
            "and on (corridor) corridor:partial_trust_entity_key_checked:increase5m"
            " >= {min_samples}"
        ),
        summary="Partial trust corridor {{ $labels.corridor }}: entity-key mismatch rate above @T@",
        description=(
            "{{ $value | humanizePercentage }} of parsed LLM candidates in corridor "
            "{{ $labels.corridor }} disagreed with the baseline entity keys over the last 5m "
            "(threshold @T@, at least @N@ candidates). Investigate the acceptance rules."
        ),
        anchor="partialtrustentitykeymismatchhigh",
        action="Investigate acceptance rules",
        figure="entity_key_mismatch_rate",
    ),
    *_stage(go_warnings(), "latency_p95"),
    *_stage(rollback_pages(), "latency_p95"),
    # A p95 never exceeds the LLM timeout: while the timeout is at or below a latency line,
    # calls that would cross it end as llm_timeout errors. More than 5% of them means the
    # p95 reached the timeout (thresholds.TIMEOUT_SHARE_LINE = 1 - 0.95).
    Alert(
        name="PartialTrustLLMTimeoutShareHigh",
        unit="ratio",
        severity="warning",
        threshold=table.TIMEOUT_SHARE_LINE,
        min_samples=20,
        for_="10m",
        expr=(
            "corridor:partial_trust_timeout_share:ratio_rate5m > {threshold}\n"
            "and on (corridor) corridor:partial_trust_sampled:increase5m >= {min_samples}\n"
            "and on (corridor) corridor:partial_trust_flag_enabled:max == 1"
        ),
        summary=(
            "Partial trust corridor {{ $labels.corridor }}: more than @T@ of LLM calls time "
            "out - the p95 reached the timeout"
        ),
        description=(
            "{{ $value | humanizePercentage }} of sampled requests in corridor "
            "{{ $labels.corridor }} ended as llm_timeout over the last 5m (threshold @T@, at "
            "least @N@ sampled): the LLM latency p95 is at least the timeout. The p95 latency "
            "lines (300/400/500 ms) cannot fire while the timeout is at or below them. Check "
            "the provider's latency; raise the timeout only if the stage's latency line allows."
        ),
        anchor="partialtrustllmtimeoutsharehigh",
        action="Reduce timeout or sample rate",
        figure="timeout_share",
    ),
    Alert(
        name="PartialTrustAcceptanceRateDrop",
        unit="ratio",
        severity="warning",
        threshold=_alarm("acceptance_drop"),
        min_samples=20,
        for_="10m",
        expr=(
            "corridor:partial_trust_acceptance_rate:drop_ratio_rate5m_vs_rate1h_offset1h"
            " > {threshold}\n"
            "and on (corridor) corridor:partial_trust_sampled:increase5m >= {min_samples}\n"
            "and on (corridor) corridor:partial_trust_sampled:increase1h_offset1h >= {min_samples}"
        ),
        summary=(
            "Partial trust corridor {{ $labels.corridor }}: "
            "acceptance rate dropped by more than @T@"
        ),
        description=(
            "The acceptance rate of corridor {{ $labels.corridor }} over the last 5m is "
            "{{ $value | humanizePercentage }} below its level an hour earlier "
            "(threshold @T@, at least @N@ sampled in each window). Investigate the LLM provider."
        ),
        anchor="partialtrustacceptanceratedrop",
        action="Investigate LLM provider",
    ),
    # The shadow stage's agreement (seed 004: > 80% in week 1, > 90% in week 2): a warning
    # when the hour's agreement is not above week 1's line, below which a shadow run is off
    # track at any age (the gate's NO-GO); per corridor and mode.
    Alert(
        name="PartialTrustAgreementLow",
        unit="ratio",
        severity="warning",
        threshold=table.SHADOW.agreement_week1,
        min_samples=table.AGREEMENT_MIN_SAMPLES,
        for_=table.AGREEMENT_ALERT_FOR,
        expr=(
            f"corridor_mode:partial_trust_agreement_rate:ratio_rate{table.AGREEMENT_WINDOW}"
            " <= {threshold}\nand on (corridor, mode) "
            f"corridor_mode:partial_trust_agreement_checked:increase{table.AGREEMENT_WINDOW}"
            " >= {min_samples}"
        ),
        summary=(
            "Partial trust corridor {{ $labels.corridor }} ({{ $labels.mode }}): LLM agreement "
            "with the baseline at or below @T@"
        ),
        description=(
            "Over the last hour only {{ $value | humanizePercentage }} of the LLM candidates "
            "in corridor {{ $labels.corridor }} (mode {{ $labels.mode }}) agreed with the "
            "baseline decision (the shadow stage needs more than @T@ in week 1 and more than "
            f"{table.SHADOW.agreement_week2 * 100:g}% to leave it; at least @N@ candidates with "
            "a verdict). Review the disagreements before any stage change."
        ),
        anchor="partialtrustagreementlow",
        action="Review disagreements, hold the stage",
        figure="agreement_rate",
    ),
    Alert(
        name="PartialTrustRiskLogStale",
        unit="seconds",
        severity="warning",
        threshold=_alarm("risk_log_age_seconds"),
        min_samples=5,
        for_="5m",
        expr=(
            "(time() - max(partial_trust_risk_log_last_write_timestamp_seconds) > {threshold})\n"
            "* on () group_right ()\n"
            "(max by (corridor) (min_over_time(partial_trust_flag_enabled[1h])) == 1)\n"
            "and on (corridor) corridor:partial_trust_logged:increase1h >= {min_samples}"
        ),
        summary="Partial trust corridor {{ $labels.corridor }}: risk log not written for over @T@",
        description=(
            "The last risk-log write was {{ $value | humanizeDuration }} ago although corridor "
            "{{ $labels.corridor }} has been enabled for the whole hour and at least @N@ records "
            "were due (threshold @T@). Check application health."
        ),
        anchor="partialtrustrisklogstale",
        action="Check application health",
    ),
    Alert(
        name="PartialTrustNoSampledTraffic",
        unit="count",
        severity="warning",
        threshold=1,
        min_samples=20,
        for_="10m",
        expr=(
            "corridor:partial_trust_eligible:increase30m\n"
            "* on (corridor) corridor:partial_trust_flag_sample_rate:max >= {min_samples}\n"
            "and on (corridor) corridor:partial_trust_sampled:increase30m < {threshold}\n"
            "and on (corridor) corridor:partial_trust_flag_enabled:max == 1\n"
            "and on (corridor) corridor:partial_trust_flag_sample_rate:max > 0"
        ),
        summary="Partial trust corridor {{ $labels.corridor }}: enabled but no sampled traffic",
        description=(
            "Corridor {{ $labels.corridor }} is enabled with a sample rate above 0 and "
            '{{ $value | printf "%.0f" }} sampled requests were expected over the last 30m, '
            "but none was sampled (at least @N@ expected). Check the flags, LLM_POLICY_ENABLED "
            "and the skip reasons."
        ),
        anchor="partialtrustnosampledtraffic",
        action="Check application health",
    ),
    # The absence page: no instance reports the corridor's metrics any more (the app
    # crashed, its target is down or gone: Prometheus marks the series stale at the first
    # failed scrape) while its last known state was enabled. Silent after a kill: the last
    # state is then 0. The memory is a day: a corridor retired on purpose is killed first.
    Alert(
        name="PartialTrustTargetDown",
        unit="count",
        severity="critical",
        threshold=1,
        min_samples=4,
        for_="2m",
        expr=(
            "max by (corridor) (last_over_time(partial_trust_flag_enabled[1d])) == {threshold}\n"
            "and on (corridor)\n"
            "max by (corridor) (count_over_time(partial_trust_flag_enabled[1d])) >= {min_samples}\n"
            "unless on (corridor) max by (corridor) (partial_trust_flag_enabled)"
        ),
        summary=(
            "Partial trust corridor {{ $labels.corridor }}: metrics gone while enabled - "
            "the application or its scrape is down"
        ),
        description=(
            "No instance of corridor {{ $labels.corridor }} has been scraped with its metrics "
            "for 2m, and its last known state was enabled ({{ $value }} = on; at least @N@ "
            "scrapes seen within the last day). Every other corridor alert is blind until the "
            "metrics are back. Check the application's health and Prometheus' target (up)."
        ),
        anchor="partialtrusttargetdown",
        action="Check application health",
    ),
    # The flag console's (apps/console, scraped at /flags/metrics) rollback-storm gauge:
    # 1 while >= 3 auto-rollbacks of the corridor happened within 10 min. The threshold is the
    # gauge's 1; the guard is the console's auto-rollback total (min_samples = the console's
    # default storm threshold). The storm can last only seconds (three rollbacks spanning
    # almost 10 minutes), so the gauge is read over the console's 10m storm window: one
    # scrape seeing the storm is enough, and the page stays up for that window.
    Alert(
        name="PartialTrustRollbackStorm",
        unit="count",
        severity="critical",
        threshold=1,
        min_samples=3,
        for_="1m",
        expr=(
            "max by (corridor) (partial_trust_console_auto_rollbacks_total) >= {min_samples}\n"
            "and on (corridor)\n"
            "max by (corridor) (max_over_time(partial_trust_console_rollback_storm[10m]))"
            " >= {threshold}"
        ),
        summary=(
            "Partial trust corridor {{ $labels.corridor }}: rollback storm - "
            "the auto-rollback keeps turning it off"
        ),
        description=(
            "The flag console's Alertmanager webhook turned corridor {{ $labels.corridor }} "
            "off again and again: its rollback-storm gauge reached @T@ within the last 10m "
            "(the console's storm: at least @N@ automatic rollbacks within 10 minutes; "
            '{{ $value | printf "%.0f" }} recorded in its audit log in all). Someone keeps '
            "resuming a broken corridor: do not resume, find the cause first."
        ),
        anchor="partialtrustrollbackstorm",
        action="Stop resuming, find the cause",
    ),
    *review_store_alerts(),
)


def thresholds() -> dict[str, tuple[float, ...]]:
    """alert name -> its thresholds (one per stage for the stage-aware alerts), ascending."""
    out: dict[str, set[float]] = {}
    for a in ALERTS:
        out.setdefault(a.name, set()).add(a.threshold)
    return {name: tuple(sorted(values)) for name, values in out.items()}


def render(
    for_override: str | None = None, runbook_base_url: str = DEFAULT_RUNBOOK_BASE_URL
) -> str:
    return rules_yaml.render(ALERTS, for_override, runbook_base_url)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the committed file differs")
    parser.add_argument("--stdout", action="store_true", help="print instead of writing")
    parser.add_argument("--for", dest="for_", help="override every alert's for: (tests)")
    parser.add_argument(
        "--runbook-base-url",
        default=DEFAULT_RUNBOOK_BASE_URL,
        help="where alerts/playbooks.md is read; runbook_url = this + '#' + anchor "
        f"(default: {DEFAULT_RUNBOOK_BASE_URL}, a placeholder)",
    )
    args = parser.parse_args(argv)
    text = render(args.for_, args.runbook_base_url.rstrip("#"))
    board = dashboard_thresholds.render(DASHBOARD_PATH.read_text())
    if args.check:
        stale = [p for p, t in ((RULES_PATH, text), (DASHBOARD_PATH, board)) if p.read_text() != t]
        for path in stale:
            print(f"{path} is out of date: run python alerts/generate.py", file=sys.stderr)
        return 1 if stale else 0
    if args.stdout:
        sys.stdout.write(text)
    else:
        RULES_PATH.write_text(text)
        DASHBOARD_PATH.write_text(board)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
