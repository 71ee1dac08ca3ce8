"""The LLM client's transport (``llm_transport``) against real loopback servers: deadlines,
refused connections, bodies in pieces, back-pressure, TLS, and closed connections freed at once.

The servers are ``tests.support.loopback``'s: what is asserted really crossed a socket.
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import json
import ssl
import subprocess
import time
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpcore
import pytest

from middleware.llm_client import CandidateError, LLMClient
from middleware.llm_transport import AsyncioBackend, AsyncioStream
from middleware.outcome import Reason
from tests.support.loopback import (
    BODY,
    CANDIDATE,
    REQUEST,
    Conn,
    Loopback,
    completion_body,
    eventually,
    failure,
    never_answer,
    sees_eof,
)
from tests.support.procs import free_port, require_binary

# --- deadlines -----------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_timed_out_call_closes_its_connection() -> None:
    async with Loopback(never_answer) as server, LLMClient(server.url) as client:
        started = time.perf_counter()
        error = await failure(client, timeout_s=0.2)
        elapsed = time.perf_counter() - started
        assert (error.reason, error.detail) == (Reason.LLM_TIMEOUT, "deadline")
        assert 0.19 <= elapsed < 0.2 + 0.5
        pool = client._origin_pool()
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
        pool = client._origin_pool()
        assert (pool.idle_count, pool.in_use) == (0, 0)
        # Nothing is left behind: a call with time to spare works.
        assert await client.complete(REQUEST, timeout_s=2.0) == CANDIDATE


@pytest.mark.anyio
async def test_connection_refused_is_unavailable() -> None:
    async with LLMClient(f"http://127.0.0.1:{free_port()}/v1") as client:
        error = await failure(client)
        assert (error.reason, error.detail) == (Reason.LLM_UNAVAILABLE, "ConnectError")
        pool = client._origin_pool()
        assert (pool.idle_count, pool.in_use) == (0, 0)


# --- bodies in many pieces, back-pressure --------------------------------------------------------


@pytest.mark.anyio
async def test_large_response_in_1k_writes_is_read_completely(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    big = {"intent": "x", "pad": "a" * 200_000}
    body = completion_body(big)
    assert 200_000 < len(body) < 256_000  # under the client's default max_response_bytes
    received = 0
    original = AsyncioStream.data_received

    def counting(self: AsyncioStream, data: bytes) -> None:
        nonlocal received
        received += 1
        original(self, data)

    monkeypatch.setattr(AsyncioStream, "data_received", counting)

    async def dribble(conn: Conn, request: bytes) -> bool:
        head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        conn.writer.write(head)
        for i in range(0, len(body), 1024):
            conn.writer.write(body[i : i + 1024])
            await conn.writer.drain()
            await asyncio.sleep(0)
        return True

    async with Loopback(dribble) as server, LLMClient(server.url) as client:
        assert await client.complete(REQUEST, timeout_s=5.0) == big
        assert received >= 50, f"the body came in only {received} reads: not a chunking test"
        assert await client.complete(REQUEST, timeout_s=5.0) == big
    assert len(server.conns) == 1


@pytest.mark.anyio
async def test_chunked_responses_are_read_and_keep_the_connection() -> None:
    async def chunked(conn: Conn, request: bytes) -> bool:
        conn.writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for i in range(0, len(BODY), 7):
            piece = BODY[i : i + 7]
            conn.writer.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            await conn.writer.drain()
            await asyncio.sleep(0)
        conn.writer.write(b"0\r\n\r\n")
        return True

    async with Loopback(chunked) as server, LLMClient(server.url) as client:
        for _ in range(3):
            assert await client.complete(REQUEST, timeout_s=2.0) == CANDIDATE
    assert len(server.conns) == 1
    assert server.conns[0].requests == 3


@pytest.mark.anyio
async def test_big_request_to_a_slow_reader_waits_for_the_socket(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pauses = resumes = 0
    pause, resume = AsyncioStream.pause_writing, AsyncioStream.resume_writing

    def counting_pause(self: AsyncioStream) -> None:
        nonlocal pauses
        pauses += 1
        pause(self)

    def counting_resume(self: AsyncioStream) -> None:
        nonlocal resumes
        resumes += 1
        resume(self)

    monkeypatch.setattr(AsyncioStream, "pause_writing", counting_pause)
    monkeypatch.setattr(AsyncioStream, "resume_writing", counting_resume)
    big_request = {"model": "m", "messages": [{"role": "user", "content": "y" * 5_000_000}]}
    sent = json.dumps(big_request, separators=(",", ":")).encode()

    async with (
        Loopback(rcvbuf=16 * 1024, body_delay_s=0.05) as server,
        LLMClient(server.url) as client,
    ):
        assert await client.complete(big_request, timeout_s=5.0) == CANDIDATE
        assert await client.complete(REQUEST, timeout_s=2.0) == CANDIDATE
    assert pauses >= 1, "the transport never pushed back: the test did not exercise it"
    assert resumes == pauses
    [(_, received), _] = server.requests
    assert hashlib.sha256(received).digest() == hashlib.sha256(sent).digest()
    assert len(server.conns) == 1


# --- TLS -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for localhost and 127.0.0.1, made now by the openssl CLI."""
    openssl = require_binary("openssl")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1",
            "-subj", "/CN=localhost",
            "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )  # fmt: skip
    return cert, key


