"""Real uvicorn + real llm-sim: every reachable status and reason, over HTTP.

Each case asserts the HTTP answer, the risk-log line it produced, and that nothing the user
sent (text, item names, list ids, command id) reached the log.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.corridor_harness import iter_strings
from tests.integration.stack import (
    llm_sim,
    metric_value,
    reference_app,
    shopping_command,
    sim_calls,
    sim_force,
    wait_lines,
)
from tests.support.procs import Server, free_port

pytestmark = pytest.mark.integration
TEXT = "add milk and two eggs to my shopping list"
PRIVATE = ("milk", "eggs", "l-1", "l-2", "u-1", "add milk", "cmd-")

# mode forced on llm-sim -> (status, reason) the corridor must record
LLM_CASES: list[tuple[str, str, str]] = [
    ("none", "accepted_llm", "accepted"),
    ("no_confidence", "accepted_llm", "accepted"),
    ("hang", "error", "llm_timeout"),
    ("drip", "error", "llm_timeout"),
    ("error", "error", "llm_http_error"),
    ("malformed", "error", "llm_invalid_response"),
    ("oversized", "error", "llm_invalid_response"),
    ("invalid_utf8", "error", "llm_invalid_response"),
    ("wrong_intent", "fallback_deterministic", "intent_mismatch"),
    ("extra_fields", "fallback_deterministic", "schema_violation"),
    ("foreign_list", "fallback_deterministic", "list_id_not_allowed"),
    ("low_confidence", "fallback_deterministic", "low_confidence"),
    ("injection", "fallback_deterministic", "invalid_item_name"),
    ("empty_items", "fallback_deterministic", "empty_items"),
    ("many_items", "fallback_deterministic", "too_many_items"),
]


@pytest.fixture(scope="module")
def tmp_module(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("reference")


@pytest.fixture(scope="module")
def sim(tmp_module: Path) -> Iterator[Server]:
    # 1 MB is four times the client's cap: enough to be refused as oversized, and small
    # enough for llm-sim to serialise well inside the 150 ms deadline on a busy machine
    # (its 10 MiB default took longer there, and the call ended as a timeout instead).
    with llm_sim(tmp_module, "--oversized-bytes", "1000000") as server:
        yield server


@pytest.fixture(scope="module")
def app(tmp_module: Path, sim: Server) -> Iterator[tuple[Server, Path]]:
    with reference_app(tmp_module, f"{sim.url}/v1") as pair:
        yield pair


def post(server: Server, body: Any) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode()
    return httpx.post(f"{server.url}/route", content=content, timeout=10)


def baseline_of(body: dict[str, Any]) -> dict[str, Any]:
    """The reference router's own decision, computed in-process from the same module."""
    from partial_trust.contracts import CommandDTO
    from partial_trust.middleware.baseline import route

    return route(CommandDTO.model_validate(body)).model_dump(mode="json")


def assert_private(lines: list[dict[str, Any]]) -> None:
    for line in lines:
        for text in iter_strings(line):
            assert not any(secret in text for secret in PRIVATE), line


@pytest.mark.parametrize(("mode", "status", "reason"), LLM_CASES)
def test_llm_outcomes_over_http(
    app: tuple[Server, Path], sim: Server, mode: str, status: str, reason: str
) -> None:
    server, log = app
    before = len(wait_lines(log, 0))
    sim_force(sim, "none")  # a success first: the circuit breaker starts closed every case
    assert post(server, shopping_command(f"cmd-warm-{mode}")).status_code == 200
    sim_force(sim, mode)
    body = shopping_command(f"cmd-{mode}")
    response = post(server, body)
    assert response.status_code == 200
    decision = response.json()
    baseline = baseline_of(body)
    if status == "accepted_llm":
        assert decision.keys() == baseline.keys()
        assert decision["job"]["payload"]["items"] == baseline["job"]["payload"]["items"]
    else:
        assert decision == baseline
        assert (
            response.content
            == json.dumps(baseline, ensure_ascii=False, separators=(",", ":")).encode()
        )
    lines = wait_lines(log, before + 2)
    last = lines[before + 1]
    assert (last["status"], last["reason_code"]) == (status, reason)
    assert last["sampled"] is True and last["schema"] == "partial_trust_risk/v1"
    if status == "error":
        assert last["intent_match"] is None
    else:
        assert last["intent_match"] is (reason != "intent_mismatch")
    assert_private(lines)


