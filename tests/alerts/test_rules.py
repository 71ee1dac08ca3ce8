"""The alert rules, their promtool unit tests, the Alertmanager routing and the playbooks.

Real tools: ``promtool check rules`` / ``promtool test rules`` (Debian ``prometheus``) and
``amtool check-config`` / ``amtool config routes test`` (Debian ``prometheus-alertmanager``).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.alerts.monitoring import ALERTMANAGER_YML, ALERTS_DIR, RULES, load_generator
from tests.support.procs import require_binary

UNIT_TESTS = sorted((ALERTS_DIR / "tests").glob("*.yml"))
STORM = "PartialTrustRollbackStorm"
PLAYBOOKS = ALERTS_DIR / "playbooks.md"


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=ALERTS_DIR)


def _alert_rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(RULES.read_text())
    return [r for g in doc["groups"] for r in g["rules"] if "alert" in r]


def _record_rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(RULES.read_text())
    return [r for g in doc["groups"] for r in g["rules"] if "record" in r]


def _anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to dashes."""
    out = set()
    for line in markdown.splitlines():
        m = re.match(r"#{1,6}\s+(.*)", line)
        if m:
            slug = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-")
            out.add(slug)
    return out


def test_committed_rules_are_the_generators_output() -> None:
    """Thresholds live in one table (alerts/generate.py); the YAML is rendered from it."""
    generate = load_generator()
    assert RULES.read_text() == generate.render(), "run: python alerts/generate.py"


def test_generator_for_override_changes_only_for() -> None:
    generate = load_generator()
    fast = yaml.safe_load(generate.render("5s"))
    slow = yaml.safe_load(generate.render())
    for g_fast, g_slow in zip(fast["groups"], slow["groups"], strict=True):
        for r_fast, r_slow in zip(g_fast["rules"], g_slow["rules"], strict=True):
            if "alert" in r_fast:
                assert r_fast.pop("for") == "5s"
                r_slow.pop("for")
            assert r_fast == r_slow


def test_promtool_check_rules_is_clean() -> None:
    promtool = require_binary("promtool")
    proc = _run([promtool, "check", "rules", str(RULES)])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout
    assert "WARNING" not in (proc.stdout + proc.stderr).upper()


def test_promtool_unit_tests_pass() -> None:
    promtool = require_binary("promtool")
    assert UNIT_TESTS, "alerts/tests/*.yml missing"
    proc = _run([promtool, "test", "rules", *(str(p) for p in UNIT_TESTS)])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("SUCCESS") == len(UNIT_TESTS), proc.stdout


def test_unit_tests_cover_every_alert_firing_and_silent() -> None:
    """Each alert has a firing case (exact labels + annotations) and silent cases."""
    firing: dict[str, int] = {}
    silent: dict[str, int] = {}
    groups = [g["name"] for g in yaml.safe_load(RULES.read_text())["groups"]]
    for path in UNIT_TESTS:
        doc = yaml.safe_load(path.read_text())
        # without it promtool evaluates the groups in random order and the alerts may read
        # recording rules one evaluation old: flaky exact-value assertions
        assert doc["group_eval_order"] == groups, path
        for group in doc["tests"]:
            for case in group.get("alert_rule_test", []):
                name = case["alertname"]
                expected = case.get("exp_alerts") or []
                bucket = firing if expected else silent
                bucket[name] = bucket.get(name, 0) + 1
                for alert in expected:
                    assert {"severity", "corridor"} <= set(alert["exp_labels"]), (path, name)
                    assert {"summary", "description", "runbook_url"} <= set(
                        alert["exp_annotations"]
                    ), (path, name)
    for rule in _alert_rules():
        name = rule["alert"]
        assert firing.get(name, 0) >= 1, f"{name}: no firing case"
        # silent: while pending, just below the threshold, under the minimum sample count
        assert silent.get(name, 0) >= 3, f"{name}: fewer than 3 silent cases"


def _rule_id(rule: dict[str, Any]) -> str:
    extra = [f"{k}{v}" for k, v in rule["labels"].items() if k != "severity"]
    return "-".join([rule["alert"], *extra])


@pytest.mark.parametrize("rule", _alert_rules(), ids=_rule_id)
def test_alert_contract(rule: dict[str, Any]) -> None:
    """One shape for every alert: expr, for, severity, summary, description, runbook_url."""
    generate = load_generator()
    specs = {(a.name, tuple(a.labels)): a for a in generate.ALERTS}
    extra = tuple((k, v) for k, v in rule["labels"].items() if k != "severity")
    spec = specs[(rule["alert"], extra)]
    assert set(rule) == {"alert", "expr", "for", "labels", "annotations"}
    assert rule["for"], "every alert waits before firing"
    assert rule["labels"]["severity"] in {"critical", "warning"}
    assert set(rule["annotations"]) == {"summary", "description", "action", "runbook_url"}
    assert "{{ $value" in rule["annotations"]["description"]
    assert "{{ $labels.corridor }}" in rule["annotations"]["summary"]
    # the minimum-sample guard is part of every expression
    assert f">= {spec.min_samples}" in rule["expr"]
    # a stage-aware rule reads the stage and says which one it judges
    if spec.stage is not None:
        assert rule["labels"]["stage"] == str(spec.stage)
        assert f"from_sample_rate == {spec.stage}" in rule["expr"]
        assert f"stage {spec.stage}'s" in rule["annotations"]["description"]
    # absolute, from the documented default base, to a section that exists
    base, anchor = rule["annotations"]["runbook_url"].split("#", 1)
    assert base == generate.DEFAULT_RUNBOOK_BASE_URL and base.startswith("https://")
    assert anchor in _anchors(PLAYBOOKS.read_text()), f"no playbook section #{anchor}"


