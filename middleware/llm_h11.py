"""The LLM call's HTTP/1.1 driven straight through h11's public API: ``H11Transport``.

Why: the profile of a sampled request put httpcore's request model and its three lock round
trips (each an event-loop turn) among the top costs of the LLM call, and the private-attribute
shortcut that skipped the locks is gone for good. A connection here carries one request at a
time (the pool's checkout is the only lock it needs), so the HTTP state machine is h11's own
``Connection`` (the parser under httpcore, used through its public API) and nothing else.

Kept exactly as in ``PooledTransport``: the network streams are ``llm_transport``'s
(``AsyncioStream`` hands the parser one answer and no more; stray bytes make it dirty and
quarantine the upstream), framing ambiguity is refused (``ambiguous_framing``), a reused
keep-alive connection closed before any byte of the answer gets one retry on a fresh one,
calls past ``max_connections`` fail at once, TLS for https. Failures are raised as httpcore's
public exception classes, which ``LLMClient`` already maps to reasons.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import h11
import httpcore
import httpx

from partial_trust.middleware.llm_framing import AmbiguousFraming, Upstream, ambiguous_framing
from partial_trust.middleware.llm_pool import (
    QUARANTINE_S,
    ConnectionLimitError,
    check_pool_limits,
)
from partial_trust.middleware.llm_seam import STALE, LLMResponse, default_ssl_context
from partial_trust.middleware.llm_transport import AsyncioBackend

#: Bytes asked of the stream per read (httpcore's figure).
READ_SIZE = 64 * 1024
#: The largest response head h11 buffers before refusing it (httpcore's figure).
MAX_HEAD = 100 * 1024


class H11Connection:
    """One keep-alive connection: a network stream and the h11 state machine over it."""

    __slots__ = ("expires_at", "parser", "stream")

    def __init__(self, stream: httpcore.AsyncNetworkStream) -> None:
        self.stream = stream
        self.parser = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD)
        self.expires_at = 0.0

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


class H11Transport:
    """Keep-alive connections to the LLM's one origin, newest idle first (LIFO)."""

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
        check_pool_limits("H11Transport", max_connections, max_idle, keepalive_expiry)
        parsed = httpx.URL(url)
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise ValueError(f"the LLM URL must be http or https, got {url!r}")
        self._host_header = parsed.netloc
        self._target = parsed.raw_path
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
        self._idle: list[H11Connection] = []
        self._closed = False
        self.in_use = 0

    @property
    def quarantined(self) -> bool:
        """Whether this upstream sent stray bytes lately: then no connection is reused."""
        return time.monotonic() - self.upstream.stray_bytes_at < QUARANTINE_S

    @property
    def idle_count(self) -> int:
        return len(self._idle)

    def idle_connections(self) -> list[H11Connection]:
        """The idle connections, newest last (for tests and diagnostics)."""
        return list(self._idle)

    @asynccontextmanager
    async def post(
        self, url: str, body: bytes, headers: Mapping[str, str], deadline: float
    ) -> AsyncIterator[LLMResponse]:
        if self._closed:
            raise RuntimeError("LLMClient is closed")
        fields = [
            (b"Host", self._host_header),
            (b"Content-Type", b"application/json"),
            (b"Content-Length", str(len(body)).encode("ascii")),
            *((k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()),
        ]
        try:
            request = h11.Request(method=b"POST", target=self._target, headers=fields)
        except h11.LocalProtocolError:
            raise httpcore.LocalProtocolError("invalid request header") from None
        conn, response = await self._send(request, body)
        reusable = False
        try:
            read = _Body(conn)
            declared = b""
            for name, value in response.headers:  # h11 lower-cases names
                if name == b"content-length":
                    declared = value.strip()
            yield LLMResponse(response.status_code, declared, read.chunks())
            reusable = read.complete and self._answered(conn)
        finally:
            self._release(conn, reusable=reusable)

    async def _send(self, request: h11.Request, body: bytes) -> tuple[H11Connection, h11.Response]:
        """The answer's head. A reused connection that fails before any byte of the answer
        (the server closed it idle as we sent) gets one retry on a fresh connection."""
        conn, reused = self._acquire(fresh=False)
        try:
            return conn, await self._exchange(conn, request, body, retry_ok=reused)
        except _Stale:
            self._release(conn, reusable=False)
        except BaseException:
            self._release(conn, reusable=False)
            raise
        conn, _ = self._acquire(fresh=True)
        try:
            return conn, await self._exchange(conn, request, body, retry_ok=False)
        except BaseException:
            self._release(conn, reusable=False)
            raise

    async def _exchange(
        self, conn: H11Connection, request: h11.Request, body: bytes, *, retry_ok: bool
    ) -> h11.Response:
        if not retry_ok:  # a new connection: connect first (never retried)
            await self._connect(conn)
        parser = conn.parser
        received = False
        try:
            out = parser.send(request) or b""
            out += parser.send(h11.Data(data=body)) or b""
            out += parser.send(h11.EndOfMessage()) or b""
            await conn.stream.write(out)
            while True:
                event = parser.next_event()
                if event is h11.NEED_DATA:
                    data = await conn.stream.read(READ_SIZE)
                    received = received or bool(data)
                    parser.receive_data(data)
                elif isinstance(event, h11.Response):
                    if ambiguous_framing(event.headers.raw_items()):
                        raise AmbiguousFraming("ambiguous framing headers")
                    return event
                elif not isinstance(event, h11.InformationalResponse):
                    raise httpcore.RemoteProtocolError("no response from the server")
        except AmbiguousFraming:
            raise
        except h11.RemoteProtocolError:
            if retry_ok and not received:
                raise _Stale from None
            raise httpcore.RemoteProtocolError("malformed response") from None
        except STALE:
            if retry_ok and not received:
                raise _Stale from None
            raise

    async def _connect(self, conn: H11Connection) -> None:
        stream = await self._backend.connect_tcp(self._host, self._port)
        if self._https:
            context = self._ssl if self._ssl is not None else default_ssl_context()
            try:
                stream = await stream.start_tls(context, server_hostname=self._host)
            except BaseException:
                await stream.aclose()
                raise
        conn.stream = stream

    def _acquire(self, *, fresh: bool) -> tuple[H11Connection, bool]:
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
        return H11Connection(_NOT_CONNECTED), False

    def _answered(self, conn: H11Connection) -> bool:
        """Whether ``conn``, whose answer was read in full, carries nothing more and may go
        back to the pool (see ``OriginPool.answered``)."""
        parser = conn.parser
        if parser.our_state is not h11.DONE or parser.their_state is not h11.DONE:
            return False  # e.g. "Connection: close", or an HTTP/1.0 answer
        leftover, closed = parser.trailing_data
        if leftover:  # only a stream other than ours can hand the parser more than the answer
            self.upstream.stray_bytes_at = time.monotonic()
            return False
        settle = getattr(conn.stream, "settle", None)
        clean = (
            bool(settle()) if settle is not None else not conn.stream.get_extra_info("is_readable")
        )
        if not clean or closed:
            return False
        parser.start_next_cycle()
        return True

    def _release(self, conn: H11Connection, *, reusable: bool) -> None:
        self.in_use -= 1
        if (
            reusable
            and not self._closed
            and len(self._idle) < self._max_idle
            and not self.quarantined
        ):
            conn.expires_at = time.monotonic() + self._keepalive
            self._idle.append(conn)
        elif conn.stream is not _NOT_CONNECTED:
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


_NOT_CONNECTED = _Unconnected()


class _Body:
    """The body's chunks from h11, noting whether they were read to the end."""

    __slots__ = ("_conn", "complete")

    def __init__(self, conn: H11Connection) -> None:
        self._conn = conn
        self.complete = False

    async def chunks(self) -> AsyncIterator[bytes]:
        parser, stream = self._conn.parser, self._conn.stream
        while True:
            try:
                event = parser.next_event()
                if event is h11.NEED_DATA:
                    parser.receive_data(await stream.read(READ_SIZE))
                    continue
            except h11.RemoteProtocolError:
                raise httpcore.RemoteProtocolError("malformed response body") from None
            if isinstance(event, h11.Data):
                yield bytes(event.data)
            elif isinstance(event, h11.EndOfMessage):
                self.complete = True
                return
            else:
                raise httpcore.RemoteProtocolError("the connection closed inside the body")
