"""Raising the sample rate live (0.01 → 0.05 → 0.10) only ever adds commands to the sample.

The ids that reached the LLM are recovered from the risk log: the test knows the hash key,
so it can key its own ids and match the log's ``command_key`` without the log holding ids.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import httpx
import pytest

from partial_trust.flags import flagfile
from partial_trust.middleware.sampling import CommandKeyer, is_sampled
from partial_trust.outcome import SAMPLED_STATUSES
from tests.integration.stack import BASE_ENV, llm_sim, reference_app, shopping_command, wait_lines
from tests.support.procs import REPO

pytestmark = pytest.mark.integration
IDS = [f"live-{i}" for i in range(400)]
SAMPLED = {status.value for status in SAMPLED_STATUSES}


def test_raising_the_rate_live_only_grows_the_sampled_set(tmp_path: Path) -> None:
    path = tmp_path / "partial-trust.flagd.json"
    shutil.copy(REPO / "flags" / "partial-trust.flagd.json", path)
    flagfile.set_flag(path, flagfile.SAMPLE_RATE, 0.01)
    flagfile.resume(path)
    keyer = CommandKeyer(BASE_ENV["PARTIAL_TRUST_HASH_KEY"].encode())
    key_to_id = {keyer(i): i for i in IDS}
    env = {"PARTIAL_TRUST_FLAGS_PROVIDER": "file", "PARTIAL_TRUST_FLAGS_FILE": str(path)}
    sampled_at: dict[float, set[str]] = {}
    with llm_sim(tmp_path) as sim, reference_app(tmp_path, f"{sim.url}/v1", **env) as (app, log):
        seen = 0
        with httpx.Client(timeout=5) as client:
            for rate in (0.01, 0.05, 0.10):
                flagfile.set_flag(path, flagfile.SAMPLE_RATE, rate)
                deadline = time.monotonic() + 3
                while (
                    client.get(f"{app.url}/health").json()["partial_trust"]["effective"][
                        "sample_rate"
                    ]
                    != rate
                ):
                    assert time.monotonic() < deadline, f"rate {rate} never took effect"
                    time.sleep(0.02)
                for command_id in IDS:
                    assert (
                        client.post(
                            f"{app.url}/route", json=shopping_command(command_id)
                        ).status_code
                        == 200
                    )
                expected = {i for i in IDS if is_sampled("add_shopping_item", i, rate)}
                lines = wait_lines(log, seen + len(expected))
                sampled_at[rate] = {
                    key_to_id[line["command_key"]]
                    for line in lines[seen:]
                    if line["status"] in SAMPLED
                }
                seen = len(lines)
                assert sampled_at[rate] == expected
    assert sampled_at[0.01] <= sampled_at[0.05] <= sampled_at[0.10]
    assert len(sampled_at[0.01]) < len(sampled_at[0.05]) < len(sampled_at[0.10])
