"""The LLM client's own transport and pool (``llm_transport``, ``llm_pool``) against real
loopback servers.

Every server here is ``asyncio.start_server`` on 127.0.0.1 speaking HTTP/1.1 written by hand, so
what is asserted is what really crossed a socket: how many TCP connections were accepted, which
connection carried which request, and when the client closed one (the server reads EOF).
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import json
import socket
import ssl
import subprocess
import time
import weakref
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import httpcore
import pytest

from middleware.llm_client import CandidateError, LLMClient
from middleware.llm_pool import ConnectionLimitError, OriginPool, skip_lock_round_trips
from middleware.llm_transport import AsyncioBackend, AsyncioStream
from middleware.outcome import Reason
from tests.support.instant_llm import InstantBackend
from tests.support.procs import free_port, require_binary

REQUEST: dict[str, Any] = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
CANDIDATE: dict[str, Any] = {"intent": "add_shopping_item", "job": {"job_type": "x"}}


def completion_body(candidate: dict[str, Any] = CANDIDATE) -> bytes:
    envelope = {"choices": [{"index": 0, "message": {"content": json.dumps(candidate)}}]}
    return json.dumps(envelope).encode()


BODY = completion_body()


def response(body: bytes = BODY, *, headers: bytes = b"") -> bytes:
    head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return head.encode() + headers + b"\r\n" + body


# --- a hand-written HTTP/1.1 server ---------------------------------------------------------


@dataclass(eq=False)
class Conn:
    """One accepted TCP connection, server side."""

    index: int
    writer: asyncio.StreamWriter
    requests: int = 0
    client_closed: asyncio.Event = field(default_factory=asyncio.Event)


# Writes the answer to one request (or nothing, to hang); returns False to close the connection.
Respond = Callable[[Conn, bytes], Awaitable[bool]]


async def answer_ok(conn: Conn, body: bytes) -> bool:
    conn.writer.write(response())
    return True


async def never_answer(conn: Conn, body: bytes) -> bool:
    return True  # the handler goes back to reading: it sees the client's EOF when it comes


def answer_when_in_flight(count: int) -> Respond:
    """Hold every answer until ``count`` requests are in flight at once, then answer all."""
    all_in = asyncio.Event()
    arrived = 0

    async def respond(conn: Conn, body: bytes) -> bool:
        nonlocal arrived
        arrived += 1
        if arrived == count:
            all_in.set()
        await all_in.wait()
        conn.writer.write(response())
        return True

    return respond


class Loopback:
    """HTTP/1.1 on 127.0.0.1:0 (TLS with ``ssl_context``); records connections and requests."""

    def __init__(
        self,
        respond: Respond = answer_ok,
        *,
        ssl_context: ssl.SSLContext | None = None,
        rcvbuf: int | None = None,
        body_delay_s: float = 0.0,
    ) -> None:
        self.respond = respond
        self.conns: list[Conn] = []
        self.requests: list[tuple[int, bytes]] = []  # (connection index, request body)
        self._ssl = ssl_context
        self._rcvbuf = rcvbuf
        self._body_delay_s = body_delay_s
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        self.port = 0

    @property
    def url(self) -> str:
        if self._ssl is not None:
            return f"https://localhost:{self.port}/v1"
        return f"http://127.0.0.1:{self.port}/v1"

    async def __aenter__(self) -> Loopback:
        if self._rcvbuf is None:
            self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0, ssl=self._ssl)
        else:  # a small receive window, inherited by accepted sockets: the client must wait
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self._rcvbuf)
            sock.bind(("127.0.0.1", 0))
            self._server = await asyncio.start_server(self._handle, sock=sock, ssl=self._ssl)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        conn = Conn(len(self.conns), writer)
        self.conns.append(conn)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except asyncio.IncompleteReadError as exc:
                    if not exc.partial:
                        conn.client_closed.set()  # a clean EOF between requests
                    return
                body = await self._read_body(reader, content_length(head))
                conn.requests += 1
                self.requests.append((conn.index, body))
                keep = await self.respond(conn, body)
                await writer.drain()
                if not keep:
                    return
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            conn.client_closed.set()
        except asyncio.CancelledError:
            pass  # the test is over (``__aexit__``); asyncio would log a cancelled handler
        finally:
            writer.close()

    async def _read_body(self, reader: asyncio.StreamReader, length: int) -> bytes:
        if not self._body_delay_s:
            return await reader.readexactly(length)
        # A slow reader: let the client's buffers fill first, then take 64 KiB at a time.
        await asyncio.sleep(self._body_delay_s)
        body = bytearray()
        while len(body) < length:
            chunk = await reader.read(min(64 * 1024, length - len(body)))
            if not chunk:
                raise asyncio.IncompleteReadError(bytes(body), length)
            body += chunk
            await asyncio.sleep(0.001)
        return bytes(body)


def content_length(head: bytes) -> int:
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


# --- helpers --------------------------------------------------------------------------------


async def eventually(predicate: Callable[[], bool], what: str, timeout_s: float = 2.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s}s: {what}")
        await asyncio.sleep(0.005)


async def sees_eof(conn: Conn, timeout_s: float = 1.0) -> bool:
    """Whether the server reads the client's EOF on ``conn`` within ``timeout_s``."""
    try:
        await asyncio.wait_for(conn.client_closed.wait(), timeout_s)
    except TimeoutError:
        return False
    return True


