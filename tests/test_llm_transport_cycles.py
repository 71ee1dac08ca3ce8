"""Connections the LLM client's transport (``llm_transport``) closes are freed at once, by
reference counting, with the cyclic collector switched off: after a plain close, a timed-out
call over TCP or TLS, and a TLS handshake the deadline cut (servers: ``tests.support.loopback``).

On uvloop, the loop ``uvicorn[standard]`` runs in production. Python 3.11's own selector
transports keep a reference cycle (gh-100348, fixed in 3.12); it used to be broken here by
clearing a private attribute of CPython's transport, which no longer happens
(``tests/test_no_private_access.py``): on 3.11's asyncio loop dead connections wait for the
cyclic collector, a cost ``bench/bench_load.py`` measures.
"""

from __future__ import annotations

import asyncio
import gc
import ssl
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpcore
import pytest

from partial_trust.middleware.llm_client import CandidateError, LLMClient
from partial_trust.middleware.llm_transport import AsyncioBackend, AsyncioStream
from partial_trust.outcome import Reason
from tests.support.loopback import REQUEST, Loopback, eventually, never_answer, sees_eof
from tests.support.tls import server_context

pytestmark = pytest.mark.parametrize(
    "anyio_backend", [pytest.param(("asyncio", {"use_uvloop": True}), id="uvloop")]
)


class RecordingBackend(AsyncioBackend):
    """The real backend, keeping a weak reference to each connection's socket transport."""

    def __init__(self) -> None:
        super().__init__()
        self.transports: list[weakref.ref[asyncio.BaseTransport]] = []

    async def connect_tcp(self, *args: Any, **kwargs: Any) -> httpcore.AsyncNetworkStream:
        stream = await super().connect_tcp(*args, **kwargs)
        assert isinstance(stream, AsyncioStream) and stream._transport is not None
        self.transports.append(weakref.ref(stream._transport))
        return stream


@pytest.fixture
def no_cyclic_gc() -> Iterator[None]:
    """The cyclic collector off: what is freed then was freed by reference counting."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


@pytest.mark.anyio
@pytest.mark.usefixtures("no_cyclic_gc")
async def test_a_closed_connection_is_freed_without_the_cyclic_collector() -> None:
    # Left to the cyclic collector, dead connections under a hanging LLM took 1.5-2.8 ms of
    # the event loop per young-generation collection of ~40 of them.
    async with Loopback(never_answer) as server:
        stream = await AsyncioBackend().connect_tcp("127.0.0.1", server.port)
        assert isinstance(stream, AsyncioStream)
        assert stream._transport is not None
        transport = weakref.ref(stream._transport)
        await eventually(lambda: len(server.conns) == 1, "the server accepts")
        await stream.aclose()
        for _ in range(200):  # a loop, not a lambda: a closure would keep the stream alive
            if stream._eof:
                break
            await asyncio.sleep(0.005)
        assert stream._eof, "connection_lost never reached the stream"
        del stream
        assert transport() is None, "the closed transport is still alive (a reference cycle)"
        assert await sees_eof(server.conns[0])


@pytest.mark.anyio
@pytest.mark.usefixtures("no_cyclic_gc")
@pytest.mark.parametrize("tls", [False, True], ids=["tcp", "tls"])
async def test_a_timed_out_call_leaves_no_connection_for_the_cyclic_collector(
    tls: bool, request: pytest.FixtureRequest
) -> None:
    # Under TLS the socket's own transport (below the TLS layer) holds the cycle.

    server_tls = client_tls = None
    if tls:
        certificate = request.getfixturevalue("certificate")
        server_tls = server_context(certificate)
        client_tls = ssl.create_default_context(cafile=str(certificate[0]))
    async with Loopback(never_answer, ssl_context=server_tls) as server:
        backend = RecordingBackend()
        transports = backend.transports
        async with LLMClient(server.url, network_backend=backend, ssl_context=client_tls) as client:
            for _ in range(3):
                try:
                    await client.complete(REQUEST, timeout_s=0.2)
                except CandidateError as exc:
                    assert exc.reason == Reason.LLM_TIMEOUT
        await eventually(lambda: len(transports) == 3, "three connections")
        await eventually(
            lambda: all(ref() is None for ref in transports),
            "every timed-out connection freed by reference counting",
        )


@pytest.mark.anyio
@pytest.mark.usefixtures("no_cyclic_gc")
async def test_a_tls_handshake_cut_by_the_deadline_leaves_no_connection_for_the_collector(
    certificate: tuple[Path, Path],
) -> None:
    # The server accepts TCP and never answers the ClientHello, so the deadline cancels the
    # handshake itself: the stream never sees connection_lost (the TLS layer has not handed
    # the connection to it yet), and the socket's transport must be released all the same.

    client_tls = ssl.create_default_context(cafile=str(certificate[0]))
    async with Loopback(never_answer) as server:  # plain TCP: the handshake never completes
        url = f"https://localhost:{server.port}/v1"
        backend = RecordingBackend()
        transports = backend.transports
        async with LLMClient(url, network_backend=backend, ssl_context=client_tls) as client:
            reasons = []
            for _ in range(3):
                try:  # not pytest.raises: its traceback would keep the connection alive
                    await client.complete(REQUEST, timeout_s=0.1)
                except CandidateError as exc:
                    reasons.append(exc.reason)
        assert reasons == [Reason.LLM_TIMEOUT] * 3
        assert len(transports) == 3
        await eventually(
            lambda: all(ref() is None for ref in transports),
            "every connection cut mid-handshake freed by reference counting",
        )
