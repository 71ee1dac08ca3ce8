"""The LLM client's transport (``llm_transport``) bounding a call, against real loopback
servers: a deadline closes the connection it cut, a deadline already past sends nothing, a
refused connection is ``llm_unavailable``, and a base URL that is not http(s) is refused.

A call that outlives its deadline would hold a connection (and the request it serves) for
nothing. The servers are ``tests.support.loopback``'s: what is asserted really crossed a socket.
Bodies and back-pressure, TLS, and freeing closed connections have their own files:
``test_llm_transport_flow.py``, ``test_llm_transport_tls.py``, ``test_llm_transport_cycles.py``.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from partial_trust.middleware.llm_client import LLMClient
from partial_trust.outcome import Reason
from tests.support.loopback import CANDIDATE, REQUEST, Loopback, failure, never_answer, sees_eof
from tests.support.procs import free_port

# --- deadlines -----------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_timed_out_call_closes_its_connection() -> None:
    async with Loopback(never_answer) as server, LLMClient(server.url) as client:
        started = time.perf_counter()
        error = await failure(client, timeout_s=0.2)
        elapsed = time.perf_counter() - started
        assert (error.reason, error.detail) == (Reason.LLM_TIMEOUT, "deadline")
        assert 0.19 <= elapsed < 0.2 + 0.5
        pool = client.origin_pool()
        assert (pool.idle_count, pool.in_use) == (0, 0)
        assert len(server.requests) == 1
        assert await sees_eof(server.conns[0]), "the timed-out connection was left open"


@pytest.mark.anyio
async def test_deadline_in_the_past_fails_before_any_request() -> None:
    async with Loopback() as server, LLMClient(server.url) as client:
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        error = await failure(client, timeout_s=5.0, deadline=loop.time() - 1.0)
        assert time.perf_counter() - started < 0.5
        assert error.reason is Reason.LLM_TIMEOUT
        await asyncio.sleep(0.05)  # a request on its way would have arrived by now
        assert server.requests == []
        pool = client.origin_pool()
        assert (pool.idle_count, pool.in_use) == (0, 0)
        # Nothing is left behind: a call with time to spare works.
        assert await client.complete(REQUEST, timeout_s=2.0) == CANDIDATE


@pytest.mark.anyio
async def test_connection_refused_is_unavailable() -> None:
    async with LLMClient(f"http://127.0.0.1:{free_port()}/v1") as client:
        error = await failure(client)
        assert (error.reason, error.detail) == (Reason.LLM_UNAVAILABLE, "ConnectError")
        pool = client.origin_pool()
        assert (pool.idle_count, pool.in_use) == (0, 0)


# --- validation ----------------------------------------------------------------------------------


@pytest.mark.parametrize("base_url", ["ftp://127.0.0.1/v1", "127.0.0.1:8000/v1", "http:///v1"])
def test_llm_client_rejects_a_non_http_base_url(base_url: str) -> None:
    with pytest.raises(ValueError, match="http"):
        LLMClient(base_url)
