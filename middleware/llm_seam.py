"""One seam for the LLM call: ``LLMTransport``, and the two implementations behind it.

Why a seam: ``LLMClient`` owns what the corridor needs of the call (one deadline, a size cap
on the answer, every failure mapped to a closed ``Reason``); how the bytes travel is a
transport's business. ``llm_httptools.HttptoolsTransport`` is the default (llhttp's parser on
our asyncio stream, with a LIFO pool; ``llm_h11.H11Transport`` drives h11 over the same pool);
``PooledTransport`` (httpcore's HTTP/1.1 connection on the
same stream, in ``llm_pool``'s LIFO pool) was the default until 2026-12-07 and stays for
comparison in ``bench/bench_llm_client.py``; ``HttpxTransport`` wraps an ``httpx.AsyncClient``,
for a proxy from the environment or a client the caller injects. A transport raises its
library's exceptions (httpcore's, httpx's, ``OSError``) and ``AmbiguousFraming`` /
``ConnectionLimitError``; ``LLMClient`` maps them.
"""

from __future__ import annotations

import asyncio
import functools
import ssl
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Protocol

import httpcore
import httpx

from partial_trust.middleware.llm_framing import AmbiguousFraming, ambiguous_framing
from partial_trust.middleware.llm_pool import OriginPool

#: What a keep-alive connection closed under us looks like to httpcore.
STALE = (httpcore.RemoteProtocolError, httpcore.ReadError, httpcore.WriteError)


@dataclass(frozen=True, slots=True)
class LLMResponse:
    """An answer whose body has not been read yet: ``chunks`` streams it."""

    status: int
    content_length: bytes  # as declared (stripped), b"" when absent
    chunks: AsyncIterator[bytes]


class LLMTransport(Protocol):
    """How one POST reaches the LLM. Leaving ``post``'s context (normally, on error or on
    cancellation) releases the connection; one whose body was not read to its end is never
    reused. ``deadline`` is the event-loop time the whole call must end by (the client
    enforces it too; a transport may hand it to its library)."""

    def post(
        self, url: str, body: bytes, headers: Mapping[str, str], deadline: float
    ) -> AbstractAsyncContextManager[LLMResponse]: ...

    async def aclose(self) -> None: ...


