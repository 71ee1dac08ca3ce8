"""The Alertmanager webhook in-process: kill on the critical alert, once, and the storm metric."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette

from partial_trust.apps.console.webhook import AutoRollback
from partial_trust.flags import flagfile
from tests.apps.console.helpers import (
    AUTH,
    CORRIDOR,
    HOOK_AUTH,
    alert,
    audit_lines,
    client,
    make_console,
    notification,
    served,
)

pytestmark = pytest.mark.anyio


async def hook(app: Starlette, body: dict[str, Any], headers: dict[str, str] = HOOK_AUTH) -> Any:
    async with client(app) as c:
        return await c.post("/alertmanager", json=body, headers=headers)


async def resume(app: Starlette) -> None:
    async with client(app) as c:
        resp = await c.post("/api/resume", json={"reason": "fixed"}, headers=AUTH)
    assert resp.status_code == 200, resp.text


async def metrics(app: Starlette) -> dict[str, float]:
    async with client(app) as c:
        text = (await c.get("/metrics")).text
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            label = sample.labels.get("result") or sample.labels.get("corridor", "")
            out[f"{sample.name}{{{label}}}"] = sample.value
    return out


async def test_the_critical_alert_kills_the_corridor_and_is_audited(
    console: Starlette, flags: Path, tmp_path: Path
) -> None:
    await resume(console)
    resp = await hook(console, notification(alert()))
    assert resp.status_code == 200
    assert resp.json()["alerts"] == [
        {"fingerprint": "3f1c2a9b8d7e6f50", "result": "rolled_back", "corridor": CORRIDOR}
    ]
    assert served(flags, flagfile.ENABLED) is False
    line = audit_lines(tmp_path)[-1]
    assert line["source"] == "auto-rollback" and line["actor"] == "alertmanager"
    assert line["fingerprint"] == "3f1c2a9b8d7e6f50"
    assert line["starts_at"] == "2026-11-23T03:00:00Z"
    assert (line["key"], line["old"], line["new"]) == (flagfile.ENABLED, True, False)
    assert line["alertname"] == "PartialTrustErrorRateHigh" and line["corridor"] == CORRIDOR
    assert "PartialTrustErrorRateHigh" in line["reason"]


async def test_repeats_are_ignored_even_after_a_manual_resume(
    console: Starlette, flags: Path, tmp_path: Path
) -> None:
    await resume(console)
    await hook(console, notification(alert()))
    await resume(console)  # the operator decided: a re-sent notification must not overrule
    before = flags.read_bytes()
    resp = await hook(console, notification(alert()))
    assert resp.json()["alerts"][0]["result"] == "repeat"
    assert flags.read_bytes() == before
    assert [a["source"] for a in audit_lines(tmp_path)] == ["ui", "auto-rollback", "ui"]
    # a new firing of the same alert (new startsAt) is a new incident
    resp = await hook(console, notification(alert(starts_at="2026-11-23T05:00:00Z")))
    assert resp.json()["alerts"][0]["result"] == "rolled_back"
    assert served(flags, flagfile.ENABLED) is False


async def test_resolved_never_turns_it_back_on(
    console: Starlette, flags: Path, tmp_path: Path
) -> None:
    await resume(console)
    await hook(console, notification(alert()))
    before = flags.read_bytes()
    resp = await hook(console, notification(alert("resolved")))
    assert resp.json()["alerts"][0]["result"] == "resolved"
    assert flags.read_bytes() == before and served(flags, flagfile.ENABLED) is False
    assert len(audit_lines(tmp_path)) == 2


@pytest.mark.parametrize(
    ("kwargs", "result"),
    [
        ({"severity": "warning"}, "not_matching"),
        ({"alertname": "PartialTrustLatencyHigh"}, "not_matching"),
        ({"alertname": "PartialTrustLatencyHigh", "severity": "critical"}, "not_matching"),
        ({"corridor": "other_intent"}, "unknown_corridor"),
    ],
)
async def test_other_alerts_are_ignored(
    console: Starlette, flags: Path, kwargs: dict[str, str], result: str
) -> None:
    await resume(console)
    before = flags.read_bytes()
    resp = await hook(console, notification(alert(**kwargs)))
    assert resp.json()["alerts"][0]["result"] == result
    assert flags.read_bytes() == before


async def test_auto_rollback_can_be_switched_off(tmp_path: Path, flags: Path) -> None:
    app = make_console(tmp_path, flags, auto_rollback=AutoRollback(enabled=False))
    await resume(app)
    resp = await hook(app, notification(alert()))
    assert resp.json()["alerts"][0]["result"] == "disabled"
    assert served(flags, flagfile.ENABLED) is True


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, AUTH],  # the console token is not the webhook's
)
async def test_webhook_needs_its_own_token(
    console: Starlette, flags: Path, tmp_path: Path, headers: dict[str, str]
) -> None:
    await resume(console)
    before = flags.read_bytes()
    assert (await hook(console, notification(alert()), headers)).status_code == 401
    assert flags.read_bytes() == before and len(audit_lines(tmp_path)) == 1


async def test_webhook_is_off_without_a_webhook_token(tmp_path: Path, flags: Path) -> None:
    app = make_console(tmp_path, flags, webhook_token=None)
    before = flags.read_bytes()
    assert (await hook(app, notification(alert()))).status_code == 403
    assert flags.read_bytes() == before


async def test_a_payload_that_is_not_version_4_is_400(console: Starlette, flags: Path) -> None:
    before = flags.read_bytes()
    body = {**notification(alert()), "version": "3"}
    assert (await hook(console, body)).status_code == 400
    assert (await hook(console, {"alerts": "no"})).status_code == 400
    assert flags.read_bytes() == before


async def test_a_kill_that_fails_is_500_so_alertmanager_retries(
    console: Starlette, flags: Path, tmp_path: Path
) -> None:
    flags.unlink()
    flags.mkdir()  # the one thing kill cannot replace
    resp = await hook(console, notification(alert()))
    assert resp.status_code == 500 and "rollback failed" in resp.json()["error"]
    assert "corridor off" in resp.json()["error"]
    assert audit_lines(tmp_path) == []
    assert (await metrics(console))["partial_trust_console_webhook_alerts_total{failed}"] == 1


async def test_a_broken_file_is_replaced_by_the_rollback(
    console: Starlette, flags: Path, tmp_path: Path
) -> None:
    flags.write_text("[]")
    resp = await hook(console, notification(alert()))
    assert resp.status_code == 200 and resp.json()["alerts"][0]["result"] == "rolled_back"
    (line,) = audit_lines(tmp_path)
    assert "top level must be a JSON object" in line["replaced_broken_file"]
    assert flagfile.served_value(flagfile.load(flags).flags[flagfile.ENABLED])[0] is False


async def test_a_rollback_storm_raises_its_gauge_and_holds_resume(
    console: Starlette, tmp_path: Path, flags: Path
) -> None:
    before = await metrics(console)
    assert before["partial_trust_console_rollback_storm{add_shopping_item}"] == 0
    assert before["partial_trust_console_auto_rollbacks_total{add_shopping_item}"] == 0
    for hour in ("01", "02", "03"):
        await resume(console)
        await hook(console, notification(alert(starts_at=f"2026-11-23T{hour}:00:00Z")))
    after = await metrics(console)
    assert after["partial_trust_console_auto_rollbacks_total{add_shopping_item}"] == 3
    assert after["partial_trust_console_rollback_storm{add_shopping_item}"] == 1
    assert after["partial_trust_console_webhook_alerts_total{rolled_back}"] == 3
    async with client(console) as c:
        state = (await c.get("/api/state")).json()
        assert state["storm"] is True
        held = await c.post("/api/resume", json={"reason": "try again"}, headers=AUTH)
        assert held.status_code == 409 and "rollback storm" in held.json()["error"]
        assert served(flags, flagfile.ENABLED) is False
        body = {"reason": "cause fixed", "acknowledge_storm": True}
        assert (await c.post("/api/resume", json=body, headers=AUTH)).status_code == 200


async def test_the_storm_is_over_when_the_window_has_passed(tmp_path: Path, flags: Path) -> None:
    from datetime import timedelta

    app = make_console(tmp_path, flags, auto_rollback=AutoRollback(storm_window=timedelta(0)))
    for hour in ("01", "02", "03"):
        await hook(app, notification(alert(starts_at=f"2026-11-23T{hour}:00:00Z")))
    assert (await metrics(app))["partial_trust_console_rollback_storm{add_shopping_item}"] == 0


def test_payload_without_fingerprint_gets_a_stable_key() -> None:
    from partial_trust.apps.console.webhook import Alert

    body = alert()
    del body["fingerprint"]
    a, b = Alert.model_validate(body), Alert.model_validate(dict(body))
    assert a.key() == b.key() and a.key().startswith("labels-")