def test_circuit_opens_and_stops_calling_the_llm(app: tuple[Server, Path], sim: Server) -> None:
    server, log = app
    before = len(wait_lines(log, 0))
    sim_force(sim, "error")
    for i in range(7):
        assert post(server, shopping_command(f"cmd-circuit-{i}")).status_code == 200
    calls_when_open = sim_calls(sim)
    assert post(server, shopping_command("cmd-circuit-x")).status_code == 200
    assert sim_calls(sim) == calls_when_open
    reasons = [line["reason_code"] for line in wait_lines(log, before + 8)[before:]]
    assert reasons == ["llm_http_error"] * 5 + ["circuit_open"] * 3
    assert metric_value(server, "partial_trust_circuit_state", {}) == 1.0


@pytest.mark.parametrize(
    ("body", "reason", "code"),
    [
        (shopping_command("cmd-timer", text="set a timer for 5 minutes"), "corridor_mismatch", 200),
        (shopping_command("cmd-nocap", capabilities=[]), "capability_mismatch", 200),
        (b'{"command_id": "cmd-bad", "text": 42}', "invalid_command", 422),
        (b"\xff\xfe not json", "invalid_command", 422),
    ],
)
def test_skips_over_http(app: tuple[Server, Path], body: Any, reason: str, code: int) -> None:
    server, log = app
    before = len(wait_lines(log, 0))
    response = post(server, body)
    assert response.status_code == code
    if isinstance(body, dict):
        assert response.json() == baseline_of(body)
    else:
        assert response.json()["error"] == "invalid_command"
    lines = wait_lines(log, before + 1)
    assert (lines[-1]["status"], lines[-1]["reason_code"]) == ("skipped", reason)
    assert_private(lines)


def test_unavailable_llm_and_not_sampled(tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}/v1"
    with reference_app(tmp_path, dead, PARTIAL_TRUST_SAMPLE_RATE="0.5") as (server, log):
        bodies = [shopping_command(f"cmd-u{i}") for i in range(40)]
        for body in bodies:
            response = post(server, body)
            assert response.status_code == 200 and response.json() == baseline_of(body)
        not_sampled = metric_value(
            server, "partial_trust_decisions_total", {"status": "skipped", "reason": "not_sampled"}
        )
        lines = wait_lines(log, 40 - int(not_sampled))
    reasons = {line["reason_code"] for line in lines}
    assert reasons <= {"llm_unavailable", "circuit_open"} and "llm_unavailable" in reasons
    assert 5 <= not_sampled <= 35 and len(lines) == 40 - not_sampled
    assert_private(lines)


def test_policy_disabled_and_corridor_off(tmp_path: Path, sim: Server) -> None:
    url = f"{sim.url}/v1"
    with reference_app(tmp_path, url, "nopolicy", LLM_POLICY_ENABLED="false") as (server, log):
        calls = sim_calls(sim)
        assert post(server, shopping_command("cmd-p")).status_code == 200
        assert wait_lines(log, 1)[0]["reason_code"] == "policy_disabled"
        assert sim_calls(sim) == calls
    with reference_app(tmp_path, url, "off", PARTIAL_TRUST_ENABLED="false") as (server, log):
        body = shopping_command("cmd-off")
        assert post(server, body).json() == baseline_of(body)
        assert sim_calls(sim) == calls and not log.exists()
        health = httpx.get(f"{server.url}/health", timeout=5).json()
        assert health["partial_trust"]["effective"]["enabled"] is False
        assert health["partial_trust"]["effective"]["sample_rate"] == 0.0
