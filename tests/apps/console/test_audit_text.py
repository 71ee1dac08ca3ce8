"""Audit free text: spoofing characters refused on the way in, escaped on the way out."""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.applications import Starlette

from partial_trust.apps.console import text
from partial_trust.apps.console.audit import record
from partial_trust.flags import flagfile
from tests.apps.console.helpers import AUTH, HOOK_AUTH, alert, audit_lines, client, notification

pytestmark = pytest.mark.anyio

# one of each kind: bidi embeddings/overrides/isolates/marks, C0, DEL, C1 (NEL, CSI), line and
# paragraph separators, zero-width and other format characters, tags, fillers, variation
# selectors, private use, unassigned
SPOOFING = [
    *"\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c",
    "\x00",
    "\x1b",
    "\t",
    "\r",
    "\x7f",
    "\x85",
    "\x9b",
    "\u2028",
    "\u2029",
    "\u200b",
    "\u200d",
    "\u2060",
    "\ufeff",
    "\u00ad",
    "\U000e0041",
    "\u3164",
    "\uffa0",
    "\u115f",
    "\u034f",
    "\ufe0f",
    "\U000e0100",
    "\ue000",
    "\u0378",
]
FINE = [
    "Zoë Ålesund",
    "Владимир",
    "李雷",
    "علي",
    "naïve fix: 5% → 1% ✓",
    "🚨 error spike",
    "o'neil",
]


async def post(app: Starlette, action: str, body: dict[str, Any]) -> Any:
    async with client(app) as c:
        return await c.post(f"/api/{action}", json=body, headers=AUTH)


def strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in [k, *strings(v)]]
    if isinstance(value, list):
        return [s for v in value for s in strings(v)]
    return []


def assert_plain(value: Any) -> None:
    for s in strings(value):
        bad = [f"U+{ord(ch):04X}" for ch in s if text.is_spoofing(ch)]
        assert not bad, f"{s!r} carries {bad}"


@pytest.mark.parametrize("ch", SPOOFING, ids=lambda ch: f"U+{ord(ch):04X}")
@pytest.mark.parametrize("field", ["reason", "actor", "value"])
async def test_spoofing_characters_are_refused_with_their_code_point(
    console: Starlette, flags: Path, tmp_path: Path, ch: str, field: str
) -> None:
    before = flags.read_bytes()
    body: dict[str, Any] = {"reason": "ok", "actor": "alice"}
    body[field] = f"alice{ch}ecila"
    action = "kill"
    if field == "value":
        action, body["key"] = "set", flagfile.PROFILE_ID
    resp = await post(console, action, body)
    assert resp.status_code == 422, resp.text
    error = resp.json()["error"]
    assert f"U+{ord(ch):04X}" in error and "one line of plain text" in error
    assert ch not in error  # the message names the character, never echoes it
    assert flags.read_bytes() == before and audit_lines(tmp_path) == []


async def test_lone_surrogates_are_refused(console: Starlette, flags: Path) -> None:
    raw = b'{"reason": "ok \\ud83d", "actor": "a"}'
    async with client(console) as c:
        headers = {**AUTH, "content-type": "application/json"}
        resp = await c.post("/api/kill", content=raw, headers=headers)
    assert resp.status_code == 422


@pytest.mark.parametrize("value", FINE)
async def test_ordinary_text_in_any_script_is_recorded_as_typed(
    console: Starlette, tmp_path: Path, value: str
) -> None:
    resp = await post(console, "kill", {"reason": value, "actor": value[:64]})
    assert resp.status_code == 200, resp.text
    line = audit_lines(tmp_path)[-1]
    assert line["reason"] == value and line["actor"] == value[:64]


async def test_length_is_bounded(console: Starlette) -> None:
    assert (await post(console, "kill", {"reason": "x" * 201})).status_code == 422
    assert (await post(console, "kill", {"reason": "x", "actor": "a" * 65})).status_code == 422
    assert (
        await post(console, "kill", {"reason": "x" * 200, "actor": "a" * 64})
    ).status_code == 200


async def test_an_old_audit_log_is_shown_escaped(
    console: Starlette, tmp_path: Path, flags: Path
) -> None:
    # written before this rule existed, or by hand: raw bidi, C1, ANSI, separators, in values
    # and in keys
    old = {
        "time": "2026-11-20T10:00:00.000Z",
        "source": "ui",
        "actor": "mallory\u202e\u2066ecila",
        "reason": "fine\u2028\x1b[2Jall clear\x85",
        "key": "partial-trust-enabled",
        "old": True,
        "new": "on\u200b",
        "client": "127.0.0.1\u202e",
        "extra\u202e": ["\u2067x"],
    }
    (tmp_path / "audit.jsonl").write_text(json.dumps(old, ensure_ascii=False) + "\n")
    async with client(console) as c:
        resp = await c.get("/api/state")
    assert resp.status_code == 200
    assert_plain(resp.json())
    raw = resp.content.decode()
    assert "\u202e" not in raw and "\x1b" not in raw and "\u2028" not in raw
    shown = resp.json()["audit"][0]
    assert shown["actor"] == "mallory\\u202e\\u2066ecila"
    assert shown["reason"] == "fine\\u2028\\u001b[2Jall clear\\u0085"
    assert shown["new"] == "on\\u200b" and "extra\\u202e" in shown


async def test_the_webhook_records_hostile_labels_escaped_and_still_kills(
    console: Starlette, tmp_path: Path, flags: Path
) -> None:
    flagfile.resume(flags)
    hostile = alert(fingerprint="fp\u202e\x1b[31m")
    hostile["annotations"]["summary"] = "roll back\u2028\x9bnow" + "!" * 5000
    hostile["startsAt"] = "2026-11-23T03:00:00Z\u2066"
    async with client(console) as c:
        resp = await c.post("/alertmanager", json=notification(hostile), headers=HOOK_AUTH)
        assert resp.status_code == 200 and resp.json()["alerts"][0]["result"] == "rolled_back"
        assert_plain(resp.json())
        flagfile.resume(flags)  # the operator decided; a re-send is still recognised
        again = await c.post("/alertmanager", json=notification(hostile), headers=HOOK_AUTH)
        assert again.json()["alerts"][0]["result"] == "repeat"
    [line] = audit_lines(tmp_path)
    assert_plain(line)
    assert len(line["summary"]) <= text.MAX_RECORDED + 1
    assert line["fingerprint"].startswith("fp\\u202e")


def test_cli_records_are_escaped(tmp_path: Path, flags: Path) -> None:
    change = flagfile.kill(flags, reason="x")
    line = record(tmp_path / "audit.jsonl", change, reason="night\u202eyrros", actor="bob\x1b")
    assert_plain(line)
    assert_plain(audit_lines(tmp_path))


def test_the_rule_is_the_unicode_categories() -> None:
    categories = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}
    for code in range(0x30000):
        ch = chr(code)
        if unicodedata.category(ch) in categories:
            assert text.is_spoofing(ch), f"U+{code:04X}"
    assert not any(text.is_spoofing(ch) for ch in "".join(FINE))


@given(st.text(max_size=300))
def test_escape_leaves_nothing_spoofing_and_is_idempotent(value: str) -> None:
    shown = text.escape(value)
    assert not any(text.is_spoofing(ch) for ch in shown)
    assert text.escape(shown) == shown
    if not any(text.is_spoofing(ch) for ch in value):
        assert shown == value
    assert text.check(shown, limit=10**6) == shown.strip()