class PooledTransport:
    """httpcore's connection (the default until 2026-12-07): keep-alive connections to the
    LLM's one origin (``OriginPool``), created on first use inside the running loop."""

    def __init__(
        self,
        url: str,
        *,
        max_connections: int = 200,
        ssl_context: ssl.SSLContext | None = None,
        network_backend: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        self._url = url
        self._host = httpx.URL(url).netloc  # the Host header: host[:port] as written
        self._max_connections = max_connections
        self._ssl = ssl_context
        self._backend = network_backend
        self._pool: OriginPool | None = None
        self._closed = False

    def origin_pool(self) -> OriginPool:
        if self._closed:
            raise RuntimeError("LLMClient is closed")
        if self._pool is None:
            self._pool = OriginPool(
                self._url,
                max_connections=self._max_connections,
                max_idle=min(100, self._max_connections),
                ssl_context=self._ssl_context(),
                network_backend=self._backend,
            )
        return self._pool

    def _ssl_context(self) -> ssl.SSLContext | None:
        # Loading the CA bundle takes ~40 ms (several times that on a busy host): a plain
        # http:// origin never needs it, and must not pay it inside its first deadline.
        if self._ssl is not None or httpx.URL(self._url).scheme != "https":
            return self._ssl
        return default_ssl_context()

    @asynccontextmanager
    async def post(
        self, url: str, body: bytes, headers: Mapping[str, str], deadline: float
    ) -> AsyncIterator[LLMResponse]:
        pool = self.origin_pool()
        raw_headers = [
            (b"Host", self._host),
            (b"Content-Type", b"application/json"),
            (b"Content-Length", str(len(body)).encode("ascii")),
            *((k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()),
        ]
        request = httpcore.Request(b"POST", pool.url, headers=raw_headers, content=body)
        conn, response = await _send(pool, request)
        reusable = False
        try:
            read = _Body(response.aiter_stream())
            yield LLMResponse(response.status, _header(response.headers), read.chunks())
            await response.aclose()
            # Reused only when the body was read to its end and nothing else crossed it.
            stream = response.extensions.get("network_stream")
            reusable = read.complete and pool.answered(conn, stream)
        finally:
            await response.aclose()
            # A failed, cancelled or refused exchange never goes back to the pool.
            pool.release(conn, reusable=reusable)

    async def aclose(self) -> None:
        self._closed = True
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.aclose()


async def _send(
    pool: OriginPool, request: httpcore.Request
) -> tuple[httpcore.AsyncHTTPConnection, httpcore.Response]:
    """The answer's head, on a pooled connection. A reused keep-alive connection closed
    before any answer is almost always the server closing it idle (uvicorn does after 5 s)
    as we sent: one retry on a fresh connection, as urllib3 and browsers do (a completion
    has no side effect but its cost); a fresh connection that fails is not retried."""
    conn = pool.acquire()
    reused = conn.is_idle()  # a new connection is not idle until it has connected
    try:
        return conn, await conn.handle_async_request(request)
    except STALE:
        pool.release(conn, reusable=False)
        if not reused:
            raise
    except BaseException:
        pool.release(conn, reusable=False)
        raise
    conn = pool.acquire(fresh=True)
    try:
        return conn, await conn.handle_async_request(request)
    except BaseException:
        pool.release(conn, reusable=False)
        raise


class _Body:
    """The body's chunks, noting whether they were read to the end."""

    __slots__ = ("_stream", "complete")

    def __init__(self, stream: AsyncIterator[bytes]) -> None:
        self._stream = stream
        self.complete = False

    async def chunks(self) -> AsyncIterator[bytes]:
        async for chunk in self._stream:
            yield chunk
        self.complete = True


class HttpxTransport:
    """An ``httpx.AsyncClient``: one the caller injected (it stays theirs: ``aclose`` leaves
    it open), or one made here that honours the environment's proxy (``trust_env``)."""

    def __init__(self, client: httpx.AsyncClient | None = None) -> None:
        self._client = client
        self._owned = client is None

    @asynccontextmanager
    async def post(
        self, url: str, body: bytes, headers: Mapping[str, str], deadline: float
    ) -> AsyncIterator[LLMResponse]:
        if self._client is None:
            self._client = httpx.AsyncClient(trust_env=True, follow_redirects=False)
        left = max(deadline - asyncio.get_running_loop().time(), 0.001)
        headers = {**headers, "Content-Type": "application/json"}
        async with self._client.stream(
            "POST", url, content=body, headers=headers, timeout=httpx.Timeout(left)
        ) as response:
            if ambiguous_framing(response.headers.raw):
                raise AmbiguousFraming("ambiguous framing headers")
            declared = response.headers.get("content-length", "").strip().encode("latin-1")
            yield LLMResponse(response.status_code, declared, response.aiter_bytes())

    @property
    def client(self) -> httpx.AsyncClient | None:
        """The client in use (None until an owned one is first needed)."""
        return self._client

    async def aclose(self) -> None:
        if self._owned and self._client is not None:
            client, self._client = self._client, None
            await client.aclose()


def _header(headers: Sequence[tuple[bytes, bytes]], name: bytes = b"content-length") -> bytes:
    for key, value in headers:
        if key.lower() == name:
            return value.strip()
    return b""


@functools.cache
def default_ssl_context() -> ssl.SSLContext:
    """httpx's default verification (certifi's CA bundle), loaded once per process: loading
    it costs ~40 ms, which must not land on the first sampled request's deadline."""
    return httpx.create_ssl_context()
