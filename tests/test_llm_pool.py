"""The LLM client's keep-alive pool (``llm_pool``) against real loopback servers: reuse,
limits, expiry, closing, and an exchange that ends badly never poisoning the pool.

The servers are ``tests.support.loopback``'s: what is asserted really crossed a socket.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from middleware.llm_client import CandidateError, LLMClient
from middleware.llm_pool import ConnectionLimitError, OriginPool, skip_lock_round_trips
from middleware.llm_transport import AsyncioBackend
from middleware.outcome import Reason
from tests.support.instant_llm import InstantBackend
from tests.support.loopback import (
    BODY,
    CANDIDATE,
    REQUEST,
    Conn,
    Loopback,
    answer_ok,
    answer_when_in_flight,
    eventually,
    failure,
    idle_connections,
    never_answer,
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
        pool = client._origin_pool()
        assert (pool.idle_count, pool.in_use) == (1, 0)
    assert len(server.conns) == 1, "20 sequential calls must reuse one keep-alive connection"
    assert server.conns[0].requests == 20


@pytest.mark.anyio
async def test_concurrent_calls_open_at_most_one_connection_each_and_all_go_idle() -> None:
    async with Loopback() as server, LLMClient(server.url) as client:
        results = await asyncio.gather(*(client.complete(REQUEST, timeout_s=2.0) for _ in range(8)))
        assert results == [CANDIDATE] * 8
        pool = client._origin_pool()
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
        pool = client._origin_pool()
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


# --- the server ends a keep-alive connection -----------------------------------------------------


@pytest.mark.anyio
async def test_connection_close_header_is_not_reused() -> None:
    async def close_first(conn: Conn, body: bytes) -> bool:
        if len(server.requests) == 1:
            conn.writer.write(response(headers=b"Connection: close\r\n"))
            return False
        conn.writer.write(response())
        return True

    async with Loopback(close_first) as server, LLMClient(server.url) as client:
        assert await client.complete(REQUEST, timeout_s=2.0) == CANDIDATE
        assert client._origin_pool().idle_count == 0  # "Connection: close" is not kept
        assert await client.complete(REQUEST, timeout_s=2.0) == CANDIDATE
    assert len(server.conns) == 2
    assert [index for index, _ in server.requests] == [0, 1]


@pytest.mark.anyio
async def test_idle_connection_closed_by_the_server_is_dropped() -> None:
    """The server closes the socket after a normal keep-alive response; once the client has
    seen the FIN, the next call opens a new connection instead of failing on the stale one."""

    async def close_after_first(conn: Conn, body: bytes) -> bool:
        conn.writer.write(response())
        return len(server.requests) != 1

    async with Loopback(close_after_first) as server, LLMClient(server.url) as client:
        assert await client.complete(REQUEST, timeout_s=2.0) == CANDIDATE
        pool = client._origin_pool()
        [stale] = idle_connections(pool)
        await eventually(stale.has_expired, "the client notices the server's FIN")
        assert await client.complete(REQUEST, timeout_s=2.0) == CANDIDATE
        assert (pool.idle_count, pool.in_use) == (1, 0)
    assert len(server.conns) == 2
    assert [index for index, _ in server.requests] == [0, 1]


# --- the connection limit ------------------------------------------------------------------------


@pytest.mark.anyio
async def test_connection_limit_fails_fast_and_frees_up() -> None:
    hanging = True

    async def respond(conn: Conn, body: bytes) -> bool:
        if not hanging:
            conn.writer.write(response())
        return True

    async with Loopback(respond) as server, LLMClient(server.url, max_connections=2) as client:
        pool = client._origin_pool()
        hung = [asyncio.create_task(client.complete(REQUEST, timeout_s=0.3)) for _ in range(2)]
        await eventually(lambda: pool.in_use == 2, "two calls in flight")
        error = await failure(client, timeout_s=0.3)
        assert (error.reason, error.detail) == (Reason.LLM_UNAVAILABLE, "connection limit")
        assert not any(task.done() for task in hung), "the third call waited for a slot"
        for task in hung:
            with pytest.raises(CandidateError) as info:
                await task
            assert info.value.reason is Reason.LLM_TIMEOUT
        assert pool.in_use == 0
        hanging = False
        assert await client.complete(REQUEST, timeout_s=2.0) == CANDIDATE
    assert len(server.conns) == 3  # the third call never connected; the last one did


def test_origin_pool_limit_counts_calls_in_flight() -> None:
    pool = OriginPool("http://127.0.0.1:9/", max_connections=1)
    conn = pool.acquire()
    with pytest.raises(ConnectionLimitError):
        pool.acquire()
    assert pool.in_use == 1
    pool.release(conn, reusable=False)
    assert pool.in_use == 0
    pool.release(pool.acquire(), reusable=False)
    assert (pool.idle_count, pool.in_use) == (0, 0)


@pytest.mark.anyio
async def test_origin_pool_with_httpcore_directly() -> None:
    """The pool on its own, as a caller other than LLMClient would use it."""
    async with Loopback() as server:
        pool = OriginPool(server.url + "/chat/completions", network_backend=AsyncioBackend())
        for _ in range(3):
            assert await post_raw(pool) == BODY
        assert (pool.idle_count, pool.in_use) == (1, 0)
        await pool.aclose()
        assert pool.idle_count == 0
        assert await sees_eof(server.conns[0])
    assert len(server.conns) == 1
    assert [body for _, body in server.requests] == [b"{}"] * 3


# --- validation ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "kwargs"),
    [
        ("ftp://127.0.0.1/v1", {}),
        ("ws://127.0.0.1/v1", {}),
        ("http://127.0.0.1/v1", {"max_connections": 0}),
        ("http://127.0.0.1/v1", {"max_idle": -1}),
        ("http://127.0.0.1/v1", {"keepalive_expiry": 0}),
    ],
)
def test_origin_pool_rejects_bad_settings(url: str, kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        OriginPool(url, **kwargs)


# --- closing -------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_aclose_closes_idle_connections_and_refuses_new_calls() -> None:
    async with Loopback(answer_when_in_flight(2)) as server:
        client = LLMClient(server.url)
        calls = [client.complete(REQUEST, timeout_s=2.0) for _ in range(2)]
        assert await asyncio.gather(*calls) == [CANDIDATE] * 2
        assert client._origin_pool().idle_count == 2
        assert not any(conn.client_closed.is_set() for conn in server.conns)
        await client.aclose()
        for conn in server.conns:
            assert await sees_eof(conn), f"connection {conn.index} still open after aclose"
        with pytest.raises(RuntimeError, match="closed"):
            await client.complete(REQUEST, timeout_s=1.0)
    assert len(server.conns) == 2


# --- more ways an exchange can end: the pool must stay usable ------------------------------------


@pytest.mark.anyio
async def test_http_error_status_does_not_poison_the_pool() -> None:
    async def error_first(conn: Conn, body: bytes) -> bool:
        if len(server.requests) == 1:
            conn.writer.write(b"HTTP/1.1 503 Busy\r\nContent-Length: 4\r\n\r\nbusy")
        else:
            conn.writer.write(response())
        return True

    async with Loopback(error_first) as server, LLMClient(server.url) as client:
        error = await failure(client)
        assert (error.reason, error.detail) == (Reason.LLM_HTTP_ERROR, "status 503")
        assert await client.complete(REQUEST, timeout_s=2.0) == CANDIDATE
        assert await client.complete(REQUEST, timeout_s=2.0) == CANDIDATE
        pool = client._origin_pool()
        assert (pool.idle_count, pool.in_use) == (1, 0)
    # The 503's body was never read, so that connection cannot be reused; the next one is.
    assert [index for index, _ in server.requests] == [0, 1, 1]


@pytest.mark.anyio
async def test_server_dropping_mid_body_is_unavailable() -> None:
    async def truncate_first(conn: Conn, body: bytes) -> bool:
        if len(server.requests) == 1:
            conn.writer.write(response()[:-10])
            return False
        conn.writer.write(response())
        return True

    async with Loopback(truncate_first) as server, LLMClient(server.url) as client:
        error = await failure(client)
        assert error.reason is Reason.LLM_UNAVAILABLE
        pool = client._origin_pool()
        assert (pool.idle_count, pool.in_use) == (0, 0)
        assert await client.complete(REQUEST, timeout_s=2.0) == CANDIDATE
    assert len(server.conns) == 2


@pytest.mark.anyio
async def test_oversized_response_connection_is_not_reused() -> None:
    async with Loopback() as server, LLMClient(server.url, max_response_bytes=10) as client:
        error = await failure(client)
        assert (error.reason, error.detail) == (Reason.LLM_INVALID_RESPONSE, "oversized")
        pool = client._origin_pool()
        assert (pool.idle_count, pool.in_use) == (0, 0)
        assert await sees_eof(server.conns[0])


@pytest.mark.anyio
async def test_caller_cancellation_closes_the_connection() -> None:
    async with Loopback(never_answer) as server, LLMClient(server.url) as client:
        task = asyncio.create_task(client.complete(REQUEST, timeout_s=5.0))
        await eventually(lambda: len(server.requests) == 1, "the request arrives")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        pool = client._origin_pool()
        assert (pool.idle_count, pool.in_use) == (0, 0)
        assert await sees_eof(server.conns[0])


@pytest.mark.anyio
async def test_expired_idle_connection_is_replaced() -> None:
    async with Loopback() as server:
        pool = OriginPool(server.url, keepalive_expiry=0.05)
        for _ in range(2):
            assert await post_raw(pool) == BODY
            await asyncio.sleep(0.1)  # past keepalive_expiry
        await pool.aclose()
        assert len(server.conns) == 2
        assert await sees_eof(server.conns[0]), "the expired connection was not closed"
        assert await sees_eof(server.conns[1])


@pytest.mark.anyio
async def test_connections_beyond_max_idle_are_closed() -> None:
    async with Loopback(answer_when_in_flight(3)) as server:
        pool = OriginPool(server.url, max_idle=1)
        assert await asyncio.gather(*(post_raw(pool) for _ in range(3))) == [BODY] * 3
        assert (pool.idle_count, pool.in_use) == (1, 0)
        assert len(server.conns) == 3

        def closed() -> int:
            return sum(conn.client_closed.is_set() for conn in server.conns)

        await eventually(lambda: closed() == 2, "the two connections beyond max_idle close")
        await pool.aclose()
        await eventually(lambda: closed() == 3, "aclose closes the idle one")


@pytest.mark.anyio
async def test_connection_released_after_aclose_is_closed() -> None:
    """``aclose`` while a call is in flight: when that call ends, its connection must be
    closed, not parked in the discarded pool where nothing will ever close it."""
    release = asyncio.Event()

    async def held(conn: Conn, body: bytes) -> bool:
        await release.wait()
        conn.writer.write(response())
        return True

    async with Loopback(held) as server:
        client = LLMClient(server.url)
        pool = client._origin_pool()
        try:
            call = asyncio.create_task(client.complete(REQUEST, timeout_s=2.0))
            await eventually(lambda: len(server.requests) == 1, "the request arrives")
            await client.aclose()
            release.set()
            await call  # the answer was on its way; the call itself may succeed
            assert pool.in_use == 0
            assert await sees_eof(server.conns[0]), (
                "BUG: a connection released after LLMClient.aclose() went back into the closed "
                f"pool (idle_count={pool.idle_count}) and was never closed"
            )
            assert pool.idle_count == 0
        finally:
            await pool.aclose()  # do not leak the socket into later tests


@pytest.mark.anyio
async def test_keep_alive_closed_under_a_reused_connection_is_retried_once_fresh() -> None:
    """The server drops an idle keep-alive connection as the next request arrives on it (the
    race with uvicorn's 5 s keep-alive timeout): the request never reached the model, so
    the call goes again on a new connection instead of failing."""

    async def drop_second_on_first_connection(conn: Conn, body: bytes) -> bool:
        if conn.index == 0 and conn.requests == 2:
            return False  # close without a byte of answer
        return await answer_ok(conn, body)

    async with (
        Loopback(drop_second_on_first_connection) as server,
        LLMClient(server.url) as client,
    ):
        assert await client.complete(REQUEST, timeout_s=2.0) == CANDIDATE
        assert await client.complete(REQUEST, timeout_s=2.0) == CANDIDATE
    assert [c.requests for c in server.conns] == [2, 1]


@pytest.mark.anyio
async def test_a_fresh_connection_closed_without_an_answer_is_not_retried() -> None:
    async def drop_everything(conn: Conn, body: bytes) -> bool:
        return False

    async with Loopback(drop_everything) as server, LLMClient(server.url) as client:
        error = await failure(client)
    assert error.reason is Reason.LLM_UNAVAILABLE
    assert len(server.requests) == 1, "a request the server may have seen is never re-sent"


# --- event-loop round trips ----------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_call_on_a_kept_alive_connection_never_yields_to_the_event_loop() -> None:
    # httpcore's anyio locks cost a loop round trip per acquisition, three per call, unless
    # skip_lock_round_trips gave them fast_acquire: a call with its answer at hand must run
    # straight through, as the sampled path's CPU budget assumes.
    backend = InstantBackend(BODY)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0)
            ticks += 1

    async with LLMClient("http://llm.test/v1", network_backend=backend) as client:
        assert await client.complete(REQUEST, timeout_s=1.0) == CANDIDATE  # connects
        task = asyncio.create_task(ticker())
        await asyncio.sleep(0)  # the ticker is running
        before = ticks
        for _ in range(20):
            assert await client.complete(REQUEST, timeout_s=1.0) == CANDIDATE
        during = ticks - before
        task.cancel()
    assert backend.connects == 1, "the calls must share one kept-alive connection"
    assert during == 0, f"{during} event-loop round trips in 20 calls"


def test_skip_lock_round_trips_leaves_an_unknown_layout_alone() -> None:
    class Elsewhere:  # a future httpcore without these attributes, or a replaced lock
        _request_lock = None
        _connection = None

    conn: Any = Elsewhere()
    skip_lock_round_trips(conn)
    assert conn._request_lock is None
