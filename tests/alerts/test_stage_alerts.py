"""The stage-aware alerts, the gate and the playbook tell the operator the same thing.

All three read ``partial_trust/thresholds.py``. Here, for a grid of figures per stage, the gate's
verdict (``evaluate``) and the severity of the alert rules built from the table agree:
ROLLBACK <-> a page (critical), NO-GO <-> a warning, GO <-> silence. The promtool files in
``alerts/tests/`` prove the rules file behaves as its specs say (test_rules.py runs them).
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from partial_trust import thresholds
from partial_trust.apps.analysis.gate import Verdict, evaluate
from tests.alerts.monitoring import ALERTS_DIR, load_generator
from tests.apps.analysis.test_gate import N, figs

OPS: dict[str, Callable[[float, float], bool]] = {">": operator.gt, ">=": operator.ge}
SAYS = {Verdict.GO: "silent", Verdict.NO_GO: "warning", Verdict.ROLLBACK: "critical"}
RANK = ("silent", "warning", "critical")


def alert_says(stage: int, figure: str, value: float) -> str:
    """The most severe of the table-built 5-minute rules of ``figure`` that fire at ``value``
    (in the rule's unit) at ``stage``."""
    worst = "silent"
    for spec in load_generator().ALERTS:
        if spec.figure != figure or spec.stage != stage:
            continue
        if dict(spec.labels).get("window", "5m") != "5m":
            continue  # the outage rule needs a 1m window; the grid is a steady 5m rate
        if OPS[spec.op](value, spec.threshold):
            worst = max(worst, spec.severity, key=RANK.index)
    return worst


@pytest.mark.parametrize("stage", [1, 2, 3])
def test_error_rate_grid_gate_and_alerts_agree(stage: int) -> None:
    for per_mille in range(0, 151):  # 0% .. 15% in 0.1% steps, the lines included
        verdict = evaluate(figs(errors=per_mille * N // 1000), stage)[0]
        says = alert_says(stage, "error_rate", per_mille / 1000)
        assert says == SAYS[verdict], (stage, per_mille / 1000, verdict)


@pytest.mark.parametrize("stage", [1, 2, 3])
def test_intent_mismatch_grid_gate_and_alerts_agree(stage: int) -> None:
    for per_mille in range(0, 201):
        verdict = evaluate(figs(intent_false=per_mille * N // 1000), stage)[0]
        says = alert_says(stage, "intent_mismatch_rate", per_mille / 1000)
        assert says == SAYS[verdict], (stage, per_mille / 1000, verdict)


@pytest.mark.parametrize("stage", [1, 2, 3])
def test_latency_grid_gate_and_alerts_agree(stage: int) -> None:
    """Off the lines: they are histogram bucket edges, where Prometheus' p95 lands exactly on
    the edge, so the alert needs a p95 above the line (the gate fails its go line at it)."""
    for ms in range(7, 700, 10):
        verdict = evaluate(figs(p95=float(ms)), stage)[0]
        says = alert_says(stage, "latency_p95", ms / 1000)
        assert says == SAYS[verdict], (stage, ms, verdict)


def test_stage_one_at_8_percent_the_gate_and_the_page_agree() -> None:
    """The issue's case: the gate held while the page said "roll back now"."""
    assert evaluate(figs(errors=800), 1)[0] is Verdict.ROLLBACK
    assert alert_says(1, "error_rate", 0.08) == "critical"
    cases = yaml.safe_load((ALERTS_DIR / "tests" / "error_rate.yml").read_text())["tests"]
    [case] = [c for c in cases if c["name"].startswith("stage 1 at 8% errors pages")]
    [firing] = [t for t in case["alert_rule_test"] if t.get("exp_alerts")]
    [alert] = firing["exp_alerts"]
    assert alert["exp_labels"]["stage"] == "1"
    assert "the gate says ROLLBACK" in alert["exp_annotations"]["description"]


def test_stage_for_rate_matches_the_recording_rule() -> None:
    """The PromQL stage rule is built from the same presets as ``stage_for_rate``."""
    assert [thresholds.stage_for_rate(r) for r in (0, 0.01, 0.011, 0.03, 0.05, 0.06, 0.1, 1)] == [
        1, 1, 2, 2, 2, 3, 3, 3,
    ]  # fmt: skip
    doc = yaml.safe_load((ALERTS_DIR / "partial-trust.rules.yml").read_text())
    [rule] = [
        r
        for g in doc["groups"]
        for r in g["rules"]
        if r.get("record") == "corridor:partial_trust_rollout_stage:from_sample_rate"
    ]
    for number, stage in list(thresholds.STAGES.items())[:-1]:
        assert f"<= {stage.sample_rate:g}) * 0 + {number}" in rule["expr"]


def test_the_playbook_states_the_one_rule_and_the_table() -> None:
    playbook = (ALERTS_DIR / "playbooks.md").read_text()
    assert thresholds.PAGE_RULE in playbook
    from alerts.stage_alerts import markdown_table  # alerts/ is on sys.path via the generator

    assert markdown_table() in playbook, "update the table in alerts/playbooks.md"
    # the timeout note: the latency lines the default timeout hides
    assert "cannot fire" in playbook and "PartialTrustLLMTimeoutShareHigh" in playbook
    # gate, /health and playbook say the same: the playbook names /health's field
    assert "latency_lines_unreachable" in playbook and "does not report it" not in playbook


def test_the_one_rule_in_numbers() -> None:
    """Effective rollback = the stricter of the monitoring table's and the stage's own."""
    monitoring = {a.figure: a.limit for a in thresholds.MONITORING if a.rollback}
    for number, stage in thresholds.STAGES.items():
        for bound in stage.rollback:
            line = thresholds.rollback_line(number, bound.figure)
            assert line == min(bound.limit, monitoring.get(bound.figure, bound.limit))
        for figure, limit in monitoring.items():
            line = thresholds.rollback_line(number, figure)
            assert line is not None and line <= limit
    assert thresholds.category(1, "error_rate", 0.08) == "rollback"
    assert thresholds.category(2, "error_rate", 0.04) == "hold"
    assert thresholds.category(3, "error_rate", 0.019) == "go"


def test_health_names_the_latency_lines_the_timeout_hides() -> None:
    """At the default 200 ms every latency line (300/400/500 ms) is out of reach; at 450 ms
    only the 500 ms lines are; with no timeout known, none is claimed."""
    from partial_trust import thresholds

    at_200 = thresholds.unreachable_latency_lines(200)
    assert {line["ms"] for line in at_200} == {300, 400, 500}
    assert {"stage": 3, "line": "go", "ms": 300} in at_200
    assert {line["line"] for line in at_200} == {"go", "rollback", "monitoring"}
    at_450 = thresholds.unreachable_latency_lines(450)
    assert {line["ms"] for line in at_450} == {500}
    assert thresholds.unreachable_latency_lines(None) == []
    assert thresholds.unreachable_latency_lines(1000) == []


@pytest.mark.parametrize(
    ("extra", "cut_ms", "hidden"),
    [
        ({}, 200, {300, 400, 500}),  # the defaults: every latency line
        ({"PARTIAL_TRUST_TIMEOUT_MS": "450"}, 450, {500}),
        # the flag says 800 ms, the default profile cuts at 500: the 500 ms lines stay hidden
        ({"PARTIAL_TRUST_TIMEOUT_MS": "800"}, 500, {500}),
        # a profile capped at 800 ms lets an 800 ms timeout reach every line
        ({"PARTIAL_TRUST_TIMEOUT_MS": "800", "PARTIAL_TRUST_PROFILE_ID": "reliable"}, 800, set()),
    ],
)
def test_health_counts_the_profile_cap_in_the_timeout(
    tmp_path: Path, extra: dict[str, str], cut_ms: int, hidden: set[int]
) -> None:
    """``/health`` judges the lines by where a call is really cut: min(flag, profile cap)."""
    from partial_trust.environment import Environment
    from partial_trust.middleware.factory import CorridorStack

    env = {
        "PARTIAL_TRUST_FLAGS_PROVIDER": "env",
        "PARTIAL_TRUST_ENABLED": "true",
        "PARTIAL_TRUST_RISK_LOG_PATH": str(tmp_path / "risk.jsonl"),
        **extra,
    }
    stack = CorridorStack.from_env(Environment.from_mapping(env))
    health = stack.status()["latency_lines_unreachable"]
    assert health["timeout_ms"] == cut_ms
    assert {line["ms"] for line in health["lines"]} == hidden
    assert "timeout_cap_ms" in health["why"]
