"""The console's state applies the environment's ceilings as the services do and names them."""

from __future__ import annotations

from pathlib import Path

import pytest

from partial_trust.apps.console import state
from partial_trust.config import EnvDefaults
from partial_trust.environment import Environment
from partial_trust.flags import flagfile
from tests.apps.console.helpers import client, copy_flags, make_console


def on_file(tmp_path: Path) -> Path:
    path = copy_flags(tmp_path)
    flagfile.set_flag(path, flagfile.SAMPLE_RATE, 0.05)
    flagfile.resume(path, keep_rate=True)
    return path


def rows(flags: dict[str, object]) -> dict[str, dict[str, object]]:
    listed = flags["rows"]
    assert isinstance(listed, list)
    return {r["key"]: r for r in listed}


def test_no_variable_set_the_file_decides(tmp_path: Path) -> None:
    f = state.read_flags(on_file(tmp_path), EnvDefaults.from_env({}))
    assert f["on"] and f["sample_rate"] == 0.05 and f["stage"] == "stage 2 (5%)"
    assert all(r["limited_by"] == "" for r in rows(f).values())
    assert f["limits"]["sample_rate"] == "flag partial-trust-sample-rate"
    assert "policy_enabled" not in f["limits"]  # the console reads no policy file


def test_enabled_false_set_shows_off_and_why(tmp_path: Path) -> None:
    env = EnvDefaults.from_env({"PARTIAL_TRUST_ENABLED": "false"})
    f = state.read_flags(on_file(tmp_path), env)
    assert not f["on"] and "PARTIAL_TRUST_ENABLED" in f["why_off"]
    assert f["effective"] == {
        "enabled": False,
        "sample_rate": 0.0,
        "timeout_ms": 0,
        "profile_id": None,
    }
    assert rows(f)[flagfile.ENABLED]["limited_by"] == "env PARTIAL_TRUST_ENABLED"
    assert rows(f)[flagfile.ENABLED]["value"] is False
    assert f["limits"]["enabled"] == "env PARTIAL_TRUST_ENABLED"


def test_a_capped_rate_is_shown_capped_and_advance_follows_the_file(tmp_path: Path) -> None:
    env = EnvDefaults.from_env(
        {"PARTIAL_TRUST_SAMPLE_RATE": "0.01", "PARTIAL_TRUST_TIMEOUT_MS": "50"}
    )
    f = state.read_flags(on_file(tmp_path), env)
    assert f["on"] and f["sample_rate"] == 0.01 and f["stage"] == "stage 1 (1%)"
    row = rows(f)[flagfile.SAMPLE_RATE]
    assert (row["value"], row["served"], row["limited_by"]) == (
        0.01,
        0.05,
        "env PARTIAL_TRUST_SAMPLE_RATE",
    )
    assert rows(f)[flagfile.TIMEOUT_MS]["value"] == 50
    assert f["advance_to"] == 0.10 and f["retreat_to"] == 0.01  # the buttons edit the file


@pytest.mark.anyio
async def test_the_page_state_carries_the_limits(tmp_path: Path) -> None:
    app = make_console(
        tmp_path, on_file(tmp_path), env=Environment.from_mapping({"PARTIAL_TRUST_ENABLED": "0"})
    )
    async with client(app) as c:
        body = (await c.get("/api/state")).json()
    assert body["flags"]["on"] is False
    assert body["flags"]["limits"]["enabled"] == "env PARTIAL_TRUST_ENABLED"
