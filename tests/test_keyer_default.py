"""A ``CommandKeyer`` built without a key (issue 18): the library never reads the environment
for it. The key comes from the caller (``CorridorStack.from_env`` resolves it from the
``Environment`` it was given); without one, every key-less keyer of the process shares one
random key, announced by one warning that says what it costs and how to fix it.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from partial_trust.environment import Environment
from partial_trust.middleware import sampling
from partial_trust.middleware.factory import CorridorStack
from partial_trust.middleware.sampling import CommandKeyer
from tests.support.procs import REPO

ENV_KEY = "0123456789abcdef" * 4


@pytest.fixture
def fresh_process_key() -> Iterator[None]:
    """As in a new process: no key-less keyer built yet, so its warning not yet logged."""
    sampling.process_key.cache_clear()
    yield
    sampling.process_key.cache_clear()


@pytest.mark.usefixtures("fresh_process_key")
def test_a_set_variable_is_not_read_behind_the_callers_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PARTIAL_TRUST_HASH_KEY", ENV_KEY)
    keyer = CommandKeyer()
    assert keyer.status()["source"] == "ephemeral"
    assert keyer("c-1") != CommandKeyer(ENV_KEY.encode())("c-1")


@pytest.mark.usefixtures("fresh_process_key")
def test_key_less_keyers_share_one_process_key_and_warn_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, "partial_trust.hash_key"):
        keyers = [CommandKeyer() for _ in range(5)]
    assert len({k("c-1") for k in keyers}) == 1  # records of one process still join
    warnings = [r for r in caplog.records if r.name == "partial_trust.hash_key"]
    assert len(warnings) == 1
    message = warnings[0].getMessage()
    assert "not be stable across restarts" in message and "PARTIAL_TRUST_HASH_KEY" in message
    assert sampling.process_key().key.decode() not in message


def test_each_process_draws_its_own_key() -> None:
    script = (
        "from partial_trust.middleware.sampling import CommandKeyer\n"
        "print(CommandKeyer()('c-1'), CommandKeyer()('c-1'))\n"
    )
    runs = [
        subprocess.run(
            [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, check=True
        )
        for _ in range(2)
    ]
    pairs = [run.stdout.split() for run in runs]
    assert all(len(p) == 2 and p[0] == p[1] for p in pairs), pairs  # one key per process
    assert pairs[0][0] != pairs[1][0]  # not stable across restarts, as the warning says
    assert all("not be stable across restarts" in run.stderr for run in runs)


def test_the_stack_keys_from_the_environment_it_was_given(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PARTIAL_TRUST_HASH_KEY", "not-this-one-" * 2)  # the process's: unused
    env = Environment.from_mapping(
        {
            "PARTIAL_TRUST_FLAGS_PROVIDER": "env",
            "PARTIAL_TRUST_HASH_KEY": ENV_KEY,
            "PARTIAL_TRUST_RISK_LOG_PATH": str(tmp_path / "risk.jsonl"),
        }
    )
    stack = CorridorStack.from_env(env)
    assert stack.engine.keyer.status()["source"] == "env"
    assert stack.engine.keyer("c-1") == CommandKeyer(ENV_KEY.encode())("c-1")
