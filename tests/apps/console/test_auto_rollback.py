"""Auto-rollback with a real Alertmanager (Debian ``prometheus-alertmanager``):

    POST /api/v2/alerts -> Alertmanager (the committed alerts/alertmanager.yml; the pager
    receiver pointed at the console, with http_config.authorization) -> console /alertmanager

The critical PartialTrustErrorRateHigh alert turns the corridor off in the flag file within 5 s,
with the alert's fingerprint in the audit log; the resolved notification that follows changes
nothing, and the warning-severity alerts (routed to chat) never reach the console.
"""

from __future__ import annotations

import shutil
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from partial_trust.flags import flagfile
from tests.alerts.monitoring import (
    CORRIDOR,
    WebhookReceiver,
    alertmanager_test_config,
    run_alertmanager,
    wait_until,
)
from tests.apps.console.helpers import SHIPPED, WEBHOOK_TOKEN, audit_lines, console_process

pytestmark = pytest.mark.integration
PAGE = "PartialTrustErrorRateHigh"


def config(console_url: str, chat_url: str) -> str:
    """The committed routing, with the pager receiver pointed at the console's webhook."""
    doc = yaml.safe_load(alertmanager_test_config(f"{console_url}/alertmanager", chat_url))
    for receiver in doc["receivers"]:
        if receiver["name"] == "pager":
            for hook in receiver["webhook_configs"]:
                hook["http_config"] = {
                    "authorization": {"type": "Bearer", "credentials": WEBHOOK_TOKEN}
                }
    return yaml.safe_dump(doc, sort_keys=False)


def post_alert(
    am: Any, *, severity: str, alertname: str, ends: bool = False, corridor: str = CORRIDOR
) -> None:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    item: dict[str, Any] = {
        "labels": {"alertname": alertname, "severity": severity, "corridor": corridor},
        "annotations": {"summary": f"corridor {corridor}: test alert"},
        "generatorURL": "http://prometheus.test/graph",
    }
    if ends:
        item["endsAt"] = now
    else:
        item["startsAt"] = now
    httpx.post(f"{am.url}/api/v2/alerts", json=[item], timeout=5).raise_for_status()


def enabled(flags: Path) -> object:
    return flagfile.served_value(flagfile.load(flags).flags[flagfile.ENABLED])[0]


def webhook_results(console: Any) -> dict[str, float]:
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"{console.url}/metrics", timeout=5).text
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "partial_trust_console_webhook_alerts_total":
                out[s.labels["result"]] = s.value
    return out


def test_alertmanager_rolls_the_corridor_back(tmp_path: Path) -> None:
    flags = tmp_path / "partial-trust.flagd.json"
    shutil.copy(SHIPPED, flags)
    flagfile.set_flag(flags, flagfile.SAMPLE_RATE, 0.05)
    flagfile.resume(flags)
    env = {"PARTIAL_TRUST_WEBHOOK_TOKEN": WEBHOOK_TOKEN}
    chat = WebhookReceiver("chat")
    with (
        console_process(tmp_path, flags, tmp_path / "risk.jsonl", **env) as console,
        chat.running(),
        run_alertmanager(tmp_path, config(console.url, chat.url)) as am,
    ):
        # a warning for the same corridor goes to chat, never to the console
        post_alert(am, severity="warning", alertname="PartialTrustLatencyHigh")
        assert chat.wait_for(lambda r: bool(r.alerts()), timeout_s=10)
        assert enabled(flags) is True

        started = time.monotonic()
        post_alert(am, severity="critical", alertname=PAGE)
        assert wait_until(lambda: enabled(flags) is False, timeout_s=5, step_s=0.05), (
            f"the corridor is still on 5 s after the alert\n{console.output()}"
        )
        print(f"alert posted -> flag off in {(time.monotonic() - started) * 1000:.0f} ms")
        killed = flags.read_bytes()
        fingerprints = [
            a["fingerprint"]
            for a in httpx.get(f"{am.url}/api/v2/alerts", timeout=5).json()
            if a["labels"]["alertname"] == PAGE
        ]
        (line,) = [a for a in audit_lines(tmp_path) if a["source"] == "auto-rollback"]
        assert line["fingerprint"] == fingerprints[0]
        assert (line["key"], line["old"], line["new"]) == (flagfile.ENABLED, True, False)
        assert line["alertname"] == PAGE and line["corridor"] == CORRIDOR

        post_alert(am, severity="critical", alertname=PAGE, ends=True)
        assert wait_until(lambda: webhook_results(console).get("resolved", 0) >= 1, 10), (
            "the resolved notification never reached the console"
        )
        assert flags.read_bytes() == killed and enabled(flags) is False
        assert len(audit_lines(tmp_path)) == 1
        assert webhook_results(console)["rolled_back"] == 1


def test_alertmanager_rolls_back_only_the_corridor_it_names(tmp_path: Path) -> None:
    """Two corridors on; the page for the read corridor turns off its switch only, and an
    alert naming a corridor off the allowlist reaches the console and changes nothing."""
    from partial_trust.corridors import flag_keys

    read_on = flag_keys("show_shopping_list").enabled
    flags = tmp_path / "partial-trust.flagd.json"
    shutil.copy(SHIPPED, flags)
    flagfile.resume(flags)
    flagfile.resume(flags, corridor="show_shopping_list")

    def on(key: str) -> object:
        return flagfile.served_value(flagfile.load(flags).flags[key])[0]

    env = {"PARTIAL_TRUST_WEBHOOK_TOKEN": WEBHOOK_TOKEN}
    chat = WebhookReceiver("chat")
    with (
        console_process(tmp_path, flags, tmp_path / "risk.jsonl", **env) as console,
        chat.running(),
        run_alertmanager(tmp_path, config(console.url, chat.url)) as am,
    ):
        post_alert(am, severity="critical", alertname=PAGE, corridor="show_shopping_list")
        assert wait_until(lambda: on(read_on) is False, timeout_s=5, step_s=0.05), (
            f"the read corridor is still on 5 s after its alert\n{console.output()}"
        )
        assert on(flagfile.ENABLED) is True  # the shopping corridor keeps running
        post_alert(am, severity="critical", alertname=PAGE, corridor="no_such_corridor")
        assert wait_until(
            lambda: webhook_results(console).get("unknown_corridor", 0) >= 1, timeout_s=10
        ), f"the unknown corridor's alert never reached the console\n{console.output()}"
        assert on(flagfile.ENABLED) is True
        sources = [(a["source"], a.get("corridor")) for a in audit_lines(tmp_path)]
        assert sources == [("auto-rollback", "show_shopping_list"), ("webhook", None)]
        assert webhook_results(console)["rolled_back"] == 1
