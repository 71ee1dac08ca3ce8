from __future__ import annotations

import os
import subprocess
import sys

import pytest

from partial_trust.environment import Environment
from partial_trust.middleware.hash_key import from_env
from partial_trust.middleware.sampling import CommandKeyer, is_sampled, sample_point
from tests.support.procs import REPO

IDS = [f"cmd-{i}" for i in range(100_000)]
CORRIDOR = "add_shopping_item"

_SCRIPT = (
    "from partial_trust.middleware.sampling import is_sampled\n"
    "print(''.join('1' if is_sampled('add_shopping_item', f'c-{i}', 0.05) else '0'"
    " for i in range(5000)))\n"
)


def _decisions_in_process(hashseed: str) -> str:
    env = {**os.environ, "PYTHONHASHSEED": hashseed}
    out = subprocess.run(
        [sys.executable, "-c", _SCRIPT],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


def test_identical_decisions_across_processes_with_different_hash_seeds() -> None:
    first, second = _decisions_in_process("1"), _decisions_in_process("98765")
    assert first == second
    assert first == "".join(
        "1" if is_sampled(CORRIDOR, f"c-{i}", 0.05) else "0" for i in range(5000)
    )
    assert 150 < first.count("1") < 350


def test_monotone_in_the_rate() -> None:
    at = {rate: {i for i in IDS if is_sampled(CORRIDOR, i, rate)} for rate in (0.01, 0.05, 0.10)}
    assert at[0.01] <= at[0.05] <= at[0.10]
    assert len(at[0.01]) < len(at[0.05]) < len(at[0.10])


@pytest.mark.parametrize("rate", [0.01, 0.05, 0.10, 0.5])
def test_observed_rate_within_point_three_percentage_points(rate: float) -> None:
    observed = sum(is_sampled(CORRIDOR, i, rate) for i in IDS) / len(IDS)
    assert abs(observed - rate) <= 0.003


def test_edges_and_range() -> None:
    assert not any(is_sampled(CORRIDOR, i, 0.0) for i in IDS[:1000])
    assert all(is_sampled(CORRIDOR, i, 1.0) for i in IDS[:1000])
    points = [sample_point(CORRIDOR, i) for i in IDS[:1000]]
    assert all(0.0 <= p < 1.0 for p in points)


def test_corridors_sample_independently() -> None:
    a = {i for i in IDS[:20_000] if is_sampled("add_shopping_item", i, 0.1)}
    b = {i for i in IDS[:20_000] if is_sampled("other_corridor", i, 0.1)}
    assert 0.05 < len(a & b) / len(a) < 0.15  # about 10% overlap, as for independent draws


def test_command_key_is_keyed_stable_and_hides_the_id() -> None:
    keyer = CommandKeyer(b"secret-1")
    assert keyer("c-1") == keyer("c-1")
    assert keyer("c-1") != keyer("c-2")
    assert keyer("c-1") != CommandKeyer(b"secret-2")("c-1")
    assert "c-1" not in keyer("c-1") and len(keyer("c-1")) == 24


def test_command_key_from_the_callers_environment() -> None:
    key = from_env(Environment.from_mapping({"PARTIAL_TRUST_HASH_KEY": "k1"}))
    assert key is not None and key.source == "env"
    assert CommandKeyer(key)("x") == CommandKeyer(b"k1")("x")
    with pytest.raises(ValueError, match="1 to 64 bytes"):
        CommandKeyer(b"")
