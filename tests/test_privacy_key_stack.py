"""``CorridorStack`` and the ``command_key`` secret: the key file next to the risk log, reused
by a second stack (a restart, another worker), named on ``/health`` without the key, refused
at construction when unsafe, and useless to anyone guessing ids with a public constant."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path

import pytest

from partial_trust.environment import Environment
from partial_trust.middleware import sampling
from partial_trust.middleware.factory import CorridorStack
from partial_trust.middleware.hash_key import KEY_FILE_NAME

OLD_PUBLIC_KEY = b"partial-trust-corridor/command-key/v1"  # the removed built-in default


def _hash(key: bytes, command_id: str) -> str:
    """``command_key`` as anyone holding ``key`` computes it."""
    return hashlib.blake2b(command_id.encode(), key=key, digest_size=12).hexdigest()


IDS = [f"c-{i}" for i in range(1, 1001)]


def _env(log_dir: Path, **extra: str) -> dict[str, str]:
    return {
        "PARTIAL_TRUST_FLAGS_PROVIDER": "env",
        "PARTIAL_TRUST_RISK_LOG_PATH": str(log_dir / "risk.jsonl"),
        **extra,
    }


def test_key_file_next_to_the_risk_log_is_shared_and_named_on_health(tmp_path: Path) -> None:
    log_dir = tmp_path / "logs"
    first = CorridorStack.from_env(Environment.from_mapping(_env(log_dir)))
    key_path = log_dir / KEY_FILE_NAME
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    second = CorridorStack.from_env(
        Environment.from_mapping(_env(log_dir))
    )  # a restart, or another worker
    assert [first.engine.keyer(i) for i in IDS[:50]] == [second.engine.keyer(i) for i in IDS[:50]]
    health = first.status()
    assert health["hash_key"] == {"source": "file", "path": str(key_path)}
    key = key_path.read_text()
    assert key not in json.dumps(health) and key not in repr(first.engine.keyer.origin)


def test_environment_key_wins_and_no_file_is_made(tmp_path: Path) -> None:
    stack = CorridorStack.from_env(
        Environment.from_mapping(_env(tmp_path, PARTIAL_TRUST_HASH_KEY="a-long-enough-key"))
    )
    assert stack.status()["hash_key"] == {"source": "env"}
    assert not (tmp_path / KEY_FILE_NAME).exists()
    # The key file's text is the key: putting it into the variable gives the same hashes.
    from_file = CorridorStack.from_env(Environment.from_mapping(_env(tmp_path / "a")))
    text = (tmp_path / "a" / KEY_FILE_NAME).read_text()
    from_env = CorridorStack.from_env(
        Environment.from_mapping(_env(tmp_path / "b", PARTIAL_TRUST_HASH_KEY=text))
    )
    assert from_file.engine.keyer("c-1") == from_env.engine.keyer("c-1")


def test_unsafe_key_file_stops_the_stack_at_construction(tmp_path: Path) -> None:
    key_path = tmp_path / KEY_FILE_NAME
    key_path.write_text(os.urandom(32).hex())
    key_path.chmod(0o644)
    with pytest.raises(ValueError, match=f"refusing the hash key file {key_path}.*chmod 600"):
        CorridorStack.from_env(Environment.from_mapping(_env(tmp_path)))
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o644  # left for the operator to judge


def test_unwritable_directory_gives_an_ephemeral_key_shown_on_health(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    stacks = [CorridorStack.from_env(Environment.from_mapping(_env(blocker))) for _ in range(2)]
    status = stacks[0].status()["hash_key"]
    assert status["source"] == "ephemeral" and "warning" in status and "path" not in status
    assert stacks[0].engine.keyer("c-1") != stacks[1].engine.keyer("c-1")


def test_guessing_with_any_public_constant_recovers_nothing(tmp_path: Path) -> None:
    keyer = CorridorStack.from_env(Environment.from_mapping(_env(tmp_path))).engine.keyer
    logged = {keyer(i) for i in IDS}
    for constant in (OLD_PUBLIC_KEY, sampling._SAMPLING_KEY, b"partial-trust-replay"):
        guesses = {_hash(constant, i) for i in IDS}
        assert not logged & guesses
    secret = (tmp_path / KEY_FILE_NAME).read_bytes()
    assert logged == {_hash(secret, i) for i in IDS}
