"""The console in real headless Chromium, on a phone-sized screen, driving a real stack:

    Chromium -> console (python -m partial_trust.apps.console) -> flag file <- reference app
    (uvicorn,
    file provider) -> llm-sim

Log in, press the kill switch with a reason: the app makes no LLM call later than 300 ms after
the press (traffic keeps flowing, sample rate 1). Set 1%, advance a stage (with the override:
a killed corridor has no gate verdict): the page and the file show 5%; resume keeping the
rate: the running app serves 5%. The audit log on the page shows the changes.
Screenshots go to ``artifacts/console/``.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from partial_trust.flags import flagfile
from tests.apps.console.helpers import SHIPPED, TOKEN, console_process
from tests.integration.stack import llm_sim, reference_app, shopping_command
from tests.support.procs import REPO, Server, require_binary

pytestmark = pytest.mark.integration
ARTIFACTS = REPO / "artifacts" / "console"
KILL_LIMIT_S = 0.3
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium() -> str:
    path = require_binary("chromium")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        message = "the playwright Python package is not installed (dev extra)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


class Traffic:
    """Commands posted from a thread about every ``period_s`` (every one calls the LLM at a
    sample rate of 1), so that the kill meets live traffic without starving the 2-core box
    the browser, the console, the app and llm-sim share."""

    def __init__(self, app: Server, period_s: float = 0.01) -> None:
        self.url = f"{app.url}/route"
        self.period_s = period_s
        self.statuses: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        with httpx.Client(timeout=5) as client:
            i = 0
            while not self._stop.is_set():
                i += 1
                code = client.post(self.url, json=shopping_command(f"browser-{i}")).status_code
                self.statuses[code] = self.statuses.get(code, 0) + 1
                self._stop.wait(self.period_s)

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)


class CallWatcher:
    """Polls llm-sim's call counter (one kept-alive connection, every ~5 ms) from a thread and
    keeps the wall-clock time at which each new count was first seen. A time is seen after
    the call happened, so "last call" is an upper bound: the 300 ms check is conservative."""

    def __init__(self, sim: Server) -> None:
        self.url = f"{sim.url}/sim/stats"
        self.changes: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        with httpx.Client(timeout=5) as client:
            last = -1
            while not self._stop.is_set():
                count = int(client.get(self.url).json()["total"])
                if count != last:
                    self.changes.append((time.time(), count))
                    last = count
                self._stop.wait(0.005)

    def calls(self) -> int:
        return self.changes[-1][1] if self.changes else 0

    def wait_for_calls(self, timeout_s: float = 5.0) -> None:
        start = self.calls()
        deadline = time.monotonic() + timeout_s
        while self.calls() == start or len(self.changes) < 2:
            assert time.monotonic() < deadline, "the LLM is not being called"
            time.sleep(0.005)

    def last_change(self) -> float:
        return self.changes[-1][0]

    def __enter__(self) -> CallWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)


def _app_flags(app: Server) -> dict[str, Any]:
    flags: dict[str, Any] = httpx.get(f"{app.url}/health", timeout=5).json()["partial_trust"][
        "flags"
    ]
    return flags


def test_phone_operator_kills_advances_and_reads_the_audit(tmp_path: Path) -> None:
    executable = chromium()
    from playwright.sync_api import expect, sync_playwright

    if ARTIFACTS.exists():
        shutil.rmtree(ARTIFACTS)
    ARTIFACTS.mkdir(parents=True)
    flags = tmp_path / "partial-trust.flagd.json"
    shutil.copy(SHIPPED, flags)
    flagfile.set_flag(flags, flagfile.SAMPLE_RATE, 1.0, reason="test: every command")
    flagfile.resume(flags, reason="test: on", keep_rate=True)
    env = {"PARTIAL_TRUST_FLAGS_PROVIDER": "file", "PARTIAL_TRUST_FLAGS_FILE": str(flags)}
    with (
        llm_sim(tmp_path) as sim,
        reference_app(tmp_path, f"{sim.url}/v1", **env) as (app, risk_log),
        console_process(tmp_path, flags, risk_log) as console,
        sync_playwright() as pw,
    ):
        browser = pw.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(
                viewport={"width": 390, "height": 844},
                device_scale_factor=2,
                is_mobile=True,
                has_touch=True,
            )
            page = context.new_page()
            page.goto(f"{console.url}/")
            expect(page.locator("#status")).to_contain_text("ON: 100%")
            # phone layout: nothing wider than the screen, a kill switch you cannot miss
            assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
            page.screenshot(path=str(ARTIFACTS / "01-on-logged-out.png"), full_page=True)

            page.fill("#token", TOKEN)
            page.fill("#actor", "night-shift")
            page.click("#login-button")
            expect(page.locator("#whoami")).to_contain_text("Logged in as night-shift")
            kill_box = page.locator("#kill").bounding_box()
            assert kill_box is not None and kill_box["height"] >= 80
            assert kill_box["width"] >= 0.8 * 390 - 40

            # the moment of the press, on the browser's clock (the same host clock as ours)
            page.evaluate(
                """document.getElementById("kill").addEventListener("click",
                       () => { window.pressedAt = Date.now() / 1000; }, {capture: true})"""
            )
            with Traffic(app) as traffic, CallWatcher(sim) as watcher:
                page.fill("#reason", "error spike seen on the dashboard")
                page.screenshot(path=str(ARTIFACTS / "02-before-kill.png"))
                watcher.wait_for_calls()  # the LLM is being called right now
                with page.expect_response(lambda r: r.url.endswith("/api/kill")):
                    page.click("#kill")
                pressed = float(page.evaluate("window.pressedAt"))
                answered = time.time()
                sent_at_kill = sum(traffic.statuses.values())
                time.sleep(1.0)  # traffic keeps coming: any LLM call would show up here
                last = watcher.last_change() - pressed
                assert sum(traffic.statuses.values()) - sent_at_kill >= 20, "traffic stopped"
                print(
                    f"kill pressed -> console answered {(answered - pressed) * 1000:.0f} ms, "
                    f"last LLM call seen {last * 1000:.0f} ms after the press; "
                    f"{traffic.statuses.get(200, 0)} commands sent"
                )
                expect(page.locator("#status")).to_contain_text("OFF")
                assert last < KILL_LIMIT_S, f"an LLM call {last * 1000:.0f} ms after the press"
            assert set(traffic.statuses) == {200}, traffic.statuses
            page.screenshot(path=str(ARTIFACTS / "03-killed.png"), full_page=True)
            assert flagfile.served_value(flagfile.load(flags).flags[flagfile.ENABLED])[0] is False

            page.fill("#reason", "back to stage 1 before going on")
            page.fill("#rate", "0.01")
            page.click("#set-rate")
            expect(page.locator("#stage")).to_have_text("off (resumes at stage 1 (1%))")
            # off: no gate verdict, so "next stage" needs the override (test_stage_override)
            expect(page.locator("#advance")).to_have_text("Next stage: 5% (gate: NOT-AVAILABLE)")
            page.fill("#reason", "stage 1 gate GO")
            page.check("#override")
            page.click("#advance")
            expect(page.locator("#message")).to_contain_text("0.01 → 0.05")
            expect(page.locator("#flags")).to_contain_text("0.05")
            doc = flagfile.load(flags)
            assert flagfile.served_value(doc.flags[flagfile.SAMPLE_RATE])[0] == 0.05

            page.fill("#reason", "cause fixed, resume at 5%")
            page.check("#resume-keep")  # the playbook's default would be stage 1
            page.click("#resume")
            expect(page.locator("#status")).to_contain_text("ON: 5%")
            expect(page.locator("#stage")).to_have_text("stage 2 (5%)")
            deadline = time.monotonic() + 5
            while _app_flags(app)["sample_rate"] != 0.05:
                assert time.monotonic() < deadline, _app_flags(app)
                time.sleep(0.05)

            audit = page.locator("#audit li")
            expect(audit).to_have_count(4)
            expect(audit.nth(0)).to_contain_text("partial-trust-enabled: false → true")
            expect(audit.nth(1)).to_contain_text("partial-trust-sample-rate: 0.01 → 0.05")
            expect(audit.nth(1)).to_contain_text("stage 1 gate GO")
            expect(audit.nth(3)).to_contain_text("partial-trust-enabled: true → false")
            expect(audit.nth(3)).to_contain_text("error spike seen on the dashboard")
            expect(audit.nth(3)).to_contain_text("night-shift (ui)")
            page.locator("#audit").scroll_into_view_if_needed()
            page.screenshot(path=str(ARTIFACTS / "04-audit.png"), full_page=True)
            context.close()
        finally:
            browser.close()
