"""Render ``alerts/partial-trust.rules.yml`` from ONE table of runbook thresholds.

The runbook's monitoring table is the source of every number here; change a threshold in
``ALERTS`` (and nowhere else), run ``python alerts/generate.py``, and commit both files. A test
(``tests/alerts/test_rules.py``) fails when the committed rules differ from this output, and the
dashboard test checks that the dashboard's threshold lines use the same numbers.

    python alerts/generate.py            # rewrite alerts/partial-trust.rules.yml
    python alerts/generate.py --check    # exit 1 if the committed file is out of date
    python alerts/generate.py --for 5s --stdout   # a copy with short ``for:`` (integration tests)

This file holds the table and the command line only; the rest is derived from the table by
``alert_spec.py`` (one row -> one alerting rule), ``recording_rules.py`` (the rates the
alerts read, built from the shapes in ``promql.py``) and ``rules_yaml.py`` (the file's text).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
RULES_PATH = HERE / "partial-trust.rules.yml"
# ``python alerts/generate.py`` puts alerts/, not the checkout, on sys.path; the tests load
# this file by path. Either way its siblings are imported as ``alerts.*`` from the checkout.
if str(HERE.parent) not in sys.path:
    sys.path.insert(0, str(HERE.parent))

from alerts import rules_yaml  # noqa: E402
from alerts.alert_spec import Alert  # noqa: E402

#: THE thresholds table (runbook, "Metrics to watch"). Everything else is derived from it.
ALERTS: tuple[Alert, ...] = (
    Alert(
        name="PartialTrustErrorRateHigh",
        unit="ratio",
        severity="critical",
        threshold=0.05,
        min_samples=20,
        for_="2m",
        expr=(
            "corridor:partial_trust_error_rate:ratio_rate5m > {threshold}\n"
            "and on (corridor) corridor:partial_trust_sampled:increase5m >= {min_samples}\n"
            # the page asks for a rollback: once the kill switch is on it has been done
            "and on (corridor) corridor:partial_trust_flag_enabled:max == 1"
        ),
        summary=(
            "Partial trust corridor {{ $labels.corridor }}: "
            "LLM error rate above @T@ - roll back now"
        ),
        description=(
            "{{ $value | humanizePercentage }} of sampled requests in corridor "
            "{{ $labels.corridor }} ended in error over the last 5m (threshold @T@, "
            "at least @N@ sampled). Runbook: rollback immediately - run "
            "`partial-trust flags kill`."
        ),
        anchor="partialtrusterrorratehigh",
        action="Rollback immediately",
    ),
    Alert(
        name="PartialTrustIntentMismatchHigh",
        unit="ratio",
        severity="warning",
        threshold=0.10,
        min_samples=20,
        for_="10m",
        expr=(
            "corridor:partial_trust_intent_mismatch_rate:ratio_rate5m > {threshold}\n"
            "and on (corridor) corridor:partial_trust_intent_checked:increase5m >= {min_samples}"
        ),
        summary="Partial trust corridor {{ $labels.corridor }}: intent mismatch rate above @T@",
        description=(
            "{{ $value | humanizePercentage }} of parsed LLM candidates in corridor "
            "{{ $labels.corridor }} disagreed with the baseline intent over the last 5m "
            "(threshold @T@, at least @N@ candidates). Investigate and reduce the sample rate."
        ),
        anchor="partialtrustintentmismatchhigh",
        action="Investigate, reduce sample rate",
    ),
    Alert(
        name="PartialTrustEntityKeyMismatchHigh",
        unit="ratio",
        severity="warning",
        threshold=0.20,
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
    ),
    Alert(
        name="PartialTrustLLMLatencyHigh",
        unit="seconds",
        severity="warning",
        threshold=0.5,
        min_samples=20,
        for_="10m",
        expr=(
            "corridor:partial_trust_llm_latency_seconds:p95_rate5m > {threshold}\n"
            "and on (corridor) corridor:partial_trust_llm_calls:increase5m >= {min_samples}"
        ),
        summary="Partial trust corridor {{ $labels.corridor }}: LLM latency p95 above @T@",
        description=(
            "The 95th percentile of LLM candidate latency in corridor {{ $labels.corridor }} "
            "is {{ $value | humanizeDuration }} over the last 5m (threshold @T@, at least @N@ "
            "calls). Reduce the timeout or the sample rate."
        ),
        anchor="partialtrustllmlatencyhigh",
        action="Reduce timeout or sample rate",
    ),
    Alert(
        name="PartialTrustAcceptanceRateDrop",
        unit="ratio",
        severity="warning",
        threshold=0.20,
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
    Alert(
        name="PartialTrustRiskLogStale",
        unit="seconds",
        severity="warning",
        threshold=3600,
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
    # The flag console's (flags/console, scraped at /flags/metrics) rollback-storm gauge:
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
)


def thresholds() -> dict[str, float]:
    """alert name -> threshold (the dashboard test reads this)."""
    return {a.name: a.threshold for a in ALERTS}


def render(for_override: str | None = None) -> str:
    return rules_yaml.render(ALERTS, for_override)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the committed file differs")
    parser.add_argument("--stdout", action="store_true", help="print instead of writing")
    parser.add_argument("--for", dest="for_", help="override every alert's for: (tests)")
    args = parser.parse_args(argv)
    text = render(args.for_)
    if args.check:
        if RULES_PATH.read_text() != text:
            print(f"{RULES_PATH} is out of date: run python alerts/generate.py", file=sys.stderr)
            return 1
        return 0
    if args.stdout:
        sys.stdout.write(text)
    else:
        RULES_PATH.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
