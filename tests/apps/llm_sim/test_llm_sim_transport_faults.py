"""The LLM double's transport faults, and clients that give up on them.

Error, hang, drip, oversized, invalid UTF-8 and latency each shape the HTTP exchange rather than
the candidate; a client that disconnects must end the handler's wait at once and be counted, not
logged as an error. In-process through ``httpx.ASGITransport`` except where the transport would
hide the effect: drip and disconnects are driven on raw ASGI messages (the transport buffers
bodies and never disconnects).
"""

from __future__ import annotations

import json
import math
import time
from typing import Any

import anyio
import httpx
import pytest

from partial_trust.apps.llm_sim import Mode, SimConfig, create_app
from partial_trust.middleware.candidate import ShoppingCandidate
from tests.support.asgi import post_scope
from tests.support.llm_sim import PATH, REQUEST, force_mode, sim_client

# --- transport faults ------------------------------------------------------------------------


@pytest.mark.anyio
async def test_error_answers_500_or_503(sim: httpx.AsyncClient) -> None:
    await force_mode(sim, Mode.ERROR)
    statuses = set()
    for _ in range(20):
        response = await sim.post(PATH, json=REQUEST)
        statuses.add(response.status_code)
        assert response.json()["error"]["type"] == "server_error"
    assert statuses == {500, 503}


@pytest.mark.anyio
async def test_hang_outlasts_the_client_timeout_without_blocking_others(
    sim: httpx.AsyncClient,
) -> None:
    await force_mode(sim, Mode.HANG)
    timed_out = False

    async def hang() -> None:
        nonlocal timed_out
        with anyio.move_on_after(0.3) as scope:
            await sim.post(PATH, json=REQUEST)
        timed_out = scope.cancelled_caught

    async with anyio.create_task_group() as group:
        group.start_soon(hang)
        await anyio.sleep(0.05)
        assert (await sim.get("/sim/stats")).json()["in_flight"] == 1
        await force_mode(sim, Mode.NONE)
        assert (await sim.post(PATH, json=REQUEST)).status_code == 200
        assert (await sim.get("/sim/stats")).json()["in_flight"] == 1  # the hang is still open
    assert timed_out
    assert (await sim.get("/sim/stats")).json()["in_flight"] == 0


@pytest.mark.anyio
async def test_hang_ends_with_504_after_hang_max(sim: httpx.AsyncClient) -> None:
    await force_mode(sim, Mode.HANG, hang_max_s=0.1)
    started = time.monotonic()
    response = await sim.post(PATH, json=REQUEST)
    assert response.status_code == 504
    assert time.monotonic() - started >= 0.1


@pytest.mark.anyio
async def test_oversized_is_at_least_10_mib_of_valid_json(sim: httpx.AsyncClient) -> None:
    await force_mode(sim, Mode.OVERSIZED)
    response = await sim.post(PATH, json=REQUEST)
    assert response.status_code == 200
    assert len(response.content) >= 10 * 1024 * 1024
    ShoppingCandidate.model_validate_json(response.json()["choices"][0]["message"]["content"])


@pytest.mark.anyio
async def test_invalid_utf8_body(sim: httpx.AsyncClient) -> None:
    await force_mode(sim, Mode.INVALID_UTF8)
    response = await sim.post(PATH, json=REQUEST)
    assert response.status_code == 200
    with pytest.raises(UnicodeDecodeError):
        response.content.decode("utf-8")


@pytest.mark.anyio
async def test_latency_is_fixed_plus_jitter(sim: httpx.AsyncClient) -> None:
    await sim.post("/sim/config", json={"latency_ms": 40, "latency_jitter_ms": 20})
    for _ in range(3):
        started = time.monotonic()
        assert (await sim.post(PATH, json=REQUEST)).status_code == 200
        assert 0.040 <= time.monotonic() - started < 0.5
    assert (await sim.get("/sim/stats")).json()["delayed"] == 3


def _chat_scope() -> dict[str, Any]:
    """An HTTP scope for one POST to the chat endpoint, for driving the ASGI app directly."""
    return post_scope(PATH, asgi={"version": "3.0", "spec_version": "2.3"}, state={})


async def _raw_asgi(app: Any, body: bytes) -> list[tuple[float, dict[str, Any]]]:
    """Every message the app sends, timestamped: ASGITransport would buffer the body."""
    sent: list[tuple[float, dict[str, Any]]] = []
    started = time.monotonic()
    delivered = False
    done = anyio.Event()

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append((time.monotonic() - started, message))

    scope = _chat_scope()
    await app(scope, receive, send)
    done.set()
    return sent


