"""A broken review store turns review off, never the corridor: a corrupted file, a full disk,
a wrong, missing or malformed key each leave requests served and the reason on ``/health``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import respx
from cryptography.fernet import Fernet
from prometheus_client import CollectorRegistry

from partial_trust.environment import Environment
from partial_trust.middleware.factory import CorridorStack
from partial_trust.middleware.review_writer import ReviewWriter
from tests.corridor_harness import LLM_URL, completion, harness
from tests.corridor_harness import settings as corridor_settings
from tests.review_helpers import (
    KEY,
    canary_command,
    disagreeing_candidate,
    flush,
    review_settings,
    started,
)
from tests.support.procs import REPO

pytestmark = pytest.mark.anyio


def _corrupted(tmp_path: Path) -> tuple[Path, str]:
    path = tmp_path / "review.db"
    path.write_bytes(b"this is not a database, " * 400)
    return path, "not a review store"


def _wrong_key(tmp_path: Path) -> tuple[Path, str]:
    path = tmp_path / "review.db"
    flush(started(review_settings(path, key=Fernet.generate_key().decode())))
    return path, "wrong key"


def _full_disk(tmp_path: Path) -> tuple[Path, str]:
    return Path("/dev/full"), "disk is full"


def _not_a_file(tmp_path: Path) -> tuple[Path, str]:
    path = tmp_path / "review.db"
    path.mkdir()
    return path, "cannot be opened"


FAULTS = {
    "corrupted": _corrupted,
    "wrong-key": _wrong_key,
    "full-disk": _full_disk,
    "directory": _not_a_file,
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
async def test_a_broken_store_turns_review_off_and_the_corridor_serves(
    tmp_path: Path, fault: str
) -> None:
    path, why = FAULTS[fault](tmp_path)
    writer = started(review_settings(path))
    assert writer.active is False
    assert why in str(writer.status()["reason"])
    async with harness(tmp_path, corridor_settings(review_enabled=True)) as h:
        h.engine.review = writer
        with respx.mock() as mock:
            mock.post(f"{LLM_URL}/chat/completions").mock(
                return_value=completion(disagreeing_candidate())
            )
            responses = [await h.post(canary_command(f"c-{i}")) for i in range(5)]
        assert [r.status_code for r in responses] == [200] * 5
        # canary: the accepted candidate is served even though review is off
        assert {len(r.json()["job"]["payload"]["items"]) for r in responses} == {1}  # no milk
        assert len(h.lines()) == 5
    writer.close()


@pytest.mark.parametrize("key", ["", "short", "é" * 44])
def test_a_missing_or_malformed_key_is_a_reason_not_a_crash(tmp_path: Path, key: str) -> None:
    writer = started(review_settings(tmp_path / "review.db", key=key))
    assert writer.active is False
    assert "PARTIAL_TRUST_REVIEW_KEY" in str(writer.status()["reason"])
    writer.close()


def _stack_env(tmp_path: Path, **extra: str) -> Environment:
    return Environment.from_mapping(
        {
            "PARTIAL_TRUST_FLAGS_PROVIDER": "env",
            "PARTIAL_TRUST_RISK_LOG_PATH": str(tmp_path / "risk.jsonl"),
            "LLM_POLICY_PATH": str(REPO / "llm_policy" / "llm-policy.yaml"),
            **extra,
        }
    )


async def test_the_stack_reports_the_store_on_health(tmp_path: Path) -> None:
    bare = CorridorStack.from_env(_stack_env(tmp_path), registry=CollectorRegistry())
    assert bare.review is None and bare.engine.review is None
    assert bare.status()["review_store"] == {"configured": False, "active": False}

    path = tmp_path / "shared" / "review.db"
    env = _stack_env(
        tmp_path, PARTIAL_TRUST_REVIEW_STORE=str(path), PARTIAL_TRUST_REVIEW_KEY=KEY,
        PARTIAL_TRUST_REVIEW_SHARE="0.5", PARTIAL_TRUST_REVIEW_RETENTION_DAYS="7",
    )  # fmt: skip
    stack = CorridorStack.from_env(env, registry=CollectorRegistry())
    assert isinstance(stack.review, ReviewWriter) and stack.engine.review is stack.review
    await stack.start()
    try:
        assert stack.review.wait_ready(10.0)
        health = stack.status()["review_store"]
        assert health["active"] is True and health["reason"] is None
        assert health["share"] == 0.5 and health["retention_days"] == 7.0
    finally:
        await stack.stop()
    assert os.stat(path).st_mode & 0o077 == 0, "the store file is readable by others"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PARTIAL_TRUST_REVIEW_SHARE", "1.5"),
        ("PARTIAL_TRUST_REVIEW_SHARE", "abc"),
        ("PARTIAL_TRUST_REVIEW_RETENTION_DAYS", "0"),
        ("PARTIAL_TRUST_REVIEW_MAX_CASES", "nan"),
    ],
)
def test_bad_settings_stop_the_start_loudly(tmp_path: Path, name: str, value: str) -> None:
    env = _stack_env(tmp_path, PARTIAL_TRUST_REVIEW_STORE=str(tmp_path / "r.db"), **{name: value})
    with pytest.raises(ValueError, match=name):
        CorridorStack.from_env(env, registry=CollectorRegistry())
