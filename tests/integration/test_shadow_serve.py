"""Shadow mode through real processes: ``partial-trust serve`` (env provider) + llm-sim.

Every answer is the baseline's, byte for byte and at baseline speed, even with the LLM
hanging; llm-sim is still asked (after the answers), and the risk log records ``mode: shadow``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.stack import (
    llm_sim,
    metric_value,
    reference_app,
    shopping_command,
    sim_calls,
    sim_force,
    wait_lines,
)

pytestmark = pytest.mark.integration


def baseline_bytes(body: dict[str, Any]) -> bytes:
    from partial_trust.contracts import CommandDTO
    from partial_trust.middleware.baseline import route

    decision = route(CommandDTO.model_validate(body)).model_dump(mode="json")
    return json.dumps(decision, ensure_ascii=False, separators=(",", ":")).encode()


def wait_calls(sim: Any, count: int, timeout_s: float = 10.0) -> int:
    deadline = time.monotonic() + timeout_s
    while (calls := sim_calls(sim)) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return calls


def test_shadow_serves_the_baseline_and_asks_the_llm_in_the_background(tmp_path: Path) -> None:
    with (
        llm_sim(tmp_path) as sim,
        reference_app(
            tmp_path, f"{sim.url}/v1", PARTIAL_TRUST_MODE="shadow", PARTIAL_TRUST_TIMEOUT_MS="2000"
        ) as (app, log),
    ):
        health = httpx.get(f"{app.url}/health", timeout=5).json()
        before = sim_calls(sim)
        for i in range(5):
            body = shopping_command(f"cmd-{i}")
            response = httpx.post(f"{app.url}/route", json=body, timeout=10)
            assert response.status_code == 200
            assert response.content == baseline_bytes(body)  # never the LLM's answer
        assert wait_calls(sim, before + 5) == before + 5
        lines = wait_lines(log, 5)
        assert [x["mode"] for x in lines] == ["shadow"] * 5
        assert {x["status"] for x in lines} == {"accepted_llm"}  # would have been accepted
        assert all(isinstance(x["agreement"], bool) for x in lines)
        labels = {"corridor": "add_shopping_item", "mode": "shadow"}
        counted = sum(
            metric_value(app, "partial_trust_agreement_total", {**labels, "agreement": a})
            for a in ("true", "false")
        )
        assert counted == 5

        sim_force(sim, "hang")  # every call now runs into the 2 s timeout
        slowest = 0.0
        for i in range(5, 10):
            body = shopping_command(f"cmd-{i}")
            started = time.perf_counter()
            response = httpx.post(f"{app.url}/route", json=body, timeout=10)
            slowest = max(slowest, time.perf_counter() - started)
            assert response.content == baseline_bytes(body)
        assert slowest < 1.0, slowest  # the timeout is 2 s: nobody waited for the LLM
        lines = wait_lines(log, 10, timeout_s=15.0)
        timed_out = [x for x in lines[5:] if x["reason_code"] == "llm_timeout"]
        assert len(timed_out) == 5 and all(x["mode"] == "shadow" for x in timed_out)
        assert health["partial_trust"]["effective"]["mode"] == "shadow"
