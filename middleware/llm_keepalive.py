"""What every keep-alive LLM transport of ours shares, whatever parses its HTTP/1.1.

``KeepAliveTransport`` owns the connections to the LLM's one origin: a LIFO pool of idle
ones (the newest first, dropped when expired or when bytes or EOF arrived while idle), at
most ``max_connections`` calls in flight (past it a call fails at once), TLS for https, one
retry on a fresh connection when a reused one fails before any byte of its answer (the
server closed it idle as we sent), no reuse after stray bytes from the upstream
(``quarantined``), and ``post`` as ``LLMTransport`` wants it. A ``WireConnection`` subclass
is the wire protocol and nothing else: how a request goes out, how its answer's head and
body are read (``llm_h11`` with h11, ``llm_httptools`` with llhttp).

The network streams are ``llm_transport``'s: ``AsyncioStream`` hands the parser one answer
and no more; stray bytes make it dirty and quarantine the upstream. Failures are raised as
httpcore's public exception classes, which ``LLMClient`` maps to reasons.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Generic, Protocol, TypeVar

import httpcore
import httpx

from partial_trust.middleware.llm_framing import AmbiguousFraming, Upstream
from partial_trust.middleware.llm_pool import (
    QUARANTINE_S,
    ConnectionLimitError,
    check_pool_limits,
)
from partial_trust.middleware.llm_seam import STALE, LLMResponse, default_ssl_context
from partial_trust.middleware.llm_transport import AsyncioBackend

#: Bytes asked of the stream per read (httpcore's figure).
READ_SIZE = 64 * 1024
#: The largest response head buffered before it is refused (httpcore's figure).
MAX_HEAD = 100 * 1024

R = TypeVar("R")


class Body(Protocol):
    """An answer's body as the parser reads it: ``complete`` once read to its end."""

    complete: bool

    def chunks(self) -> AsyncIterator[bytes]: ...


class WireConnection(Generic[R]):
    """One keep-alive connection: a network stream and the wire protocol over it.

    A subclass sends a request and reads its head (``exchange``, noting in ``received``
    whether any byte of the answer came), streams the body (``body``), says what the answer
    left behind (``answer_state``) and gets ready for the next exchange (``next_cycle``).
    """

    __slots__ = ("expires_at", "received", "stream")

    def __init__(self, stream: httpcore.AsyncNetworkStream) -> None:
        self.stream = stream
        self.expires_at = 0.0
        self.received = False

    async def exchange(self, request: R) -> tuple[int, bytes]:
        """Send ``request``; the answer's status and declared ``Content-Length`` (b"" when
        absent). Informational answers are skipped, ambiguous framing is refused."""
        raise NotImplementedError

    def body(self) -> Body:
        raise NotImplementedError

    def answer_state(self) -> tuple[bool, bool, bool]:
        """After a body read in full: (the answer lets the connection be kept alive, the
        parser holds bytes past it, the parser saw the connection's end)."""
        raise NotImplementedError

    def next_cycle(self) -> None:
        raise NotImplementedError

    def usable(self, now: float) -> bool:
        """Idle, not expired, and nothing (bytes or EOF) arrived while it idled."""
        return now < self.expires_at and not self.stream.get_extra_info("is_readable")

    def has_expired(self) -> bool:
        """Whether the pool would drop it now (for tests waiting on a server's FIN)."""
        return not self.usable(time.monotonic())

    def close(self) -> None:
        """Close without awaiting: ``AsyncioStream.aclose`` never suspends."""
        coro = self.stream.aclose()
        try:
            coro.send(None)
        except StopIteration:
            return
        except Exception:  # a close that fails leaves nothing to clean up
            return
        coro.close()  # another backend suspended: give up on a graceful close


