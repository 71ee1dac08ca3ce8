"""Render ``alerts/partial-trust.rules.yml`` from ONE table of runbook thresholds.

The runbook's monitoring table is the source of every number here; change a threshold in
``ALERTS`` (and nowhere else), run ``python alerts/generate.py``, and commit both files. A test
(``tests/alerts/test_rules.py``) fails when the committed rules differ from this output, and the
dashboard test checks that the dashboard's threshold lines use the same numbers.

    python alerts/generate.py            # rewrite alerts/partial-trust.rules.yml
    python alerts/generate.py --check    # exit 1 if the committed file is out of date
    python alerts/generate.py --for 5s --stdout   # a copy with short ``for:`` (integration tests)

Naming follows the Prometheus convention ``level:metric:operations``: ``corridor:`` rules are
summed across instances (and workers) by corridor.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
RULES_PATH = HERE / "partial-trust.rules.yml"
PLAYBOOK = "alerts/playbooks.md"

SAMPLED = 'status=~"accepted_llm|fallback_deterministic|error"'
#: outcomes that must produce a risk-log line (everything but skipped/not_sampled)
LOGGED = 'reason!="not_sampled"'


@dataclass(frozen=True)
class Alert:
    name: str
    severity: str
    threshold: float  # the runbook's number, in the unit of the alert's value
    unit: str  # how the threshold reads in text: "ratio" (as %), "seconds", "count"
    min_samples: int  # the guard: below this many samples in the window, never fire
    for_: str
    expr: str  # ``{threshold}`` and ``{min_samples}`` are filled in from the fields above
    summary: str  # Go templates own the braces here: @T@ / @N@ become threshold / min_samples
    description: str
    anchor: str
    action: str

    def render_expr(self) -> str:
        return self.expr.format(threshold=_num(self.threshold), min_samples=self.min_samples)

    def render_text(self, text: str) -> str:
        return text.replace("@T@", self.threshold_text).replace("@N@", str(self.min_samples))

    @property
    def threshold_text(self) -> str:
        if self.unit == "ratio":
            return f"{self.threshold * 100:g}%"
        if self.unit == "seconds":
            if self.threshold < 1:
                return f"{self.threshold * 1000:g} ms"
            if self.threshold % 3600 == 0:
                return f"{self.threshold / 3600:g} h"
            return f"{self.threshold:g} s"
        return _num(self.threshold)


def _num(value: float) -> str:
    return f"{value:g}"


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


def _rate(selector: str, window: str) -> str:
    return f"sum by (corridor) (rate(partial_trust_decisions_total{{{selector}}}[{window}]))"


def _increase(metric: str, selector: str, window: str) -> str:
    sel = f"{{{selector}}}" if selector else ""
    return f"sum by (corridor) (increase({metric}{sel}[{window}]))"


def recording_rules() -> list[dict[str, str]]:
    rules: list[dict[str, str]] = []

    def rec(name: str, expr: str) -> None:
        rules.append({"record": name, "expr": expr})

    for w in ("5m", "1h"):
        rec(f"corridor:partial_trust_sampled:rate{w}", _rate(SAMPLED, w))
        rec(f"corridor:partial_trust_errors:rate{w}", _rate('status="error"', w))
        rec(f"corridor:partial_trust_accepted:rate{w}", _rate('status="accepted_llm"', w))
        rec(
            f"corridor:partial_trust_error_rate:ratio_rate{w}",
            f"corridor:partial_trust_errors:rate{w}\n"
            f"/ (corridor:partial_trust_sampled:rate{w} > 0)",
        )
        rec(
            f"corridor:partial_trust_acceptance_rate:ratio_rate{w}",
            f"corridor:partial_trust_accepted:rate{w}\n"
            f"/ (corridor:partial_trust_sampled:rate{w} > 0)",
        )
        cand = "partial_trust_candidates_total"
        rec(
            f"corridor:partial_trust_intent_mismatch_rate:ratio_rate{w}",
            f'sum by (corridor) (rate({cand}{{intent_match="false"}}[{w}]))\n'
            f'/ (sum by (corridor) (rate({cand}{{intent_match=~"true|false"}}[{w}])) > 0)',
        )
        rec(
            f"corridor:partial_trust_entity_key_mismatch_rate:ratio_rate{w}",
            f'sum by (corridor) (rate({cand}{{entity_key_match="false"}}[{w}]))\n'
            f'/ (sum by (corridor) (rate({cand}{{entity_key_match=~"true|false"}}[{w}])) > 0)',
        )
        rec(f"corridor:partial_trust_sampled:increase{w}", _increase(
            "partial_trust_decisions_total", SAMPLED, w))  # fmt: skip
    # denominators of the mismatch rates: candidates whose match is known (the analyzer's
    # "not null"), so a label value for "unknown" would never dilute the rates
    rec(
        "corridor:partial_trust_intent_checked:increase5m",
        _increase("partial_trust_candidates_total", 'intent_match=~"true|false"', "5m"),
    )
    rec(
        "corridor:partial_trust_entity_key_checked:increase5m",
        _increase("partial_trust_candidates_total", 'entity_key_match=~"true|false"', "5m"),
    )
    rec(
        "corridor:partial_trust_llm_calls:increase5m",
        _increase("partial_trust_llm_latency_seconds_count", "", "5m"),
    )
    rec(
        "corridor_le:partial_trust_llm_latency_seconds_bucket:rate5m",
        "sum by (corridor, le) (rate(partial_trust_llm_latency_seconds_bucket[5m]))",
    )
    for q in ("50", "95", "99"):
        rec(
            f"corridor:partial_trust_llm_latency_seconds:p{q}_rate5m",
            f"histogram_quantile(0.{q}, "
            "corridor_le:partial_trust_llm_latency_seconds_bucket:rate5m)",
        )

    # the acceptance rate's own level an hour ago (the hour from 2h to 1h ago), straight from
    # the raw counters: no recorded history needed, right from the first evaluation after a
    # Prometheus restart, and a sudden drop stays visible for an hour instead of being
    # diluted into an adjacent baseline within minutes
    def before(sel: str) -> str:
        return f"partial_trust_decisions_total{{{sel}}}[1h] offset 1h"

    accepted = 'status="accepted_llm"'
    rec(
        "corridor:partial_trust_sampled:increase1h_offset1h",
        f"sum by (corridor) (increase({before(SAMPLED)}))",
    )
    rec(
        "corridor:partial_trust_acceptance_rate:ratio_rate1h_offset1h",
        f"sum by (corridor) (rate({before(accepted)}))\n"
        f"/ (sum by (corridor) (rate({before(SAMPLED)})) > 0)",
    )
    rec(
        "corridor:partial_trust_acceptance_rate:drop_ratio_rate5m_vs_rate1h_offset1h",
        "1 - corridor:partial_trust_acceptance_rate:ratio_rate5m\n"
        "/ corridor:partial_trust_acceptance_rate:ratio_rate1h_offset1h",
    )
    rec("corridor:partial_trust_sampled:increase30m", _increase(
        "partial_trust_decisions_total", SAMPLED, "30m"))  # fmt: skip
    rec(
        "corridor:partial_trust_eligible:increase30m",
        "sum by (corridor) (increase(partial_trust_decisions_total"
        '{status=~"accepted_llm|fallback_deterministic|error"}[30m]))\n'
        "+ sum by (corridor) (increase(partial_trust_decisions_total"
        '{reason=~"not_sampled|policy_disabled|flags_unavailable"}[30m]))',
    )
    rec(
        "corridor:partial_trust_logged:increase1h",
        _increase("partial_trust_decisions_total", LOGGED, "1h"),
    )
    rec("corridor:partial_trust_flag_enabled:max", "max by (corridor) (partial_trust_flag_enabled)")
    rec(
        "corridor:partial_trust_flag_sample_rate:max",
        "max by (corridor) (partial_trust_flag_sample_rate)",
    )
    return rules


def alert_rules(for_override: str | None = None) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for a in ALERTS:
        out.append(
            {
                "alert": a.name,
                "expr": a.render_expr(),
                "for": for_override or a.for_,
                "labels": {"severity": a.severity},
                "annotations": {
                    "summary": a.render_text(a.summary),
                    "description": a.render_text(a.description),
                    "action": a.action,
                    "runbook_url": f"{PLAYBOOK}#{a.anchor}",
                },
            }
        )
    return out


def thresholds() -> dict[str, float]:
    """alert name -> threshold (the dashboard test reads this)."""
    return {a.name: a.threshold for a in ALERTS}


class _Dumper(yaml.SafeDumper):
    pass


def _str(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(str, _str)

HEADER = """\
# GENERATED by alerts/generate.py from its ALERTS table - do not edit by hand.
# Thresholds are the rollout runbook's monitoring table; change them in alerts/generate.py.
"""


def render(for_override: str | None = None) -> str:
    doc = {
        "groups": [
            {"name": "partial-trust-recording", "rules": recording_rules()},
            {"name": "partial-trust-alerts", "rules": alert_rules(for_override)},
        ]
    }
    body = yaml.dump(doc, Dumper=_Dumper, sort_keys=False, width=1000, allow_unicode=True)
    return HEADER + body


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