def test_runbook_base_url_is_configurable(capsys: pytest.CaptureFixture[str]) -> None:
    generate = load_generator()
    base = "https://forge.test/org/partial-trust/blob/main/alerts/playbooks.md"
    assert generate.main(["--stdout", "--runbook-base-url", base]) == 0
    doc = yaml.safe_load(capsys.readouterr().out)
    rules = [r for g in doc["groups"] for r in g["rules"] if "alert" in r]
    anchors = _anchors(PLAYBOOKS.read_text())
    for rule in rules:
        url = rule["annotations"]["runbook_url"]
        assert url.startswith(base + "#") and url.removeprefix(base + "#") in anchors, url


def test_generate_check_covers_the_rules_and_the_dashboard() -> None:
    assert load_generator().main(["--check"]) == 0


def test_which_alerts_page() -> None:
    """Critical: the stages' effective rollback lines, the absence page and the storm."""
    critical = {r["alert"] for r in _alert_rules() if r["labels"]["severity"] == "critical"}
    assert critical == {
        "PartialTrustErrorRateHigh",
        "PartialTrustIntentMismatchRollback",
        "PartialTrustLLMLatencyRollback",
        "PartialTrustTargetDown",
        STORM,
    }


def test_rollback_storm_alert_reads_the_consoles_storm() -> None:
    """PartialTrustRollbackStorm is built on the flag console's own storm definition."""
    from partial_trust.apps.console.webhook import DEFAULT_MATCHERS, AutoRollback

    spec = {a.name: a for a in load_generator().ALERTS}[STORM]
    rule = next(r for r in _alert_rules() if r["alert"] == STORM)
    default = AutoRollback()
    # the guard never hides a storm of a console with the default storm threshold
    assert spec.min_samples <= default.storm_threshold
    # the gauge is read over the console's storm window (a storm may last a single scrape)
    minutes = int(default.storm_window.total_seconds() // 60)
    assert f"max_over_time(partial_trust_console_rollback_storm[{minutes}m])" in rule["expr"]
    assert "partial_trust_console_auto_rollbacks_total" in rule["expr"]
    # the storm page is never itself a rollback trigger for the console's webhook
    labels = {"alertname": STORM, **rule["labels"]}
    assert not all(labels.get(k) == v for k, v in DEFAULT_MATCHERS.items())


def test_no_inhibit_rule_silences_the_rollback_storm() -> None:
    """Static: no inhibit rule's target matchers match the storm alert's labels (amtool has
    no inhibition test; test_alertmanager_live.py checks it on a real Alertmanager)."""
    rule = next(r for r in _alert_rules() if r["alert"] == STORM)
    labels = {"alertname": STORM, "corridor": "add_shopping_item", **rule["labels"]}
    doc = yaml.safe_load(ALERTMANAGER_YML.read_text())
    for inhibit in doc["inhibit_rules"]:
        matches = []
        for matcher in inhibit["target_matchers"]:
            m = re.fullmatch(r'(\w+)="([^"]*)"', matcher)
            assert m, f"unexpected matcher form {matcher!r}: extend this test"
            matches.append(labels.get(m.group(1)) == m.group(2))
        assert not all(matches), inhibit


def test_runbook_thresholds() -> None:
    """The runbook's lines, read back from the rules built from the one table: per stage,
    rollback lines page (the stricter of the stage's and the monitoring table's), go lines
    warn; the monitoring table's other rows warn at every stage."""
    assert load_generator().thresholds() == {
        "PartialTrustErrorRateHigh": (0.03, 0.05),  # stages 1 and 2: 5%, stage 3: 3%
        "PartialTrustErrorRateAboveGoLine": (0.02, 0.03, 0.05),
        "PartialTrustIntentMismatchHigh": (0.05, 0.10),
        "PartialTrustIntentMismatchRollback": (0.05, 0.10),
        "PartialTrustEntityKeyMismatchHigh": (0.20,),
        "PartialTrustLLMLatencyHigh": (0.3, 0.4, 0.5),
        "PartialTrustLLMLatencyRollback": (0.4, 0.5),
        "PartialTrustLLMTimeoutShareHigh": (0.05,),
        "PartialTrustAcceptanceRateDrop": (0.20,),
        "PartialTrustAgreementLow": (0.80,),  # the shadow stage's week-1 line
        "PartialTrustRiskLogStale": (3600,),
        "PartialTrustNoSampledTraffic": (1,),
        "PartialTrustTargetDown": (1,),
        "PartialTrustRollbackStorm": (1,),
        "PartialTrustReviewStoreFailing": (0,),  # any dropped_off/failed case in 10m
    }


def test_recording_rules_follow_the_naming_convention() -> None:
    for rule in _record_rules():
        level, metric, operation = rule["record"].split(":")
        assert level in {"corridor", "corridor_le", "corridor_mode"}, rule["record"]
        assert metric.startswith("partial_trust_") and operation, rule["record"]
        # summed across instances: no instance-level series survives
        assert (
            "sum by (corridor" in rule["expr"]
            or "max by (corridor" in rule["expr"]
            or sum(
                rule["expr"].count(f"{lv}:") for lv in ("corridor", "corridor_le", "corridor_mode")
            )
            >= 1
        ), rule["record"]


def test_kill_switch_in_the_rollback_pages_and_playbook() -> None:
    rollbacks = [r for r in _alert_rules() if r["annotations"]["action"] == "Rollback immediately"]
    assert {r["alert"] for r in rollbacks} == {
        "PartialTrustErrorRateHigh",
        "PartialTrustIntentMismatchRollback",
        "PartialTrustLLMLatencyRollback",
    }
    for page in rollbacks:
        assert page["labels"]["severity"] == "critical"
        assert page["annotations"]["description"].endswith("`partial-trust flags kill`.")
    assert "partial-trust flags kill" in PLAYBOOKS.read_text()


# -- Alertmanager ----------------------------------------------------------------------------


def test_amtool_check_config_is_clean() -> None:
    amtool = require_binary("amtool")
    proc = _run([amtool, "check-config", str(ALERTMANAGER_YML)])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


def test_amtool_accepts_the_config_with_every_example_switched_on(tmp_path: Path) -> None:
    """The commented production examples (PagerDuty, Slack) are marked "#| ": switched on,
    the config must still be valid."""
    amtool = require_binary("amtool")
    text = ALERTMANAGER_YML.read_text()
    assert text.count("#| ") >= 10
    examples = tmp_path / "alertmanager.yml"
    examples.write_text(text.replace("#| ", ""))
    doc = yaml.safe_load(examples.read_text())
    pager = next(r for r in doc["receivers"] if r["name"] == "pager")
    assert "pagerduty_configs" in pager
    assert "slack_configs" in next(r for r in doc["receivers"] if r["name"] == "chat")
    proc = _run([amtool, "check-config", str(examples)])
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        (["severity=critical", "alertname=PartialTrustErrorRateHigh"], "auto-rollback,pager"),
        (["severity=critical", f"alertname={STORM}"], "pager"),
        (["severity=warning", "alertname=PartialTrustIntentMismatchHigh"], "chat"),
        (["severity=warning", "alertname=PartialTrustRiskLogStale"], "chat"),
        (["severity=info", "alertname=Unrouted"], "chat"),  # the default route
    ],
    ids=["critical-pages", "storm-pages", "warning-chat", "stale-chat", "default-chat"],
)
def test_amtool_routes(labels: list[str], receiver: str) -> None:
    amtool = require_binary("amtool")
    argv = [amtool, "config", "routes", "test", f"--config.file={ALERTMANAGER_YML}"]
    argv += [f"--verify.receivers={receiver}", "corridor=add_shopping_item", *labels]
    proc = _run(argv)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip() == receiver


