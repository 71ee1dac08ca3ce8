"""The middleware end to end in process: every outcome, the exact bytes sent, the risk log."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from partial_trust.apps.reference.app import route_endpoint
from partial_trust.config import EffectiveSettings
from partial_trust.middleware.circuit import CircuitBreaker
from tests.corridor_harness import (
    LLM_URL,
    Harness,
    command,
    completion,
    good_candidate,
    harness,
    iter_strings,
    served_by_llm,
    settings,
    unsampled_id,
)

pytestmark = pytest.mark.anyio
SECRETS = ("add milk and two eggs", "milk", "eggs", "l-1", "l-2", "c-1", "u-1")


@pytest.fixture
def llm() -> Any:
    with respx.mock(base_url=LLM_URL, assert_all_called=False) as mock:
        yield mock


def only_line(h: Harness) -> dict[str, Any]:
    lines = h.lines()
    assert len(lines) == 1, lines
    return lines[0]


def assert_private(record: dict[str, Any]) -> None:
    for text in iter_strings(record):
        for secret in SECRETS:
            assert secret not in text, (secret, record)


async def test_foreign_path_and_method_pass_untouched(tmp_path: Path, llm: Any) -> None:
    route = llm.post("/chat/completions").mock(return_value=completion(good_candidate()))
    async with harness(tmp_path) as h:
        other = await h.post(command(), path="/other")
        get = await h.client.get("/route")
        assert other.status_code == 200 and not served_by_llm(json.loads(other.content))
        assert get.status_code == 405
        assert route.call_count == 0 and h.lines() == []


async def test_disabled_corridor_makes_no_call_no_line_and_passes_bytes(
    tmp_path: Path, llm: Any
) -> None:
    route = llm.post("/chat/completions").mock(return_value=completion(good_candidate()))
    async with harness(tmp_path, settings(enabled=False)) as h:
        response = await h.post(command())
        assert not served_by_llm(response.json())
        assert route.call_count == 0 and h.lines() == []
        assert sum(h.decisions(s, r) for s, r in [("skipped", "not_sampled")]) == 0


async def test_accepted_candidate_replaces_the_answer_with_correct_length(
    tmp_path: Path, llm: Any
) -> None:
    llm.post("/chat/completions").mock(return_value=completion(good_candidate()))
    async with harness(tmp_path) as h:
        baseline = json.loads(await h.baseline_bytes(command()))
        response = await h.post(command())
        body = response.json()
        assert served_by_llm(body) and not served_by_llm(baseline)
        assert body.keys() == baseline.keys() and body["job"].keys() == baseline["job"].keys()
        assert int(response.headers["content-length"]) == len(response.content)
        record = only_line(h)
        assert (record["status"], record["reason_code"]) == ("accepted_llm", "accepted")
        assert record["intent_match"] is True
        # "egg" for "eggs": the same stem (grounded), another item key, another decision
        assert record["entity_key_match"] is False and record["agreement"] is False
        assert record["items_llm"] == 2 and record["items_baseline"] == 2
        assert record["latency_ms"] >= 0 and record["sampled"] is True
        assert h.decisions("accepted_llm", "accepted") == 1
        assert_private(record)


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        (httpx.Response(503), "llm_http_error"),
        (httpx.Response(200, content=b"not json"), "llm_invalid_response"),
        (completion("[1, 2]"), "llm_invalid_response"),
        (httpx.ConnectError("refused"), "llm_unavailable"),
        (httpx.ReadTimeout("slow"), "llm_timeout"),
    ],
)
async def test_llm_errors_give_baseline_bytes(
    tmp_path: Path, llm: Any, reply: Any, reason: str
) -> None:
    route = llm.post("/chat/completions")
    if isinstance(reply, Exception):
        route.mock(side_effect=reply)
    else:
        route.mock(return_value=reply)
    async with harness(tmp_path) as h:
        expected = await h.baseline_bytes(command())
        response = await h.post(command())
        assert response.status_code == 200 and response.content == expected
        record = only_line(h)
        assert (record["status"], record["reason_code"]) == ("error", reason)
        assert h.decisions("error", reason) == 1
        assert_private(record)


async def test_hanging_llm_times_out_at_the_deadline(tmp_path: Path, llm: Any) -> None:
    async def hang(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(5)
        return completion(good_candidate())

    llm.post("/chat/completions").mock(side_effect=hang)
    async with harness(tmp_path, settings(timeout_ms=100)) as h:
        expected = await h.baseline_bytes(command())
        started = time.perf_counter()
        response = await h.post(command())
        elapsed = time.perf_counter() - started
        assert response.content == expected
        assert 0.09 <= elapsed < 0.3
        assert only_line(h)["reason_code"] == "llm_timeout"


async def test_the_deadline_counts_from_arrival_not_from_when_the_llm_task_runs(
    tmp_path: Path, llm: Any
) -> None:
    """A baseline that holds the event loop delays the LLM task's first step; the request's
    wait must still end at arrival + timeout, not at (baseline + timeout)."""

    async def hang(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(5)
        return completion(good_candidate())

    async def loop_hog(request: Request) -> Response:
        time.sleep(0.25)  # CPU-bound work: nothing else on the loop runs meanwhile
        return await route_endpoint(request)

    llm.post("/chat/completions").mock(side_effect=hang)
    async with harness(tmp_path, settings(timeout_ms=300)) as h:
        h.app.app = Starlette(routes=[Route("/route", loop_hog, methods=["POST"])])
        started = time.perf_counter()
        response = await h.post(command())
        elapsed = time.perf_counter() - started
        assert response.status_code == 200
        assert only_line(h)["reason_code"] == "llm_timeout"
    assert 0.29 <= elapsed < 0.45, f"waited {elapsed:.3f} s; baseline + timeout would be 0.55"


async def test_the_answer_at_the_deadline_does_not_wait_for_the_call_to_unwind(
    tmp_path: Path, llm: Any
) -> None:
    """An LLM call whose cancellation takes long (here 0.3 s holding the loop, as 50 calls
    unwinding in the same millisecond would) must not delay the baseline answer; the call
    still ends, and the breaker and the in-flight gauge still count it."""
    unwound: list[float] = []

    async def hang_then_unwind_slowly(request: httpx.Request) -> httpx.Response:
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            time.sleep(0.3)
            unwound.append(time.perf_counter())
            raise
        return completion(good_candidate())

    llm.post("/chat/completions").mock(side_effect=hang_then_unwind_slowly)
    breaker = CircuitBreaker(failure_threshold=5, cooldown_s=60)
    async with harness(tmp_path, settings(timeout_ms=100), circuit=breaker) as h:
        expected = await h.baseline_bytes(command())
        started = time.perf_counter()
        response = await h.post(command())
        answered = time.perf_counter()
        assert response.status_code == 200 and response.content == expected
        assert 0.09 <= answered - started < 0.25, f"answered after {answered - started:.3f} s"
        assert only_line(h)["reason_code"] == "llm_timeout"
        for _ in range(100):  # the call unwinds on its own, just after the answer
            if unwound and h.in_flight() == 0:
                break
            await asyncio.sleep(0.01)
        assert unwound and unwound[0] > answered, "the call unwound before the answer went out"
        assert h.in_flight() == 0
        assert breaker.consecutive_failures == 1, "the breaker must still see the timeout"


@pytest.mark.parametrize(
    ("candidate", "reason"),
    [
        ({**good_candidate(), "intent": "remove_shopping_item"}, "intent_mismatch"),
        ({**good_candidate(), "note": "x"}, "schema_violation"),
        (good_candidate("l-999"), "list_id_not_allowed"),
        (good_candidate("l-2"), "list_id_not_allowed"),  # the user's, but the text names none
        (good_candidate(confidence=0.1), "low_confidence"),
    ],
)
async def test_refused_candidates_fall_back_to_baseline_bytes(
    tmp_path: Path, llm: Any, candidate: dict[str, Any], reason: str
) -> None:
    llm.post("/chat/completions").mock(return_value=completion(candidate))
    async with harness(tmp_path) as h:
        expected = await h.baseline_bytes(command())
        response = await h.post(command())
        assert response.content == expected
        record = only_line(h)
        assert (record["status"], record["reason_code"]) == ("fallback_deterministic", reason)


@pytest.mark.parametrize(
    ("body", "current", "reason"),
    [
        (command(text="set a timer for 5 minutes"), settings(), "corridor_mismatch"),
        (command(capabilities=[]), settings(), "capability_mismatch"),
        (command(), settings(policy_enabled=False), "policy_disabled"),
        (command(), settings(profile_id="no-such-profile"), "policy_disabled"),
        (b"{not json", settings(), "invalid_command"),
        (command(extra_field=1), settings(), "invalid_command"),
    ],
)
async def test_skips_make_no_llm_call_and_keep_baseline(
    tmp_path: Path, llm: Any, body: Any, current: EffectiveSettings, reason: str
) -> None:
    route = llm.post("/chat/completions").mock(return_value=completion(good_candidate()))
    async with harness(tmp_path, current) as h:
        expected = await h.baseline_bytes(body)
        response = await h.post(body)
        assert response.content == expected
        assert route.call_count == 0
        record = only_line(h)
        assert (record["status"], record["reason_code"]) == ("skipped", reason)
        assert record["sampled"] is False


async def test_malformed_body_gets_the_baselines_own_422(tmp_path: Path, llm: Any) -> None:
    async with harness(tmp_path) as h:
        response = await h.post(b'{"command_id": 5}')
        assert response.status_code == 422 and response.json()["error"] == "invalid_command"


async def test_not_sampled_is_counted_but_not_logged(tmp_path: Path, llm: Any) -> None:
    route = llm.post("/chat/completions").mock(return_value=completion(good_candidate()))
    async with harness(tmp_path, settings(sample_rate=0.01)) as h:
        await h.post(command(unsampled_id(0.01)))
        assert route.call_count == 0 and h.lines() == []
        assert h.decisions("skipped", "not_sampled") == 1


async def test_flags_unavailable_is_logged_and_passes_through(tmp_path: Path, llm: Any) -> None:
    route = llm.post("/chat/completions").mock(return_value=completion(good_candidate()))
    async with harness(tmp_path, settings(flags_available=False)) as h:
        response = await h.post(command())
        assert response.status_code == 200 and route.call_count == 0
        assert only_line(h)["reason_code"] == "flags_unavailable"


async def test_circuit_opens_after_consecutive_failures(tmp_path: Path, llm: Any) -> None:
    route = llm.post("/chat/completions").mock(return_value=httpx.Response(500))
    async with harness(tmp_path, circuit=CircuitBreaker(failure_threshold=3, cooldown_s=60)) as h:
        for i in range(5):
            assert (await h.post(command(f"c-{i}"))).status_code == 200
        reasons = [r["reason_code"] for r in h.lines()]
        assert reasons == ["llm_http_error"] * 3 + ["circuit_open"] * 2
        assert route.call_count == 3


async def test_internal_error_keeps_the_baseline(
    tmp_path: Path, llm: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    llm.post("/chat/completions").mock(return_value=completion(good_candidate()))
    async with harness(tmp_path) as h:
        expected = await h.baseline_bytes(command())

        def boom(*args: Any) -> Any:
            raise RuntimeError("bug")

        monkeypatch.setattr(h.engine.corridor, "judge", boom)
        response = await h.post(command())
        assert response.status_code == 200 and response.content == expected
        assert only_line(h)["reason_code"] == "internal_error"


async def test_baseline_and_llm_run_concurrently(tmp_path: Path, llm: Any) -> None:
    async def slow(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0.15)
        return completion(good_candidate())

    llm.post("/chat/completions").mock(side_effect=slow)
    async with harness(tmp_path, settings(timeout_ms=400)) as h:
        original = h.app.app

        async def slow_baseline(scope: Any, receive: Any, send: Any) -> None:
            await asyncio.sleep(0.15)
            await original(scope, receive, send)

        h.app.app = slow_baseline
        started = time.perf_counter()
        response = await h.post(command())
        elapsed = time.perf_counter() - started
        assert served_by_llm(response.json())
        assert elapsed < 0.27, elapsed  # max(0.15, 0.15) plus overhead, not the sum
