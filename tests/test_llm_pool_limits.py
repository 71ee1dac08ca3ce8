"""The LLM client's pool (``llm_keepalive``; the rule for its limits is ``llm_pool``'s) held to
its limits, against real loopback servers (``tests.support.loopback``).

Past ``max_connections`` a call fails at once instead of queueing (a queued call would only
spend its deadline waiting) and the slot frees up when a call ends; idle connections beyond
``max_idle`` are closed rather than kept open for nothing; settings that cannot work are
refused when the pool is made, not discovered on the request path.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from partial_trust.middleware.llm_client import CandidateError, LLMClient
from partial_trust.middleware.llm_h11 import H11Transport
from partial_trust.middleware.llm_httptools import HttptoolsTransport
from partial_trust.middleware.llm_keepalive import KeepAliveTransport
from partial_trust.middleware.llm_pool import ConnectionLimitError
from partial_trust.outcome import Reason
from tests.support.loopback import (
    BODY,
    CANDIDATE,
    REQUEST,
    Conn,
    Loopback,
    answer_when_in_flight,
    eventually,
    failure,
    post_raw,
    response,
)

# --- the connection limit ------------------------------------------------------------------------


@pytest.mark.anyio
async def test_connection_limit_fails_fast_and_frees_up() -> None:
    hanging = True

    async def respond(conn: Conn, body: bytes) -> bool:
        if not hanging:
            conn.writer.write(response())
        return True

    async with Loopback(respond) as server, LLMClient(server.url, max_connections=2) as client:
        pool = client.origin_pool()
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


@pytest.mark.anyio
async def test_the_limit_counts_calls_in_flight_until_their_body_is_read() -> None:
    """A call holds its slot from the request until it leaves ``post``'s context (its body
    read or not); a refused call takes none."""
    async with Loopback() as server:
        url = server.url + "/chat/completions"
        pool = HttptoolsTransport(url, max_connections=1)
        deadline = asyncio.get_running_loop().time() + 2.0
        async with pool.post(url, b"{}", {}, deadline) as answer:
            assert pool.in_use == 1
            with pytest.raises(ConnectionLimitError):
                async with pool.post(url, b"{}", {}, deadline):
                    pass
            assert pool.in_use == 1
            assert b"".join([chunk async for chunk in answer.chunks]) == BODY
        assert (pool.idle_count, pool.in_use) == (1, 0)
        assert await post_raw(pool, url) == BODY
        await pool.aclose()
    assert len(server.conns) == 1


# --- idle connections ----------------------------------------------------------------------------


@pytest.mark.anyio
async def test_connections_beyond_max_idle_are_closed() -> None:
    async with Loopback(answer_when_in_flight(3)) as server:
        url = server.url + "/chat/completions"
        pool = HttptoolsTransport(url, max_idle=1)
        assert await asyncio.gather(*(post_raw(pool, url) for _ in range(3))) == [BODY] * 3
        assert (pool.idle_count, pool.in_use) == (1, 0)
        assert len(server.conns) == 3

        def closed() -> int:
            return sum(conn.client_closed.is_set() for conn in server.conns)

        await eventually(lambda: closed() == 2, "the two connections beyond max_idle close")
        await pool.aclose()
        await eventually(lambda: closed() == 3, "aclose closes the idle one")


# --- validation ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", [HttptoolsTransport, H11Transport])
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
def test_keep_alive_pool_rejects_bad_settings(
    kind: type[KeepAliveTransport[Any]], url: str, kwargs: dict[str, Any]
) -> None:
    with pytest.raises(ValueError):
        kind(url, **kwargs)
