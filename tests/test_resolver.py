"""``resolver.AddressCache``: one real lookup per host per TTL, shared, and stale on failure.

Lookups are real (``localhost`` through the system resolver); the spy below only counts them,
or, where a test says so, makes a refresh fail the way an unreachable DNS server does.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from partial_trust.middleware.llm_client import CandidateError, LLMClient
from partial_trust.middleware.llm_transport import AsyncioBackend
from partial_trust.middleware.resolver import AddressCache, connect_host
from partial_trust.outcome import Reason
from tests.support.loopback import eventually
from tests.support.procs import free_port

pytestmark = pytest.mark.anyio

REQUEST: dict[str, Any] = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


class LookupSpy:
    """Counts the event loop's ``getaddrinfo`` calls; ``failing`` makes them raise instead,
    ``delay_s`` makes them slow first."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.calls: list[str] = []
        self.failing = False
        self.delay_s = 0.0
        self._real = loop.getaddrinfo

    async def __call__(self, host: Any, port: Any, **kwargs: Any) -> Any:
        self.calls.append(str(host))
        await asyncio.sleep(self.delay_s)
        if self.failing:
            raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
        return await self._real(host, port, **kwargs)


@pytest.fixture
async def lookups() -> AsyncIterator[LookupSpy]:
    loop = asyncio.get_running_loop()
    spy = LookupSpy(loop)
    loop.getaddrinfo = spy  # type: ignore[method-assign]  # a spy on the loop's resolver
    try:
        yield spy
    finally:
        del loop.getaddrinfo  # back to the class's own method


async def test_an_ip_literal_is_its_own_answer(lookups: LookupSpy) -> None:
    cache = AddressCache()
    assert await cache.resolve("127.0.0.1", 80) == [(socket.AF_INET, ("127.0.0.1", 80))]
    assert await cache.resolve("::1", 80) == [(socket.AF_INET6, ("::1", 80))]
    assert lookups.calls == []


async def test_a_name_is_looked_up_once_per_ttl(lookups: LookupSpy) -> None:
    cache = AddressCache(ttl_s=0.2)
    first = await cache.resolve("localhost", 8080)
    assert first and all(family in (socket.AF_INET, socket.AF_INET6) for family, _ in first)
    for _ in range(50):
        assert await cache.resolve("localhost", 8080) == first
    assert lookups.calls == ["localhost"]
    await asyncio.sleep(0.25)
    assert await cache.resolve("localhost", 8080) == first  # at once, refreshed behind
    await eventually(lambda: len(lookups.calls) == 2, "the background refresh")
    assert await cache.resolve("localhost", 8080) == first
    assert lookups.calls == ["localhost", "localhost"]


async def test_concurrent_callers_share_one_lookup(lookups: LookupSpy) -> None:
    cache = AddressCache()
    answers = await asyncio.gather(*(cache.resolve("localhost", 443) for _ in range(20)))
    assert lookups.calls == ["localhost"]
    assert all(answer == answers[0] for answer in answers)


async def test_a_caller_cut_by_its_deadline_does_not_cancel_the_shared_lookup(
    lookups: LookupSpy,
) -> None:
    cache = AddressCache()
    impatient = asyncio.create_task(cache.resolve("localhost", 443))
    patient = asyncio.create_task(cache.resolve("localhost", 443))
    await asyncio.sleep(0)  # both are waiting on the one lookup
    impatient.cancel()
    assert await patient
    assert impatient.cancelled() and lookups.calls == ["localhost"]


async def test_a_failed_refresh_serves_the_last_answer(lookups: LookupSpy) -> None:
    cache = AddressCache(ttl_s=0.05)
    known = await cache.resolve("localhost", 443)
    await asyncio.sleep(0.08)
    lookups.failing = True
    assert await cache.resolve("localhost", 443) == known
    await eventually(lambda: len(lookups.calls) == 2, "the background refresh")
    for _ in range(3):  # still expired: each call may start a refresh, never two at once
        assert await cache.resolve("localhost", 443) == known
        await asyncio.sleep(0.01)
    assert 3 <= len(lookups.calls) <= 5


async def test_a_slow_dns_server_never_delays_a_call_once_the_host_is_known(
    lookups: LookupSpy,
) -> None:
    cache = AddressCache(ttl_s=0.05)
    known = await cache.resolve("localhost", 443)
    await asyncio.sleep(0.08)
    lookups.delay_s = 0.5  # the refresh hangs a while, as with an unreachable DNS server
    started = time.perf_counter()
    for _ in range(20):
        assert await cache.resolve("localhost", 443) == known
        await asyncio.sleep(0.001)  # lets the background refresh start and stall
    assert time.perf_counter() - started < 0.25, "a call waited for the slow refresh"
    assert len(lookups.calls) == 2, "one refresh in flight, shared, not one per call"
    await eventually(lambda: not cache._lookups, "the refresh ends", timeout_s=3.0)


async def test_with_no_answer_at_all_the_call_is_unavailable(lookups: LookupSpy) -> None:
    lookups.failing = True
    with pytest.raises(socket.gaierror):
        await AddressCache().resolve("localhost", 443)
    async with LLMClient(f"http://localhost:{free_port()}/v1") as client:
        with pytest.raises(CandidateError) as info:
            await client.complete(REQUEST, timeout_s=1.0)
    assert info.value.reason is Reason.LLM_UNAVAILABLE


async def test_new_connections_to_a_name_reuse_its_addresses(lookups: LookupSpy) -> None:
    # Each connection is new (the server closes after answering), as under a hanging LLM.
    async def answer_and_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        body = b'{"choices":[{"message":{"content":"{\\"intent\\":\\"x\\"}"}}]}'
        head = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: %d\r\n\r\n" % len(body)
        writer.write(head + body)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer_and_close, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    backend = AsyncioBackend()
    try:
        async with LLMClient(f"http://localhost:{port}/v1", network_backend=backend) as client:
            for _ in range(5):
                assert await client.complete(REQUEST, timeout_s=2.0) == {"intent": "x"}
    finally:
        server.close()
        await server.wait_closed()
    assert lookups.calls == ["localhost"]


async def test_an_address_that_refuses_is_skipped_for_the_next(lookups: LookupSpy) -> None:
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    cache = AddressCache()
    # 127.0.0.2 is loopback too, but nothing listens there: refused, as a dead replica is.
    cache._answers[("llm.internal", port)] = (
        float("inf"),
        [(socket.AF_INET, ("127.0.0.2", port)), (socket.AF_INET, ("127.0.0.1", port))],
    )
    try:
        stream = await AsyncioBackend(cache).connect_tcp("llm.internal", port)
        assert stream.get_extra_info("server_addr") == ("127.0.0.1", port)
        await stream.aclose()
    finally:
        server.close()
        await server.wait_closed()
    assert lookups.calls == []


def test_an_ipv6_scope_id_stays_with_its_address() -> None:
    assert connect_host((socket.AF_INET6, ("fe80::1", 80, 0, 3))) == "fe80::1%3"
    assert connect_host((socket.AF_INET6, ("::1", 80, 0, 0))) == "::1"
    assert connect_host((socket.AF_INET, ("10.0.0.1", 80))) == "10.0.0.1"


@pytest.mark.parametrize("bad", [0, -1, float("nan"), float("inf"), True, "10"])
def test_an_invalid_ttl_is_refused(bad: object) -> None:
    with pytest.raises(ValueError, match="ttl_s"):
        AddressCache(ttl_s=bad)  # type: ignore[arg-type]  # a wrong type on purpose
