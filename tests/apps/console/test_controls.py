"""Every control of the console, in-process (httpx.ASGITransport): the flag file and the audit."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette

from partial_trust.apps.console import state
from partial_trust.environment import Environment
from partial_trust.flags import flagfile
from tests.apps.console.helpers import AUTH, audit_lines, client, make_console, served

pytestmark = pytest.mark.anyio


async def post(app: Starlette, action: str, **body: Any) -> Any:
    async with client(app) as c:
        return await c.post(f"/api/{action}", json=body, headers=AUTH)


async def get_state(app: Starlette) -> dict[str, Any]:
    async with client(app) as c:
        resp = await c.get("/api/state")
    assert resp.status_code == 200
    result: dict[str, Any] = resp.json()
    return result


async def test_page_is_plain_html_with_a_strict_policy(console: Starlette) -> None:
    async with client(console) as c:
        resp = await c.get("/")
    assert resp.status_code == 200
    assert "TURN OFF NOW" in resp.text and 'name="viewport"' in resp.text
    csp = resp.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "default-src 'none'" in csp
    nonce = csp.split("'nonce-")[1].split("'")[0]
    assert f'<script nonce="{nonce}">' in resp.text
    assert "http://" not in resp.text and "https://" not in resp.text  # no CDN, nothing external
    assert resp.headers["x-frame-options"] == "DENY"


async def test_state_shows_values_sources_and_stage(console: Starlette, flags: Path) -> None:
    body = await get_state(console)
    f = body["flags"]
    assert f["ok"] and not f["on"] and f["stage"] == "off (resumes at stage 1 (1%))"
    assert "kill switch" in f["why_off"]
    rows = {r["key"]: r for r in f["rows"]}
    assert rows[flagfile.SAMPLE_RATE]["value"] == 0.01
    assert rows[flagfile.SAMPLE_RATE]["source"] == "flag file, variant 'stage1'"
    assert body["gate"] == {"available": False, "why": "the corridor is off"}
    assert body["read_only"] is False and body["audit"] == []


async def test_a_flag_missing_from_the_file_shows_the_environment_default(
    tmp_path: Path, flags: Path
) -> None:
    doc = json.loads(flags.read_text())
    del doc["flags"][flagfile.TIMEOUT_MS]
    flags.write_text(json.dumps(doc))
    app = make_console(
        tmp_path, flags, env=Environment.from_mapping({"PARTIAL_TRUST_TIMEOUT_MS": "350"})
    )
    rows = {r["key"]: r for r in (await get_state(app))["flags"]["rows"]}
    assert rows[flagfile.TIMEOUT_MS]["value"] == 350
    assert rows[flagfile.TIMEOUT_MS]["source"] == "environment default (PARTIAL_TRUST_TIMEOUT_MS)"


async def test_a_broken_flag_file_is_reported_and_kill_replaces_it(
    console: Starlette, flags: Path, tmp_path: Path
) -> None:
    flags.write_text("{not json")
    body = await get_state(console)
    assert not body["flags"]["ok"] and "not valid JSON" in body["flags"]["error"]
    resp = await post(console, "resume", reason="broken file")
    assert resp.status_code == 422 and "left unchanged" in resp.json()["error"]
    assert flags.read_text() == "{not json"
    resp = await post(console, "kill", reason="broken file")
    assert resp.status_code == 200, resp.text
    assert served(flags, flagfile.ENABLED) is False
    assert "not valid JSON" in audit_lines(tmp_path)[-1]["replaced_broken_file"]
    assert (await get_state(console))["flags"]["ok"] is True


async def test_kill_and_resume(console: Starlette, flags: Path, tmp_path: Path) -> None:
    resp = await post(console, "resume", reason="start stage 1", actor="alice")
    assert resp.status_code == 200, resp.text
    assert served(flags, flagfile.ENABLED) is True
    state_on = await get_state(console)
    assert state_on["flags"]["on"] and state_on["flags"]["stage"] == "stage 1 (1%)"

    resp = await post(console, "kill", reason="error spike", actor="alice")
    assert resp.status_code == 200
    assert served(flags, flagfile.ENABLED) is False
    kill = audit_lines(tmp_path)[-1]
    assert kill["source"] == "ui" and kill["actor"] == "alice" and kill["action"] == "kill"
    assert (kill["key"], kill["old"], kill["new"]) == (flagfile.ENABLED, True, False)
    assert kill["reason"] == "error spike" and kill["client"] == "127.0.0.1"
    assert datetime.fromisoformat(kill["time"].replace("Z", "+00:00")) <= datetime.now(UTC)
    meta = json.loads(flags.read_text())["flags"][flagfile.ENABLED]["metadata"]
    assert meta["changeReason"] == "error spike"  # the file keeps the reason too


async def test_advance_and_retreat_walk_the_stage_ladder(console: Starlette, flags: Path) -> None:
    await post(console, "resume", reason="go")
    seen = []
    for _ in range(2):  # no risk log: no GO, so only an override advances (test_stage_override)
        resp = await post(console, "advance", reason="walk the ladder", override=True)
        assert resp.status_code == 200
        seen.append(served(flags, flagfile.SAMPLE_RATE))
    assert seen == [0.05, 0.1]
    resp = await post(console, "advance", reason="more", override=True)
    assert resp.status_code == 409 and "last stage" in resp.json()["error"]
    for expected in (0.05, 0.01):
        assert (await post(console, "retreat", reason="back")).status_code == 200
        assert served(flags, flagfile.SAMPLE_RATE) == expected
    resp = await post(console, "retreat", reason="back")
    assert resp.status_code == 409 and "kill switch" in resp.json()["error"]
    assert (await get_state(console))["flags"]["stage"] == "stage 1 (1%)"


async def test_from_a_custom_rate_the_stage_moves_to_the_neighbouring_preset(
    console: Starlette, flags: Path
) -> None:
    await post(console, "resume", reason="go")
    assert (
        await post(console, "set", key=flagfile.SAMPLE_RATE, value="0.03", reason="x")
    ).is_success
    body = await get_state(console)
    assert body["flags"]["stage"] == "custom (3%)"
    assert (
        json.loads(flags.read_text())["flags"][flagfile.SAMPLE_RATE]["defaultVariant"] == "custom"
    )
    await post(console, "retreat", reason="down")
    assert served(flags, flagfile.SAMPLE_RATE) == 0.01
    await post(console, "set", key=flagfile.SAMPLE_RATE, value=0.03, reason="x")
    await post(console, "advance", reason="up", override=True)
    assert served(flags, flagfile.SAMPLE_RATE) == 0.05


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        (flagfile.SAMPLE_RATE, "0.07", 0.07),
        (flagfile.SAMPLE_RATE, 0.05, 0.05),
        (flagfile.TIMEOUT_MS, "350", 350),
        (flagfile.TIMEOUT_MS, 120, 120),
        (flagfile.PROFILE_ID, "reliable", "reliable"),
        (flagfile.PROFILE_ID, "", ""),
    ],
)
async def test_set_exact_values(
    console: Starlette, flags: Path, tmp_path: Path, key: str, value: object, expected: object
) -> None:
    resp = await post(console, "set", key=key, value=value, reason="tuning")
    assert resp.status_code == 200, resp.text
    assert served(flags, key) == expected
    line = audit_lines(tmp_path)[-1]
    assert (line["key"], line["new"], line["action"]) == (key, expected, "set")


@pytest.mark.parametrize(
    ("action", "body", "fragment"),
    [
        ("set", {"key": flagfile.SAMPLE_RATE, "value": "1.5"}, "not a number in [0, 1]"),
        ("set", {"key": flagfile.SAMPLE_RATE, "value": "abc"}, "not a number in [0, 1]"),
        ("set", {"key": flagfile.SAMPLE_RATE, "value": True}, "not a number in [0, 1]"),
        ("set", {"key": flagfile.TIMEOUT_MS, "value": "0"}, "milliseconds > 0"),
        ("set", {"key": flagfile.TIMEOUT_MS, "value": "-5"}, "milliseconds > 0"),
        ("set", {"key": flagfile.TIMEOUT_MS, "value": 2.5}, "milliseconds > 0"),
        ("set", {"key": flagfile.PROFILE_ID, "value": "a\nb"}, "must be one line"),
        ("set", {"key": flagfile.ENABLED, "value": "true"}, "key must be one of"),
        ("set", {"key": "partial-trust-other", "value": "1"}, "key must be one of"),
        ("set", {"key": flagfile.TIMEOUT_MS}, "a value is required"),
        ("kill", {"reason": ""}, "a reason is required"),
        ("kill", {"reason": "   "}, "a reason is required"),
        ("kill", {"reason": "two\nlines"}, "one line"),
        ("kill", {"reason": "x" * 201}, "at most 200"),
        ("kill", {"surprise": 1}, "Extra inputs"),
    ],
)
async def test_refused_values_leave_the_file_and_the_audit_untouched(
    console: Starlette,
    flags: Path,
    tmp_path: Path,
    action: str,
    body: dict[str, Any],
    fragment: str,
) -> None:
    before = flags.read_bytes()
    payload = {"reason": "because", **body}
    resp = await post(console, action, **payload)
    assert resp.status_code == 422, resp.text
    assert fragment in resp.json()["error"]
    assert flags.read_bytes() == before
    assert audit_lines(tmp_path) == []


async def test_unknown_action_is_404(console: Starlette, flags: Path) -> None:
    before = flags.read_bytes()
    assert (await post(console, "explode", reason="x")).status_code == 404
    assert flags.read_bytes() == before


async def test_audit_is_shown_newest_first(console: Starlette) -> None:
    for reason in ("first", "second", "third"):
        await post(console, "resume" if reason != "second" else "kill", reason=reason)
    audit = (await get_state(console))["audit"]
    assert [a["reason"] for a in audit] == ["third", "second", "first"]


async def test_an_unwritable_audit_log_refuses_the_change(tmp_path: Path, flags: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    app = make_console(tmp_path, flags, audit_path=blocker / "audit.jsonl")
    before = flags.read_bytes()
    resp = await post(app, "kill", reason="x")
    assert resp.status_code == 500 and "not changed" in resp.json()["error"]
    assert flags.read_bytes() == before


def _risk_line(ts: str, status: str, latency: float | None) -> str:
    rec = {
        "timestamp": ts, "schema": "partial_trust_risk/v1", "corridor": "add_shopping_item",
        "command_key": "0f3a9c1b7d4e5f60", "status": status,
        "reason_code": "accepted" if status == "accepted_llm" else "llm_timeout",
        "sampled": True, "sample_rate": 0.01, "profile_id": None, "latency_ms": latency,
        "baseline_latency_ms": 3.0, "intent_match": True if status == "accepted_llm" else None,
        "entity_key_match": True if status == "accepted_llm" else None,
        "confidence": 0.9, "items_baseline": 2, "items_llm": 2,
    }  # fmt: skip
    return json.dumps(rec, separators=(",", ":"))


async def test_gate_verdict_for_the_next_stage(console: Starlette, tmp_path: Path) -> None:
    await post(console, "resume", reason="go")
    body = await get_state(console)
    assert body["gate"]["available"] is False and "risk log" in body["gate"]["why"]
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    lines = [_risk_line(now, "accepted_llm", 120.0) for _ in range(60)]
    (tmp_path / "risk.jsonl").write_text("\n".join(lines) + "\n")
    gate = (await get_state(console))["gate"]
    # the records say GO, but stage 1 started (resume) moments ago: HOLD for ~3 days
    assert gate["available"] and gate["stage"] == 1 and gate["data_verdict"] == "GO"
    assert gate["verdict"] == "HOLD" and gate["duration"]["source"] == "flag-audit-log"
    assert 3 * 86400 - 300 < gate["duration"]["left_s"] <= 3 * 86400
    assert gate["sampled"] == 60
    # six errors in 66 sampled (9%): past stage 1's effective rollback line (the monitoring
    # table's 5% page: partial_trust.thresholds), and never softened to HOLD
    with (tmp_path / "risk.jsonl").open("a") as f:
        f.write("\n".join(_risk_line(now, "error", 200.0) for _ in range(6)) + "\n")
    console.state.console.gate.max_age_s = 0  # no caching for the test
    gate = (await get_state(console))["gate"]
    assert gate["verdict"] == gate["data_verdict"] == "ROLLBACK"


@pytest.mark.parametrize(
    ("on", "rate", "label"),
    [
        (False, 0.05, "off (resumes at stage 2 (5%))"),
        (False, 0.0, "off (sample rate 0)"),
        (True, 0.0, "off (sample rate 0)"),
        (True, 0.01, "stage 1 (1%)"),
        (True, 0.05, "stage 2 (5%)"),
        (True, 0.1, "stage 3 (10%)"),
        (True, 0.3, "custom (30%)"),
    ],
)
def test_stage_labels(on: bool, rate: float, label: str) -> None:
    assert state.stage_label(on, rate) == label


def test_stage_ladder() -> None:
    assert state.next_rate(0.0, "advance") == 0.01
    assert state.next_rate(0.1, "advance") is None
    assert state.next_rate(0.5, "retreat") == 0.1
    assert state.next_rate(0.01, "retreat") is None
    assert state.gate_stage(0.005) is None and state.gate_stage(0.07) == 2
