"""The console's "Corridors" section in real headless Chromium: one panel per corridor, each
with its own flags. Turning the read corridor off leaves the shopping corridor on (in the file
and on the page); an admin corridor a hand edit put in canary shows as capped at shadow."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from partial_trust.corridors import flag_keys
from partial_trust.flags import flagfile
from tests.apps.console.helpers import SHIPPED, TOKEN, console_process
from tests.apps.console.test_browser import ARTIFACTS, CHROMIUM_ARGS, chromium

pytestmark = pytest.mark.integration
SHOP, SHOW, SHARE = (flag_keys(n) for n in ("add_shopping_item", "show_shopping_list",
                                              "share_shopping_list"))  # fmt: skip


def _flag(value: object) -> dict[str, Any]:
    return {"state": "ENABLED", "variants": {"v": value}, "defaultVariant": "v"}


def _file(tmp_path: Path) -> Path:
    doc = json.loads(SHIPPED.read_text())
    for keys, mode in ((SHOP, "shadow"), (SHOW, "canary"), (SHARE, "canary")):
        doc["flags"][keys.enabled] = _flag(True)
        doc["flags"][keys.sample_rate] = _flag(0.01)
        doc["flags"][keys.mode] = _flag(mode)  # SHARE in canary: a hand edit, as ops might
    path = tmp_path / "flags.json"
    path.write_text(json.dumps(doc, indent=2))
    return path


def _enabled(path: Path, key: str) -> object:
    return flagfile.served_value(flagfile.load(path).flags.get(key))[0]


def test_one_panel_per_corridor_and_killing_one_leaves_the_other(tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    executable = chromium()
    flags = _file(tmp_path)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with (
        console_process(tmp_path, flags, tmp_path / "risk.jsonl") as console,
        sync_playwright() as pw,
    ):
        browser = pw.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 390, "height": 844})
            page.goto(f"{console.url}/")
            panels = page.locator("#corridor-panels article.corridor")
            expect(panels).to_have_count(3)
            shop = page.locator('article[data-corridor="add_shopping_item"]')
            show = page.locator('article[data-corridor="show_shopping_list"]')
            share = page.locator('article[data-corridor="share_shopping_list"]')
            expect(shop).to_contain_text("add_shopping_item (write)")
            expect(shop).to_contain_text("ON, mode shadow")
            expect(show).to_contain_text("show_shopping_list (read)")
            expect(show).to_contain_text("ON, mode canary")
            expect(share).to_contain_text("mode shadow (capped: risk class admin")
            page.fill("#token", TOKEN)
            page.fill("#actor", "day-shift")
            page.click("#login-button")
            expect(page.locator("#whoami")).to_contain_text("Logged in as day-shift")
            page.fill("#reason", "read corridor misbehaves")
            with page.expect_response(lambda r: r.url.endswith("/api/kill")) as answer:
                show.locator("button.corridor-kill").click()
            assert answer.value.status == 200
            expect(show).to_contain_text("OFF")
            expect(shop).to_contain_text("ON, mode shadow")
            page.screenshot(path=str(ARTIFACTS / "10-corridors.png"), full_page=True)
            # the share corridor's own ladder: its gate has no records (not available), so
            # advance needs the override; retreat goes back; the shopping rate never moves
            expect(share).to_contain_text("Gate: not available")
            expect(share.locator("button.corridor-advance")).to_have_text(
                "Next stage: 5% (gate: NOT-AVAILABLE)"
            )
            expect(share.locator("button.corridor-retreat")).to_be_disabled()
            page.fill("#reason", "share corridor: next stage")
            page.check("#override")
            with page.expect_response(lambda r: r.url.endswith("/api/advance")) as answer:
                share.locator("button.corridor-advance").click()
            assert answer.value.status == 200
            expect(share).to_contain_text("stage 2 (5%)")
            expect(shop).to_contain_text("stage 1 (1%)")
            page.fill("#reason", "share corridor: back")
            with page.expect_response(lambda r: r.url.endswith("/api/retreat")) as answer:
                share.locator("button.corridor-retreat").click()
            assert answer.value.status == 200
            expect(share).to_contain_text("stage 1 (1%)")
        finally:
            browser.close()
    assert _enabled(flags, SHOW.enabled) is False
    assert _enabled(flags, SHOP.enabled) is True  # the other corridor keeps running
    assert _enabled(flags, SHARE.sample_rate) == 0.01
    assert _enabled(flags, SHOP.sample_rate) == 0.01
    audit = [json.loads(x) for x in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert [(a["action"], a["key"]) for a in audit] == [
        ("kill", SHOW.enabled),
        ("advance", SHARE.sample_rate),
        ("retreat", SHARE.sample_rate),
    ]
    assert audit[1]["override"] is True and audit[1]["overridden_verdict"] == "NOT-AVAILABLE"
