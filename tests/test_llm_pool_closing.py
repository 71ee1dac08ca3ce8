"""How the LLM client's pooled connections (``llm_keepalive``) end, against real loopback servers
(``tests.support.loopback``): the server closing one, keep-alive expiry, the client's
``aclose``, and exchanges that end badly (an HTTP error, a body cut short, an oversized
answer, the caller cancelling).

A connection that has ended must never be handed out again (the call on it would fail for
nothing), one the client is done with must be closed, not left open on the server, and the
next call must work: a bad exchange never poisons the pool. The one retry: a request that
died on a reused keep-alive connection the server had just closed goes again, once, on a
fresh one; a request the server may have seen is never re-sent.
"""

from __future__ import annotations

import asyncio

import pytest

from partial_trust.middleware.llm_client import LLMClient
from partial_trust.middleware.llm_httptools import HttptoolsTransport
from partial_trust.outcome import Reason
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
    never_answer,
    post_raw,
    response,
    sees_eof,
)

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
        assert client.origin_pool().idle_count == 0  # "Connection: close" is not kept
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
        pool = client.origin_pool()
        # A FIN that came with the answer keeps the connection out of the pool at once; one
        # that comes later is noticed while it idles.
        for stale in pool.idle_connections():
            await eventually(stale.has_expired, "the client notices the server's FIN")
        assert await client.complete(REQUEST, timeout_s=2.0) == CANDIDATE
        assert (pool.idle_count, pool.in_use) == (1, 0)
    assert len(server.conns) == 2
    assert [index for index, _ in server.requests] == [0, 1]


# --- keep-alive expiry ---------------------------------------------------------------------------


@pytest.mark.anyio
async def test_expired_idle_connection_is_replaced() -> None:
    async with Loopback() as server:
        url = server.url + "/chat/completions"
        pool = HttptoolsTransport(url, keepalive_expiry=0.05)
        for _ in range(2):
            assert await post_raw(pool, url) == BODY
            await asyncio.sleep(0.1)  # past keepalive_expiry
        await pool.aclose()
        assert len(server.conns) == 2
        assert await sees_eof(server.conns[0]), "the expired connection was not closed"
        assert await sees_eof(server.conns[1])


# --- closing -------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_aclose_closes_idle_connections_and_refuses_new_calls() -> None:
    async with Loopback(answer_when_in_flight(2)) as server:
        client = LLMClient(server.url)
        calls = [client.complete(REQUEST, timeout_s=2.0) for _ in range(2)]
        assert await asyncio.gather(*calls) == [CANDIDATE] * 2
        assert client.origin_pool().idle_count == 2
        assert not any(conn.client_closed.is_set() for conn in server.conns)
        await client.aclose()
        for conn in server.conns:
            assert await sees_eof(conn), f"connection {conn.index} still open after aclose"
        with pytest.raises(RuntimeError, match="closed"):
            await client.complete(REQUEST, timeout_s=1.0)
    assert len(server.conns) == 2


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
        pool = client.origin_pool()
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
        pool = client.origin_pool()
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
        pool = client.origin_pool()
        assert (pool.idle_count, pool.in_use) == (0, 0)
        assert await client.complete(REQUEST, timeout_s=2.0) == CANDIDATE
    assert len(server.conns) == 2


@pytest.mark.anyio
async def test_oversized_response_connection_is_not_reused() -> None:
    async with Loopback() as server, LLMClient(server.url, max_response_bytes=10) as client:
        error = await failure(client)
        assert (error.reason, error.detail) == (Reason.LLM_INVALID_RESPONSE, "oversized")
        pool = client.origin_pool()
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
        pool = client.origin_pool()
        assert (pool.idle_count, pool.in_use) == (0, 0)
        assert await sees_eof(server.conns[0])


# --- a keep-alive connection closed under a request ----------------------------------------------


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
