"""Each corridor's panel: its own stage, gate verdict on its own risk-log records, its own
stage clock from its own audit lines, and advance/retreat that write its own keys."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette

from partial_trust.apps.analysis.tally import Window
from partial_trust.apps.console.corridor_log import audit_for, line_corridor, tally_corridor
from partial_trust.corridors import SHOPPING, flag_keys
from partial_trust.flags import flagfile
from tests.apps.console.helpers import AUTH, client, served
from tests.apps.console.test_stage_override import risk_line

pytestmark = pytest.mark.anyio
READ = "show_shopping_list"
RK = flag_keys(READ)


def line_of(corridor: str | None, ts: datetime, status: str = "accepted_llm") -> str:
    rec: dict[str, Any] = json.loads(risk_line(ts))
    if corridor is None:  # the original application's line: no schema, no corridor
        del rec["corridor"], rec["schema"]
    else:
        rec["corridor"] = corridor
    if status == "error":
        rec.update(status="error", reason_code="llm_timeout", intent_match=None,
                   entity_key_match=None, confidence=None, items_llm=None)  # fmt: skip
    return json.dumps(rec, separators=(",", ":"))


def mixed_log(path: Path, now: datetime, *, foreign: bool = True) -> None:
    """The read corridor: 80 healthy records; the shopping corridor: 80 errors; plus one
    legacy line without corridor and one foreign line (both the shopping corridor's)."""
    start = now - timedelta(minutes=62)
    lines = [line_of(READ, start + timedelta(seconds=45 * i)) for i in range(80)]
    lines += [line_of(SHOPPING, start + timedelta(seconds=45 * i), "error") for i in range(80)]
    lines += [line_of(None, start), line_of("share_shopping_list", start)]
    lines += ["not json"] if foreign else []
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_each_corridor_tallies_only_its_own_lines(tmp_path: Path) -> None:
    log = tmp_path / "risk.jsonl"
    mixed_log(log, datetime.now(UTC))
    read, shop = (tally_corridor(log, c, Window()) for c in (READ, SHOPPING))
    share = tally_corridor(log, "share_shopping_list", Window())
    assert sum(read.records.values()) == 80 and read.foreign == 0
    assert sum(shop.records.values()) == 81 and shop.foreign == 1  # + legacy, + "not json"
    assert sum(share.records.values()) == 1
    assert read.lines + shop.lines + share.lines == 163  # every line in exactly one view


@pytest.mark.parametrize(
    ("line", "corridor"),
    [
        (b'{"corridor":"show_shopping_list","x":1}', READ),
        (b'{"corridor": "show_shopping_list"}', READ),  # another writer's spacing
        (b'{"\\u0063orridor":"show_shopping_list"}', READ),  # an escaped key: parsed
        (b'{"corridor":"a","corridor":"show_shopping_list"}', READ),  # JSON's last wins
        (b'{"profile_id":"\\"corridor\\":\\"show_shopping_list\\""}', SHOPPING),
        (b'{"corridor":null}', SHOPPING),
        (b"[1]", SHOPPING),
        (b"", SHOPPING),
    ],
)
def test_a_line_belongs_to_the_corridor_its_field_names(line: bytes, corridor: str) -> None:
    assert line_corridor(line) == corridor


def test_the_audit_log_is_split_by_key() -> None:
    records: list[dict[str, Any]] = [
        {"key": RK.sample_rate, "new": 0.05},
        {"key": flagfile.SAMPLE_RATE, "new": 0.1},
        {"key": RK.enabled, "new": True, "sample_rate_new": 0.01},
        {"source": "webhook", "action": "ignored"},
    ]
    assert audit_for(records, READ) == [
        {"key": flagfile.SAMPLE_RATE, "new": 0.05},
        {"key": flagfile.ENABLED, "new": True, "sample_rate_new": 0.01},
    ]
    assert audit_for(records, SHOPPING) == [{"key": flagfile.SAMPLE_RATE, "new": 0.1}]


def both_on_an_hour_ago(flags: Path) -> None:
    """Both corridors on at stage 1, their rates set 63 minutes ago (the gate counts from
    there: every record of ``mixed_log`` is in)."""
    flagfile.resume(flags, reason="on")
    flagfile.resume(flags, reason="on", corridor=READ)
    doc = json.loads(flags.read_text())
    then = (datetime.now(UTC) - timedelta(minutes=63)).strftime("%Y-%m-%dT%H:%M:%SZ")
    for key in (flagfile.SAMPLE_RATE, RK.sample_rate):
        doc["flags"][key].setdefault("metadata", {})["changedAt"] = then
    flags.write_text(json.dumps(doc))


async def state_of(app: Starlette) -> dict[str, Any]:
    async with client(app) as c:
        resp = await c.get("/api/state")
    assert resp.status_code == 200
    return dict(resp.json())


async def test_panels_show_each_corridors_own_gate_and_stage(
    console: Starlette, flags: Path, tmp_path: Path
) -> None:
    mixed_log(tmp_path / "risk.jsonl", datetime.now(UTC), foreign=False)
    both_on_an_hour_ago(flags)
    panels = {p["corridor"]: p for p in (await state_of(console))["corridors"]}
    read, shop = panels[READ]["gate"], panels[SHOPPING]["gate"]
    assert read["available"] and read["stage"] == 1 and read["sampled"] == 80
    assert read["data_verdict"] == "GO" and read["verdict"] == "HOLD"  # 1 h of its 3 days
    assert read["duration"]["source"] == "none"  # no console audit line for it yet
    assert shop["available"] and shop["sampled"] == 81 and shop["verdict"] == "ROLLBACK"
    assert panels[READ]["stage"] == "stage 1 (1%)"
    assert (panels[READ]["advance_to"], panels[READ]["retreat_to"]) == (0.05, None)
    body = await state_of(console)
    assert body["gate"]["verdict"] == "ROLLBACK"  # the page's main gate: the shopping one


async def test_advance_and_retreat_write_only_the_named_corridors_rate(
    console: Starlette, flags: Path, tmp_path: Path
) -> None:
    mixed_log(tmp_path / "risk.jsonl", datetime.now(UTC))
    both_on_an_hour_ago(flags)
    async with client(console) as c:
        held = await c.post("/api/advance", json={"reason": "next", "corridor": READ}, headers=AUTH)
        assert held.status_code == 409 and held.json()["verdict"] == "HOLD"  # its own gate
        body = {"reason": "next", "corridor": READ, "override": True}
        moved = await c.post("/api/advance", json=body, headers=AUTH)
        assert moved.status_code == 200, moved.text
        line = moved.json()["audit"]
        assert line["key"] == RK.sample_rate and line["overridden_verdict"] == "HOLD"
        assert served(flags, RK.sample_rate) == 0.05
        assert served(flags, flagfile.SAMPLE_RATE) == 0.01  # the shopping corridor stays
        back = await c.post("/api/retreat", json={"reason": "back", "corridor": READ}, headers=AUTH)
        assert back.status_code == 200 and served(flags, RK.sample_rate) == 0.01
    panels = {p["corridor"]: p for p in (await state_of(console))["corridors"]}
    assert panels[READ]["stage"] == "stage 1 (1%)"


async def test_a_foreign_line_spoils_only_the_shopping_corridors_evidence(
    console: Starlette, flags: Path, tmp_path: Path
) -> None:
    """1 foreign line in 82 is over the analyzer's 1%: the shopping corridor (whose view
    holds every line that names no other corridor) cannot be evaluated; the read corridor's
    80 records are untouched by it."""
    mixed_log(tmp_path / "risk.jsonl", datetime.now(UTC))
    both_on_an_hour_ago(flags)
    panels = {p["corridor"]: p for p in (await state_of(console))["corridors"]}
    assert panels[SHOPPING]["gate"]["verdict"] == "CANNOT-EVALUATE"
    assert panels[READ]["gate"]["data_verdict"] == "GO"
