""" "Next stage" against every verdict of the gate, in-process: the console refuses anything but
GO (409, the flag file untouched, nothing audited) unless the override is ticked with a reason,
and an override is audited as one, naming the verdict it overrode. GO advances without it.
(The HOLD case, with the time left on the page, is the Chromium test test_stage_override.)
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette

from partial_trust.flags import flagfile
from tests.apps.console.helpers import AUTH, audit_lines, client, served

pytestmark = pytest.mark.anyio


def line(ts: datetime, status: str = "accepted_llm", intent_match: bool = True) -> str:
    ok = status == "accepted_llm"
    rec = {
        "timestamp": ts.strftime("%Y-%m-%dT%H:%M:%S.000Z"), "schema": "partial_trust_risk/v1",
        "corridor": "add_shopping_item", "command_key": "0f3a9c1b7d4e5f60", "status": status,
        "reason_code": "accepted" if ok else "llm_timeout", "sampled": True,
        "sample_rate": 0.01, "profile_id": None, "latency_ms": 120.0 if ok else 200.0,
        "baseline_latency_ms": 3.0, "intent_match": intent_match if ok else None,
        "entity_key_match": True if ok else None, "confidence": 0.9, "items_baseline": 2,
        "items_llm": 2 if ok else None,
    }  # fmt: skip
    return json.dumps(rec, separators=(",", ":"))


def records(tmp: Path, errors: int = 0, mismatched: int = 0) -> None:
    """100 records at 1% over the last 4 days (stage 1's 3 days are met): the verdict is the
    records' alone."""
    now = datetime.now(UTC)
    out = []
    for i in range(100):
        ts = now - timedelta(days=4) + timedelta(hours=i * 0.95)
        if i < errors:
            out.append(line(ts, "error"))
        else:
            out.append(line(ts, intent_match=i >= errors + mismatched))
    (tmp / "risk.jsonl").write_text("\n".join(out) + "\n", encoding="utf-8")


async def advance(app: Starlette, **body: Any) -> Any:
    async with client(app) as c:
        return await c.post("/api/advance", json={"reason": "next", **body}, headers=AUTH)


@pytest.mark.parametrize(
    ("errors", "mismatched", "verdict"),
    [(0, 12, "NO-GO"), (9, 0, "ROLLBACK")],  # 12% intent mismatches; 9% errors (line 5%)
)
async def test_anything_but_go_is_refused_until_an_audited_override(
    console: Starlette, flags: Path, tmp_path: Path, errors: int, mismatched: int, verdict: str
) -> None:
    flagfile.resume(flags, reason="test: stage 1 on", keep_rate=True)  # not audited
    records(tmp_path, errors, mismatched)
    refused = await advance(console)
    assert refused.status_code == 409
    assert refused.json()["verdict"] == verdict, refused.json()
    assert "tick the override" in refused.json()["error"]
    assert served(flags, flagfile.SAMPLE_RATE) == 0.01 and audit_lines(tmp_path) == []
    no_reason = await advance(console, reason=" ", override=True)
    assert no_reason.status_code in (400, 422) and served(flags, flagfile.SAMPLE_RATE) == 0.01
    done = await advance(console, reason="incident 7: signed off", override=True)
    assert done.status_code == 200, done.text
    assert served(flags, flagfile.SAMPLE_RATE) == 0.05
    (audited,) = audit_lines(tmp_path)
    assert audited["override"] is True and audited["overridden_verdict"] == verdict
    assert audited["reason"] == "incident 7: signed off" and audited["action"] == "advance"


async def test_go_advances_without_the_override(
    console: Starlette, flags: Path, tmp_path: Path
) -> None:
    flagfile.resume(flags, reason="test: stage 1 on", keep_rate=True)
    records(tmp_path)
    done = await advance(console)
    assert done.status_code == 200, done.text
    assert served(flags, flagfile.SAMPLE_RATE) == 0.05
    (audited,) = audit_lines(tmp_path)
    assert audited["gate_verdict"] == "GO" and "override" not in audited