class KeepAliveTransport(Generic[R]):
    """Keep-alive connections to the LLM's one origin, newest idle first (LIFO).

    A subclass renders a request (``render``, where a header that could break the request
    line structure raises ``httpcore.LocalProtocolError``) and makes its connections
    (``connection``)."""

    def __init__(
        self,
        url: str,
        *,
        max_connections: int = 200,
        max_idle: int = 100,
        keepalive_expiry: float = 30.0,
        ssl_context: ssl.SSLContext | None = None,
        network_backend: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        check_pool_limits(type(self).__name__, max_connections, max_idle, keepalive_expiry)
        parsed = httpx.URL(url)
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise ValueError(f"the LLM URL must be http or https, got {url!r}")
        self.host_header: bytes = parsed.netloc
        self.target: bytes = parsed.raw_path
        self._host = parsed.host
        self._port = parsed.port or (443 if parsed.scheme == "https" else 80)
        self._https = parsed.scheme == "https"
        self._ssl = ssl_context
        self._backend = network_backend or AsyncioBackend()
        found = getattr(self._backend, "upstream", None)
        self.upstream: Upstream = found if isinstance(found, Upstream) else Upstream()
        self._max_connections = max_connections
        self._max_idle = max_idle
        self._keepalive = keepalive_expiry
        self._idle: list[WireConnection[R]] = []
        self._closed = False
        self.in_use = 0

    def render(self, body: bytes, headers: Mapping[str, str]) -> R:
        raise NotImplementedError

    def connection(self, stream: httpcore.AsyncNetworkStream) -> WireConnection[R]:
        raise NotImplementedError

    @property
    def quarantined(self) -> bool:
        """Whether this upstream sent stray bytes lately: then no connection is reused."""
        return time.monotonic() - self.upstream.stray_bytes_at < QUARANTINE_S

    @property
    def idle_count(self) -> int:
        return len(self._idle)

    def idle_connections(self) -> list[WireConnection[R]]:
        """The idle connections, newest last (for tests and diagnostics)."""
        return list(self._idle)

    @asynccontextmanager
    async def post(
        self, url: str, body: bytes, headers: Mapping[str, str], deadline: float
    ) -> AsyncIterator[LLMResponse]:
        if self._closed:
            raise RuntimeError("LLMClient is closed")
        request = self.render(body, headers)
        conn, (status, declared) = await self._send(request)
        reusable = False
        try:
            read = conn.body()
            yield LLMResponse(status, declared, read.chunks())
            reusable = read.complete and self._answered(conn)
        finally:
            self._release(conn, reusable=reusable)

    async def _send(self, request: R) -> tuple[WireConnection[R], tuple[int, bytes]]:
        """The answer's head. A reused connection that fails before any byte of the answer
        (the server closed it idle as we sent) gets one retry on a fresh connection."""
        conn, reused = self._acquire(fresh=False)
        try:
            return conn, await self._exchange(conn, request, retry_ok=reused)
        except _Stale:
            self._release(conn, reusable=False)
        except BaseException:
            self._release(conn, reusable=False)
            raise
        conn, _ = self._acquire(fresh=True)
        try:
            return conn, await self._exchange(conn, request, retry_ok=False)
        except BaseException:
            self._release(conn, reusable=False)
            raise

    async def _exchange(
        self, conn: WireConnection[R], request: R, *, retry_ok: bool
    ) -> tuple[int, bytes]:
        if not retry_ok:  # a new connection: connect first (never retried)
            await self._connect(conn)
        conn.received = False
        try:
            return await conn.exchange(request)
        except AmbiguousFraming:
            raise
        except STALE:
            if retry_ok and not conn.received:
                raise _Stale from None
            raise

    async def _connect(self, conn: WireConnection[R]) -> None:
        stream = await self._backend.connect_tcp(self._host, self._port)
        if self._https:
            context = self._ssl if self._ssl is not None else default_ssl_context()
            try:
                stream = await stream.start_tls(context, server_hostname=self._host)
            except BaseException:
                await stream.aclose()
                raise
        conn.stream = stream

    def _acquire(self, *, fresh: bool) -> tuple[WireConnection[R], bool]:
        if self.in_use >= self._max_connections:
            raise ConnectionLimitError(f"{self._max_connections} LLM calls already in flight")
        idle = self._idle
        if idle and not fresh and self.quarantined:
            for conn in idle:
                conn.close()
            idle.clear()
        now = time.monotonic()
        while idle and not fresh:
            conn = idle.pop()
            if conn.usable(now):
                self.in_use += 1
                return conn, True
            conn.close()
        self.in_use += 1
        return self.connection(NOT_CONNECTED), False

    def _answered(self, conn: WireConnection[R]) -> bool:
        """Whether ``conn``, whose answer was read in full, carries nothing more and may go
        back to the pool. Our stream hands the parser exactly one answer and keeps anything
        after it (``AsyncioStream.settle``); another backend's stream cannot promise that, so
        its connection is reused only when nothing at all is waiting on it. Stray bytes
        quarantine the upstream (``quarantined``)."""
        keep_alive, leftover, closed = conn.answer_state()
        if not keep_alive:  # e.g. "Connection: close", or an HTTP/1.0 answer
            return False
        if leftover:  # only a stream other than ours can hand the parser more than the answer
            self.upstream.stray_bytes_at = time.monotonic()
            return False
        settle = getattr(conn.stream, "settle", None)
        clean = (
            bool(settle()) if settle is not None else not conn.stream.get_extra_info("is_readable")
        )
        if not clean or closed:
            return False
        conn.next_cycle()
        return True

    def _release(self, conn: WireConnection[R], *, reusable: bool) -> None:
        self.in_use -= 1
        if (
            reusable
            and not self._closed
            and len(self._idle) < self._max_idle
            and not self.quarantined
        ):
            conn.expires_at = time.monotonic() + self._keepalive
            self._idle.append(conn)
        elif conn.stream is not NOT_CONNECTED:
            conn.close()

    async def aclose(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for conn in idle:
            await conn.stream.aclose()


class _Stale(Exception):
    """A reused connection failed before any byte of its answer: retry on a fresh one."""


class _Unconnected(httpcore.AsyncNetworkStream):
    """The stream of a connection not connected yet: every use is a write error."""

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        raise httpcore.ReadError("not connected")

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        raise httpcore.WriteError("not connected")

    async def aclose(self) -> None:
        return None


NOT_CONNECTED = _Unconnected()
