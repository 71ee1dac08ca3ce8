"""The review API in-process: only the reviewer token reads, verdicts are checked, audited
with the reviewer's name and counted, and nothing raw reaches the audit log or metrics."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from partial_trust.environment import Environment
from partial_trust.middleware.review import ReviewCase
from tests.apps.console.helpers import AUTH, client, copy_flags, make_console
from tests.review_helpers import (
    KEY,
    canary_command,
    disagreeing_candidate,
    flush,
    leaks,
    review_settings,
    started,
)

pytestmark = pytest.mark.anyio
REVIEWER = "reviewer-token-0123456789abcdef"
REVIEWER_AUTH = {"Authorization": f"Bearer {REVIEWER}"}


def seed(path: Path, n: int) -> None:
    writer = started(review_settings(path))
    for i in range(n):
        writer.submit(
            ReviewCase(
                corridor="add_shopping_item", mode="shadow", status="accepted_llm",
                reason="accepted", command_key=f"{i:016x}", command=canary_command(f"c-{i}"),
                baseline={"intent": "add_shopping_item", "job": {"payload": {"list_id": "l-1",
                          "items": [{"name": "zqxwvbanana", "quantity": 1},
                                    {"name": "milk", "quantity": 1}]}}},
                candidate=disagreeing_candidate(), created=time.time() - n + i,
            )
        )  # fmt: skip
    flush(writer)


def review_env(tmp_path: Path, **over: str) -> Environment:
    env = {
        "PARTIAL_TRUST_REVIEW_STORE": str(tmp_path / "review.db"),
        "PARTIAL_TRUST_REVIEW_KEY": KEY,
        "PARTIAL_TRUST_REVIEWER_TOKEN": REVIEWER,
        "PARTIAL_TRUST_REVIEW_AUDIT_LOG": str(tmp_path / "review_audit.jsonl"),
    }
    env.update(over)
    return Environment.from_mapping(env)


def verdict(case_id: int, **over: Any) -> dict[str, Any]:
    return {"case_id": case_id, "verdict": "llm_right", "reviewer": "ana", **over}


async def test_only_the_reviewer_token_reads(tmp_path: Path) -> None:
    seed(tmp_path / "review.db", 1)
    app = make_console(tmp_path, copy_flags(tmp_path), env=review_env(tmp_path))
    async with client(app) as c:
        for headers in ({}, AUTH, {"Authorization": "Bearer wrong"}):
            r = await c.get("/review/api/next", headers=headers)
            assert r.status_code == 401 and not leaks(r.text)
        r = await c.post("/review/api/verdict", json=verdict(1), headers=AUTH)
        assert r.status_code == 401
        # the reviewer token does not open the operator's controls either
        r = await c.post("/api/kill", json={"reason": "x"}, headers=REVIEWER_AUTH)
        assert r.status_code == 401
        r = await c.get("/review/api/next", headers=REVIEWER_AUTH)
        assert r.status_code == 200 and r.json()["case"]["id"] == 1
        assert r.json()["case"]["differed"] == ["only the baseline has: milk x1"]
    # no reviewer token configured: nothing readable at all
    app = make_console(
        tmp_path,
        copy_flags(tmp_path),
        env=review_env(tmp_path, PARTIAL_TRUST_REVIEWER_TOKEN=""),
    )
    async with client(app) as c:
        r = await c.get("/review/api/next", headers=REVIEWER_AUTH)
        assert r.status_code == 403 and not leaks(r.text)


async def test_a_wrong_store_key_reads_nothing(tmp_path: Path) -> None:
    seed(tmp_path / "review.db", 1)
    from cryptography.fernet import Fernet

    env = review_env(tmp_path, PARTIAL_TRUST_REVIEW_KEY=Fernet.generate_key().decode())
    app = make_console(tmp_path, copy_flags(tmp_path), env=env)
    async with client(app) as c:
        r = await c.get("/review/api/next", headers=REVIEWER_AUTH)
    assert r.status_code == 503 and "wrong key" in r.json()["error"] and not leaks(r.text)


async def test_verdicts_are_checked_audited_and_counted(tmp_path: Path) -> None:
    seed(tmp_path / "review.db", 3)
    registry = CollectorRegistry()
    app = make_console(tmp_path, copy_flags(tmp_path), env=review_env(tmp_path), registry=registry)
    async with client(app) as c:
        post = c.post

        async def judge(body: dict[str, Any]) -> int:
            r = await post("/review/api/verdict", json=body, headers=REVIEWER_AUTH)
            return r.status_code

        assert await judge(verdict(1, verdict="baseline_right")) == 422  # no category
        assert await judge(verdict(1, verdict="maybe")) == 422
        assert await judge(verdict(1, reviewer="a\u202eb")) == 422  # a bidi spoof
        assert await judge(verdict(9)) == 404
        note = "zqxwvbanana was meant"
        body = verdict(1, verdict="baseline_right", category="too_permissive", note=note)
        assert await judge(body) == 200
        assert await judge(verdict(1)) == 409  # judged once
        assert await judge(verdict(2)) == 200
        r = await c.get("/review/api/next", headers=REVIEWER_AUTH)
        assert r.json()["progress"] == {"reviewed": 2, "total": 3}
        assert r.json()["case"]["id"] == 3
    lines = [json.loads(x) for x in (tmp_path / "review_audit.jsonl").read_text().splitlines()]
    assert [(x["actor"], x["case"], x["verdict"], x["category"]) for x in lines] == [
        ("ana", 1, "baseline_right", "too_permissive"),
        ("ana", 2, "llm_right", "none"),
    ]
    assert not leaks(json.dumps(lines)), "raw data in the review audit log"
    count = registry.get_sample_value(
        "partial_trust_review_verdicts_total",
        {
            "corridor": "add_shopping_item",
            "verdict": "baseline_right",
            "category": "too_permissive",
        },
    )
    assert count == 1.0
