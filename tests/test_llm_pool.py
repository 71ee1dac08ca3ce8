"""The LLM client's keep-alive pool (``llm_keepalive``) reusing its connections, against real
loopback servers: one connection per call in flight, the most recently released handed out
next, and a call on a kept-alive connection that never waits on the event loop.

Reuse is what the pool is for: a new connection costs the request path a TCP (and TLS)
handshake. The servers are ``tests.support.loopback``'s: what is asserted really crossed a socket.
Its limits, and how connections end (cleanly or badly), have their own files:
``test_llm_pool_limits.py`` and ``test_llm_pool_closing.py``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from partial_trust.middleware.llm_client import LLMClient
from partial_trust.middleware.llm_h11 import H11Transport
from partial_trust.middleware.llm_httptools import HttptoolsTransport
from partial_trust.middleware.llm_keepalive import KeepAliveTransport
from tests.support.instant_llm import InstantBackend
from tests.support.loopback import (
    BODY,
    CANDIDATE,
    REQUEST,
    Conn,
    Loopback,
    eventually,
    post_raw,
    response,
    sees_eof,
)

# --- keep-alive reuse, LIFO ----------------------------------------------------------------------


@pytest.mark.anyio
async def test_sequential_calls_share_one_connection() -> None:
    async with Loopback() as server, LLMClient(server.url) as client:
        for _ in range(20):
            assert await client.complete(REQUEST, timeout_s=2.0) == CANDIDATE
        pool = client.origin_pool()
        assert (pool.idle_count, pool.in_use) == (1, 0)
    assert len(server.conns) == 1, "20 sequential calls must reuse one keep-alive connection"
    assert server.conns[0].requests == 20


@pytest.mark.anyio
async def test_concurrent_calls_open_at_most_one_connection_each_and_all_go_idle() -> None:
    async with Loopback() as server, LLMClient(server.url) as client:
        results = await asyncio.gather(*(client.complete(REQUEST, timeout_s=2.0) for _ in range(8)))
        assert results == [CANDIDATE] * 8
        pool = client.origin_pool()
        opened = len(server.conns)
        assert 1 <= opened <= 8
        assert pool.idle_count == opened
        assert pool.in_use == 0
        # A second burst finds them all idle and reuses them (each is still open server side).
        await asyncio.gather(*(client.complete(REQUEST, timeout_s=2.0) for _ in range(opened)))
        assert len(server.conns) == opened
        assert not any(conn.client_closed.is_set() for conn in server.conns)


@pytest.mark.anyio
async def test_next_call_takes_the_most_recently_released_connection() -> None:
    """Three calls in flight at once (three connections), answered 2, 1, 0 in turn, each only
    after the client released the previous one: LIFO hands out connection 0 next, FIFO 2."""
    all_in = asyncio.Event()
    turn = {i: asyncio.Event() for i in range(3)}

    async def gated(conn: Conn, body: bytes) -> bool:
        if len(server.requests) == 3:
            all_in.set()
        if len(server.requests) <= 3:
            await all_in.wait()
            await turn[conn.index].wait()
        conn.writer.write(response())
        return True

    async with Loopback(gated) as server, LLMClient(server.url) as client:
        pool = client.origin_pool()
        calls = [asyncio.create_task(client.complete(REQUEST, timeout_s=2.0)) for _ in range(3)]
        await asyncio.wait_for(all_in.wait(), 2.0)
        assert len(server.conns) == 3

        def idle_is(n: int) -> Callable[[], bool]:
            return lambda: pool.idle_count == n

        for released, index in enumerate((2, 1, 0), start=1):
            turn[index].set()
            await eventually(idle_is(released), f"{released} released")
        assert await asyncio.gather(*calls) == [CANDIDATE] * 3
        for _ in range(2):
            assert await client.complete(REQUEST, timeout_s=2.0) == CANDIDATE
    assert [index for index, _ in server.requests[3:]] == [0, 0], "not LIFO"
    assert len(server.conns) == 3


@pytest.mark.anyio
@pytest.mark.parametrize("kind", [HttptoolsTransport, H11Transport])
async def test_keep_alive_transport_used_directly(kind: type[KeepAliveTransport[Any]]) -> None:
    """The pool on its own, as a caller other than LLMClient would use it, with either parser."""
    async with Loopback() as server:
        url = server.url + "/chat/completions"
        pool = kind(url)
        for _ in range(3):
            assert await post_raw(pool, url) == BODY
        assert (pool.idle_count, pool.in_use) == (1, 0)
        await pool.aclose()
        assert pool.idle_count == 0
        assert await sees_eof(server.conns[0])
    assert len(server.conns) == 1
    assert [body for _, body in server.requests] == [b"{}"] * 3


# --- event-loop round trips ----------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("kind", [HttptoolsTransport, H11Transport])
async def test_a_call_on_a_kept_alive_connection_never_yields_to_the_event_loop(
    kind: type[KeepAliveTransport[Any]],
) -> None:
    # A call with its answer at hand costs the event loop no round trip at all: no lock, no
    # sleep(0), nothing awaited that is not done. (httpcore's connection, removed on
    # 2026-12-07, took three per call for its anyio locks.)
    backend = InstantBackend(BODY)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0)
            ticks += 1

    url = "http://llm.test/v1"
    transport = kind(url + "/chat/completions", network_backend=backend)
    async with LLMClient(url, transport=transport) as client:
        assert await client.complete(REQUEST, timeout_s=1.0) == CANDIDATE  # connects
        task = asyncio.create_task(ticker())
        await asyncio.sleep(0)  # the ticker is running
        before = ticks
        for _ in range(20):
            assert await client.complete(REQUEST, timeout_s=1.0) == CANDIDATE
        during = ticks - before
        task.cancel()
    await transport.aclose()
    assert backend.connects == 1, "the calls must share one kept-alive connection"
    assert during == 0, f"{during} event-loop round trips in 20 calls"