@pytest.mark.parametrize("rule", _alert_rules(), ids=_rule_id)
def test_amtool_routes_every_alert_by_its_severity(rule: dict[str, Any]) -> None:
    """Every rule in the committed file, with its own labels: critical pages, warning chats."""
    amtool = require_binary("amtool")
    receiver = {"critical": "pager", "warning": "chat"}[rule["labels"]["severity"]]
    if rule["alert"] == "PartialTrustErrorRateHigh":  # also rolls back (test_auto_rollback_route)
        receiver = f"auto-rollback,{receiver}"
    labels = [f"alertname={rule['alert']}", "corridor=add_shopping_item"]
    labels += [f"{k}={v}" for k, v in rule["labels"].items()]
    argv = [amtool, "config", "routes", "test", f"--config.file={ALERTMANAGER_YML}"]
    proc = _run([*argv, f"--verify.receivers={receiver}", *labels])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip() == receiver


def test_alertmanager_groups_by_corridor_and_inhibits_warnings() -> None:
    doc = yaml.safe_load(ALERTMANAGER_YML.read_text())
    assert doc["route"]["group_by"] == ["corridor", "alertname"]
    [inhibit] = doc["inhibit_rules"]
    assert inhibit["equal"] == ["corridor"]
    assert 'alertname="PartialTrustErrorRateHigh"' in inhibit["source_matchers"]
    assert inhibit["target_matchers"] == ['severity="warning"']


def test_playbooks_have_a_section_per_alert(tmp_path: Path) -> None:
    anchors = _anchors(PLAYBOOKS.read_text())
    for rule in _alert_rules():
        assert rule["alert"].lower() in anchors