def server_context(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(*certificate)
    return ctx


@pytest.mark.anyio
async def test_tls_with_a_trusted_certificate(certificate: tuple[Path, Path]) -> None:
    trusting = ssl.create_default_context(cafile=str(certificate[0]))
    async with Loopback(ssl_context=server_context(certificate)) as server:
        async with LLMClient(server.url, ssl_context=trusting) as client:
            for _ in range(3):
                assert await client.complete(REQUEST, timeout_s=2.0) == CANDIDATE
            assert client._origin_pool().idle_count == 1
        assert len(server.conns) == 1  # TLS keep-alive too
        assert server.conns[0].requests == 3
        assert await sees_eof(server.conns[0]), "aclose left the TLS connection open"


@pytest.mark.anyio
async def test_tls_with_an_untrusted_certificate_is_unavailable(
    certificate: tuple[Path, Path],
) -> None:
    untrusting = ssl.create_default_context()  # the system's CAs only
    async with (
        Loopback(ssl_context=server_context(certificate)) as server,
        LLMClient(server.url, ssl_context=untrusting) as client,
    ):
        error = await failure(client)
        assert (error.reason, error.detail) == (Reason.LLM_UNAVAILABLE, "ConnectError")
        pool = client._origin_pool()
        assert (pool.idle_count, pool.in_use) == (0, 0)
    assert server.requests == []


# --- validation ----------------------------------------------------------------------------------


@pytest.mark.parametrize("base_url", ["ftp://127.0.0.1/v1", "127.0.0.1:8000/v1", "http:///v1"])
def test_llm_client_rejects_a_non_http_base_url(base_url: str) -> None:
    with pytest.raises(ValueError, match="http"):
        LLMClient(base_url)


class _RecordingTransport(asyncio.Transport):
    """Only what the flow-control path touches: whether reading is paused."""

    def __init__(self) -> None:
        super().__init__()
        self.reading = True
        self.pauses = 0

    def pause_reading(self) -> None:
        self.reading = False
        self.pauses += 1

    def resume_reading(self) -> None:
        self.reading = True

    def is_reading(self) -> bool:
        return self.reading

    def is_closing(self) -> bool:
        return False


@pytest.mark.anyio
async def test_reading_pauses_while_the_buffer_is_full_and_resumes_when_drained() -> None:
    """A runaway answer must not fill memory faster than the client reads it."""
    stream = AsyncioStream()
    transport = _RecordingTransport()
    stream.connection_made(transport)
    for _ in range(5):
        stream.data_received(b"x" * 100_000)
    assert transport.pauses >= 1 and not transport.reading
    data = await stream.read(1_000_000)
    assert len(data) == 500_000
    assert transport.reading


@pytest.mark.anyio
async def test_a_request_goes_out_in_one_write(monkeypatch: pytest.MonkeyPatch) -> None:
    """Headers, body and end-of-message leave in one system call, not one each."""
    writes: list[int] = []
    made = AsyncioStream.connection_made

    def counting(self: AsyncioStream, transport: asyncio.BaseTransport) -> None:
        made(self, transport)
        assert isinstance(transport, asyncio.Transport)
        original = transport.write

        def write(data: Any) -> None:
            writes.append(len(data))
            original(data)

        transport.write = write  # type: ignore[method-assign]

    monkeypatch.setattr(AsyncioStream, "connection_made", counting)
    async with Loopback() as server, LLMClient(server.url) as client:
        for _ in range(3):
            assert await client.complete(REQUEST, timeout_s=2.0) == CANDIDATE
    assert len(server.requests) == 3
    assert len(writes) == 3, f"expected one write per request, got sizes {writes}"


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
    # Python 3.11 transports keep a bound method of themselves (gh-100348): without
    # release_transport_cycle each dead connection waits for a young-generation collection,
    # which under a hanging LLM took 1.5-2.8 ms of the event loop per ~40 connections.
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