async def failure(client: LLMClient, timeout_s: float = 1.0, **kwargs: Any) -> CandidateError:
    with pytest.raises(CandidateError) as info:
        await client.complete(REQUEST, timeout_s=timeout_s, **kwargs)
    return info.value


async def post_raw(pool: OriginPool, content: bytes = b"{}") -> bytes:
    """One exchange through ``pool`` with httpcore directly, as a caller other than LLMClient."""
    headers = [
        (b"Host", pool.origin.host + b":" + str(pool.origin.port).encode()),
        (b"Content-Length", str(len(content)).encode()),
    ]
    conn = pool.acquire()
    reusable = False
    try:
        resp = await conn.handle_async_request(
            httpcore.Request(b"POST", pool.url, headers=headers, content=content)
        )
        try:
            assert resp.status == 200
            body = await resp.aread()
        finally:
            await resp.aclose()
        reusable = True
        return body
    finally:
        pool.release(conn, reusable=reusable)


def idle_connections(pool: OriginPool) -> list[httpcore.AsyncHTTPConnection]:
    return list(pool._idle)  # white box: only to wait for the client to notice a server's FIN


# --- 1, 2: keep-alive reuse, LIFO -----------------------------------------------------------


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


# --- 3: the server ends a keep-alive connection ---------------------------------------------


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


# --- 4, 5: deadlines ------------------------------------------------------------------------


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


# --- 6, 7: the connection limit, refused connections ----------------------------------------


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
async def test_connection_refused_is_unavailable() -> None:
    async with LLMClient(f"http://127.0.0.1:{free_port()}/v1") as client:
        error = await failure(client)
        assert (error.reason, error.detail) == (Reason.LLM_UNAVAILABLE, "ConnectError")
        pool = client._origin_pool()
        assert (pool.idle_count, pool.in_use) == (0, 0)


# --- 8, 9: bodies in many pieces, back-pressure ---------------------------------------------


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


# --- 10: TLS --------------------------------------------------------------------------------


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


# --- 11: validation -------------------------------------------------------------------------


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


@pytest.mark.parametrize("base_url", ["ftp://127.0.0.1/v1", "127.0.0.1:8000/v1", "http:///v1"])
def test_llm_client_rejects_a_non_http_base_url(base_url: str) -> None:
    with pytest.raises(ValueError, match="http"):
        LLMClient(base_url)


# --- 12: closing ----------------------------------------------------------------------------


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


# --- more ways an exchange can end: the pool must stay usable ---------------------------


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


# --- event-loop round trips ------------------------------------------------------------------


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