@pytest.mark.anyio
async def test_drip_sends_headers_at_once_then_the_body_slowly() -> None:
    config = SimConfig(force=Mode.DRIP, drip_interval_ms=20, drip_chunk_bytes=64)
    sent = await _raw_asgi(create_app(config), json.dumps(REQUEST).encode())
    (start_at, start), *body_messages = sent
    assert start["type"] == "http.response.start" and start["status"] == 200
    chunks = [m["body"] for _, m in body_messages if m.get("body")]
    assert len(chunks) >= 4 and all(len(c) <= 64 for c in chunks)
    finished_at = body_messages[-1][0]
    assert finished_at >= (len(chunks) - 1) * 0.020
    assert (
        start_at < body_messages[0][0] + 0.01 < finished_at / 2
    )  # headers and first bytes at once
    content = json.loads(b"".join(chunks))["choices"][0]["message"]["content"]
    ShoppingCandidate.model_validate_json(content)  # a patient client gets a good answer


# --- clients that give up ----------------------------------------------------------------


async def _abandoned(
    app: Any, gone_after: float, *, messages: list[dict[str, Any]] | None = None
) -> tuple[float, list[dict[str, Any]]]:
    """Run one chat call whose client disconnects ``gone_after`` s after sending its body.

    Returns how long the app took to return after the disconnect, and what it sent.
    """
    pending = list(messages or [{"type": "http.request", "body": json.dumps(REQUEST).encode()}])
    sent: list[dict[str, Any]] = []
    gone_at = math.inf

    async def receive() -> dict[str, Any]:
        nonlocal gone_at
        if pending:
            return pending.pop(0)
        await anyio.sleep(gone_after)
        gone_at = min(gone_at, time.monotonic())
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = _chat_scope()
    with anyio.fail_after(5):  # a handler that ignores the disconnect would sleep far longer
        await app(scope, receive, send)  # no exception escapes: the server logs nothing
    return time.monotonic() - gone_at, sent


def _stats(app: Any) -> dict[str, Any]:
    stats: dict[str, Any] = app.state.sim.stats()
    return stats


@pytest.mark.anyio
@pytest.mark.parametrize(
    "config",
    [
        SimConfig(force=Mode.HANG),  # hang_max_s is 600 s
        SimConfig(force=Mode.NONE, latency_ms=60_000),
        SimConfig(force=Mode.ERROR, latency_ms=60_000),
    ],
    ids=["hang", "latency", "latency-then-error"],
)
async def test_a_client_that_gives_up_ends_the_wait_at_once_and_is_counted(
    config: SimConfig,
) -> None:
    app = create_app(config)
    late, sent = await _abandoned(app, gone_after=0.05)
    assert late < 0.5
    assert sent == []  # nobody to answer
    stats = _stats(app)
    assert stats["client_disconnects"] == 1
    assert stats["in_flight"] == 0
    assert stats["total"] == 1


@pytest.mark.anyio
async def test_a_drip_cut_short_is_counted() -> None:
    app = create_app(SimConfig(force=Mode.DRIP, drip_interval_ms=20, drip_chunk_bytes=8))
    late, sent = await _abandoned(app, gone_after=0.1)
    assert late < 0.5
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 200
    assert all(m.get("more_body") for m in sent[1:])  # the body never completed
    assert _stats(app)["client_disconnects"] == 1
    assert _stats(app)["in_flight"] == 0


@pytest.mark.anyio
async def test_a_body_cut_short_is_counted_not_an_error() -> None:
    app = create_app(SimConfig())
    part = {"type": "http.request", "body": b'{"model": ', "more_body": True}
    _, sent = await _abandoned(app, gone_after=0.0, messages=[part])
    assert sent == []
    stats = _stats(app)
    assert (stats["client_disconnects"], stats["total"], stats["bad_requests"]) == (1, 0, 0)


@pytest.mark.anyio
async def test_a_patient_client_is_not_a_disconnect(sim: httpx.AsyncClient) -> None:
    await force_mode(sim, Mode.HANG, hang_max_s=0.05)
    assert (await sim.post(PATH, json=REQUEST)).status_code == 504
    await force_mode(sim, Mode.NONE, latency_ms=20)
    assert (await sim.post(PATH, json=REQUEST)).status_code == 200
    assert (await sim.get("/sim/stats")).json()["client_disconnects"] == 0


@pytest.mark.anyio
async def test_reset_zeroes_the_disconnects() -> None:
    app = create_app(SimConfig(force=Mode.HANG))
    await _abandoned(app, gone_after=0.0)
    assert _stats(app)["client_disconnects"] == 1
    async with sim_client(app) as client:
        assert (await client.post("/sim/reset")).json()["client_disconnects"] == 0
