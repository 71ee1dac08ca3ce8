"""The webhook kills exactly the corridor each alert names; unknown corridors are counted and
audited, never written; the storm is counted and held per corridor."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette

from partial_trust.corridors import CORRIDOR_ALLOWLIST, flag_keys
from partial_trust.flags import flagfile
from tests.apps.console.helpers import (
    AUTH,
    alert,
    audit_lines,
    client,
    notification,
    served,
)
from tests.apps.console.test_webhook import hook, metrics

pytestmark = pytest.mark.anyio
READ = "show_shopping_list"
READ_ON = flag_keys(READ).enabled


async def turn_on(app: Starlette, corridor: str) -> None:
    async with client(app) as c:
        body = {"reason": "rolling out", "corridor": corridor, "acknowledge_storm": True}
        resp = await c.post("/api/resume", json=body, headers=AUTH)
    assert resp.status_code == 200, resp.text


async def test_an_alert_kills_only_the_corridor_it_names(
    console: Starlette, flags: Path, tmp_path: Path
) -> None:
    await turn_on(console, "add_shopping_item")
    await turn_on(console, READ)
    resp = await hook(console, notification(alert(corridor=READ)))
    assert resp.json()["alerts"] == [
        {"fingerprint": "3f1c2a9b8d7e6f50", "result": "rolled_back", "corridor": READ}
    ]
    assert served(flags, READ_ON) is False
    assert served(flags, flagfile.ENABLED) is True  # the shopping corridor keeps running
    line = audit_lines(tmp_path)[-1]
    assert (line["source"], line["corridor"], line["key"]) == ("auto-rollback", READ, READ_ON)


async def test_one_notification_for_two_corridors_kills_both_once_each(
    console: Starlette, flags: Path, tmp_path: Path
) -> None:
    await turn_on(console, "add_shopping_item")
    await turn_on(console, READ)
    body = notification(
        alert(fingerprint="a1", corridor=READ),
        alert(fingerprint="b2", corridor="add_shopping_item"),
        alert(fingerprint="a3", corridor=READ, starts_at="2026-11-23T03:01:00Z"),
    )
    resp = await hook(console, body)
    assert [a["result"] for a in resp.json()["alerts"]] == ["rolled_back"] * 3
    assert served(flags, READ_ON) is False and served(flags, flagfile.ENABLED) is False
    kills = [a for a in audit_lines(tmp_path) if a["source"] == "auto-rollback"]
    assert sorted((k["corridor"], k["fingerprint"]) for k in kills) == [
        ("add_shopping_item", "b2"),
        (READ, "a1"),
    ]
    (read_line,) = (k for k in kills if k["corridor"] == READ)
    assert read_line["handled"] == [["a3", "2026-11-23T03:01:00Z"]]
    again = await hook(console, body)  # Alertmanager's re-send: nothing more
    assert [a["result"] for a in again.json()["alerts"]] == ["repeat"] * 3
    assert len([a for a in audit_lines(tmp_path) if a["source"] == "auto-rollback"]) == 2


@pytest.mark.parametrize(
    "label",
    [
        "not_a_corridor",
        "partial-trust-enabled",  # a flag key as a corridor name: never a key to write
        "ADD_SHOPPING_ITEM",
        "add_shopping_item\u202e",
        "",
        None,  # no corridor label at all
    ],
)
async def test_an_unknown_corridor_is_counted_and_audited_once_never_written(
    console: Starlette, flags: Path, tmp_path: Path, label: str | None
) -> None:
    await turn_on(console, "add_shopping_item")
    before = flags.read_bytes()
    body: dict[str, Any] = alert(corridor=label or "")
    if label is None:
        del body["labels"]["corridor"]
    for _ in range(2):  # the second is Alertmanager's re-send
        resp = await hook(console, notification(body))
        assert resp.status_code == 200
        assert resp.json()["alerts"] == [
            {"fingerprint": "3f1c2a9b8d7e6f50", "result": "unknown_corridor"}
        ]
    assert flags.read_bytes() == before
    ignored = [a for a in audit_lines(tmp_path) if a["source"] == "webhook"]
    assert len(ignored) == 1
    (line,) = ignored
    assert line["action"] == "ignored" and "key" not in line
    assert "\u202e" not in str(line)  # escaped like every recorded label
    assert (line["fingerprint"], line["starts_at"]) == ("3f1c2a9b8d7e6f50", "2026-11-23T03:00:00Z")
    m = await metrics(console)
    assert m["partial_trust_console_webhook_alerts_total{unknown_corridor}"] == 2
    assert m["partial_trust_console_webhook_alerts_total{rolled_back}"] == 0
    # an ignored line is no rollback: it neither counts nor feeds a storm
    for corridor in CORRIDOR_ALLOWLIST:
        assert m[f"partial_trust_console_auto_rollbacks_total{{{corridor}}}"] == 0


async def test_the_storm_is_per_corridor(console: Starlette, flags: Path) -> None:
    for hour in ("01", "02", "03"):
        await turn_on(console, READ)
        await hook(console, notification(alert(corridor=READ, starts_at=f"2026-11-23T{hour}:00Z")))
    m = await metrics(console)
    assert m[f"partial_trust_console_rollback_storm{{{READ}}}"] == 1
    assert m[f"partial_trust_console_auto_rollbacks_total{{{READ}}}"] == 3
    assert m["partial_trust_console_rollback_storm{add_shopping_item}"] == 0
    async with client(console) as c:
        held = await c.post("/api/resume", json={"reason": "again", "corridor": READ}, headers=AUTH)
        assert held.status_code == 409 and READ in held.json()["error"]
        # the other corridor is not held back by a storm it did not have
        free = await c.post("/api/resume", json={"reason": "fine"}, headers=AUTH)
        assert free.status_code == 200, free.text
        panels = {p["corridor"]: p for p in (await c.get("/api/state")).json()["corridors"]}
    assert panels[READ]["storm"] is True and panels["add_shopping_item"]["storm"] is False
    assert served(flags, READ_ON) is False and served(flags, flagfile.ENABLED) is True
