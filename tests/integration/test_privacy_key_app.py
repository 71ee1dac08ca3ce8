"""Real uvicorn + real llm-sim without ``PARTIAL_TRUST_HASH_KEY``: the app generates its key
file next to the risk log (0600), names it on ``/health`` (never the key), every risk-log
``command_key`` is the file key's hash and not the old public default's, and a restarted app
reuses the key, so one command id keys the same before and after."""

from __future__ import annotations

import hashlib
import stat
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from partial_trust.middleware.hash_key import KEY_FILE_NAME
from tests.integration.stack import llm_sim, reference_app, shopping_command, wait_lines
from tests.support.procs import Server

pytestmark = pytest.mark.integration
OLD_PUBLIC_KEY = b"partial-trust-corridor/command-key/v1"


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with llm_sim(tmp_path_factory.mktemp("sim")) as server:
        yield server


def _hash(key: bytes, command_id: str) -> str:
    return hashlib.blake2b(command_id.encode(), key=key, digest_size=12).hexdigest()


def _run(app: Server, log: Path, ids: list[str]) -> dict[str, str]:
    for command_id in ids:
        response = httpx.post(f"{app.url}/route", json=shopping_command(command_id), timeout=10)
        assert response.status_code == 200
    lines = wait_lines(log, len(ids))
    assert len(lines) == len(ids)
    return {line["command_key"]: line["status"] for line in lines}


def test_generated_key_file_is_private_reused_and_unguessable(tmp_path: Path, sim: Server) -> None:
    ids = [f"c-{i}" for i in range(1, 31)]
    unset = {"PARTIAL_TRUST_HASH_KEY": ""}  # BASE_ENV sets one; empty means unset
    with reference_app(tmp_path, f"{sim.url}/v1", "first", **unset) as (app, log):
        key_path = tmp_path / KEY_FILE_NAME
        assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
        key = key_path.read_bytes()
        health = httpx.get(f"{app.url}/health", timeout=5).json()["partial_trust"]
        assert health["hash_key"] == {"source": "file", "path": str(key_path)}
        first = _run(app, log, ids)
        output = app.output()
    assert set(first) == {_hash(key, i) for i in ids}
    assert not set(first) & {_hash(OLD_PUBLIC_KEY, i) for i in ids}
    assert key.decode() not in output + str(health) + log.read_text()
    with reference_app(tmp_path, f"{sim.url}/v1", "second", **unset) as (app, log):
        again = _run(app, log, ids[:5])
    assert key_path.read_bytes() == key
    assert set(again) == {_hash(key, i) for i in ids[:5]} <= set(first)
