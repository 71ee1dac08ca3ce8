"""The stage clock and the advance override, in real headless Chromium against a real console.

Stage 1 at 1% with an hour of healthy records: the records say GO, but stage 1 needs 3 days
at 1%, so the page shows HOLD and the time left, and "next stage" is refused by the server.
Ticking the override (with a reason) advances, and the audit line says ``override: true``
with the verdict it overrode. Then a kill, and the resume choice: stage 1 by default.
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from partial_trust.flags import flagfile
from tests.apps.console.helpers import SHIPPED, TOKEN, audit_lines, console_process
from tests.apps.console.test_browser import CHROMIUM_ARGS, chromium
from tests.support.procs import REPO

pytestmark = pytest.mark.integration
ARTIFACTS = REPO / "artifacts" / "console-override"


def risk_line(ts: datetime, rate: float = 0.01) -> str:
    rec = {
        "timestamp": ts.strftime("%Y-%m-%dT%H:%M:%S.000Z"), "schema": "partial_trust_risk/v1",
        "corridor": "add_shopping_item", "command_key": "0f3a9c1b7d4e5f60",
        "status": "accepted_llm", "reason_code": "accepted", "sampled": True,
        "sample_rate": rate, "profile_id": None, "latency_ms": 120.0,
        "baseline_latency_ms": 3.0, "intent_match": True, "entity_key_match": True,
        "confidence": 0.9, "items_baseline": 2, "items_llm": 2,
    }  # fmt: skip
    return json.dumps(rec, separators=(",", ":"))


def healthy_hour(path: Path, now: datetime, n: int = 80) -> None:
    """n accepted records at 1% spread over the last hour: GO on the data alone."""
    start = now - timedelta(minutes=62)
    lines = [risk_line(start + timedelta(seconds=45 * i)) for i in range(n)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_hold_refuses_advance_until_an_audited_override(tmp_path: Path) -> None:
    executable = chromium()
    from playwright.sync_api import expect, sync_playwright

    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)
    flags = tmp_path / "partial-trust.flagd.json"
    shutil.copy(SHIPPED, flags)
    # the shipped file is at 1% already; not audited, so the risk log is the clock
    flagfile.resume(flags, reason="test: stage 1 on", keep_rate=True)
    risk_log = tmp_path / "risk.jsonl"
    healthy_hour(risk_log, datetime.now(UTC))
    with (
        console_process(tmp_path, flags, risk_log) as console,
        sync_playwright() as pw,
    ):
        browser = pw.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 390, "height": 844})
            page.goto(f"{console.url}/")
            page.fill("#token", TOKEN)
            page.fill("#actor", "day-shift")
            page.click("#login-button")
            expect(page.locator("#whoami")).to_contain_text("Logged in as day-shift")

            # GO on the records, HOLD on the clock, and the time left in words
            expect(page.locator("#gate")).to_contain_text("HOLD")
            expect(page.locator("#gate")).to_contain_text("the records alone say GO")
            clock = page.locator("#clock")
            expect(clock).to_contain_text("stage 1 has run 1 h 0")
            expect(clock).to_contain_text("of its 3 days at 1%")
            expect(clock).to_contain_text("2 d 22 h")
            expect(clock).to_contain_text("left")
            expect(page.locator("#advance")).to_have_text("Next stage: 5% (gate: HOLD)")
            expect(page.locator("#override-row")).to_be_visible()
            page.screenshot(path=str(ARTIFACTS / "01-hold.png"), full_page=True)

            # without the override the server refuses, whatever the page does
            page.fill("#reason", "looks fine to me")
            with page.expect_response(lambda r: r.url.endswith("/api/advance")) as info:
                page.click("#advance")
            refused = info.value
            assert refused.status == 409
            body: dict[str, Any] = refused.json()
            assert body["verdict"] == "HOLD" and "left" in body["why"]
            expect(page.locator("#message")).to_contain_text("Not changed")
            expect(page.locator("#message")).to_contain_text("HOLD")
            assert flagfile.served_value(flagfile.load(flags).flags[flagfile.SAMPLE_RATE])[0] == (
                0.01
            )
            assert audit_lines(tmp_path) == []

            # the override, with a reason, advances and is audited as an override
            page.fill("#reason", "incident 42: capacity test signed off by the SRE lead")
            page.check("#override")
            with page.expect_response(lambda r: r.url.endswith("/api/advance")) as info:
                page.click("#advance")
            assert info.value.status == 200
            expect(page.locator("#message")).to_contain_text("0.01 → 0.05")
            expect(page.locator("#message")).to_contain_text("OVERRIDE of the gate's HOLD")
            expect(page.locator("#stage")).to_have_text("stage 2 (5%)")
            (line,) = audit_lines(tmp_path)
            assert line["override"] is True and line["overridden_verdict"] == "HOLD"
            assert line["action"] == "advance" and line["actor"] == "day-shift"
            assert (line["key"], line["old"], line["new"]) == (flagfile.SAMPLE_RATE, 0.01, 0.05)
            assert line["reason"] == "incident 42: capacity test signed off by the SRE lead"
            assert "of its 3 days" in line["gate_why"]
            expect(page.locator("#audit li").first).to_contain_text("OVERRIDE")
            expect(page.locator("#override")).not_to_be_checked()  # never sticks
            page.screenshot(path=str(ARTIFACTS / "02-overridden.png"), full_page=True)

            # kill, then the resume choice: stage 1 is the default and says so
            page.fill("#reason", "error spike")
            page.click("#kill")
            expect(page.locator("#status")).to_contain_text("OFF")
            expect(page.locator("#resume-choice")).to_be_visible()
            expect(page.locator("#resume-stage1")).to_be_checked()
            expect(page.locator("#resume-keep-text")).to_contain_text("5%")
            expect(page.locator("#resume")).to_have_text("Turn back on at stage 1 (1%)")
            page.check("#resume-keep")
            expect(page.locator("#resume")).to_have_text("Turn back on at 5% (kept rate)")
            page.check("#resume-stage1")
            page.screenshot(path=str(ARTIFACTS / "03-resume-choice.png"), full_page=True)
            page.fill("#reason", "cause fixed")
            page.click("#resume")
            expect(page.locator("#stage")).to_have_text("stage 1 (1%)")
            expect(page.locator("#resume-choice")).to_be_hidden()
            resume = audit_lines(tmp_path)[-1]
            assert resume["resume_at"] == "stage 1"
            assert (resume["sample_rate_old"], resume["sample_rate_new"]) == (0.05, 0.01)
            # the resume restarted the stage clock: a fresh 3 days, from the audit log
            expect(clock).to_contain_text("stage 1 has run 0 min of its 3 days")
            expect(clock).to_contain_text("flag-audit-log")
        finally:
            browser.close()
