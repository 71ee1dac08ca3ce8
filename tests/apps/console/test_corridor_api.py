"""The console's changes act on one corridor's own keys (``corridor`` in the body, default
the shopping corridor); a name off the allowlist, or a mode past the risk class, is refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from starlette.applications import Starlette

from partial_trust.corridors import flag_keys
from tests.apps.console.helpers import AUTH, audit_lines, client, served

pytestmark = pytest.mark.anyio
SHOP, SHOW = flag_keys("add_shopping_item"), flag_keys("show_shopping_list")


async def test_resume_set_and_kill_touch_only_the_named_corridor(
    console: Starlette, flags: Path, tmp_path: Path
) -> None:
    before = served(flags, SHOP.enabled)
    async with client(console) as c:
        r = await c.post(
            "/api/resume", json={"reason": "read first", "corridor": "show_shopping_list"},
            headers=AUTH,
        )  # fmt: skip
        assert r.status_code == 200, r.text
        r = await c.post(
            "/api/set",
            json={"reason": "r", "corridor": "show_shopping_list",
                  "key": SHOP.sample_rate, "value": "0.05"},
            headers=AUTH,
        )  # fmt: skip
        assert r.status_code == 200, r.text
        state = (await c.get("/api/state")).json()
        r = await c.post(
            "/api/kill", json={"reason": "stop it", "corridor": "show_shopping_list"},
            headers=AUTH,
        )  # fmt: skip
        assert r.status_code == 200, r.text
    assert served(flags, SHOW.sample_rate) == 0.05
    assert served(flags, SHOW.enabled) is False
    assert served(flags, SHOP.enabled) == before  # untouched
    keys = [a["key"] for a in audit_lines(tmp_path)]
    assert keys == [SHOW.enabled, SHOW.sample_rate, SHOW.enabled]
    panel = {p["corridor"]: p for p in state["corridors"]}
    assert panel["show_shopping_list"]["enabled"] is True
    assert panel["show_shopping_list"]["risk_class"] == "read"
    assert panel["share_shopping_list"]["mode_cap"] == "shadow"


@pytest.mark.parametrize("name", ["delete_account", "", "add_shopping_item "])
async def test_a_corridor_off_the_allowlist_is_refused(
    console: Starlette, flags: Path, name: str
) -> None:
    before = flags.read_bytes()
    async with client(console) as c:
        r = await c.post("/api/kill", json={"reason": "x", "corridor": name}, headers=AUTH)
    assert r.status_code == 422 and "allowlist" in r.text
    assert flags.read_bytes() == before
