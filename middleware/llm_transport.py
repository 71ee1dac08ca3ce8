"""The LLM client's connections: a network stream on plain asyncio, under our HTTP/1.1 parsers.

Why not ``httpx.AsyncClient`` on the request path: measured against a local LLM double, one
call through it cost ~970 µs of the app's CPU, most of it outside HTTP itself (URL merging,
cookie extraction, and a pool that re-examines every connection, with an O(n²) idle count,
on every request and every release). A sampled request has ~300 µs in the DESIGN's budget.

So the connection is ours: a network backend on an ``asyncio.Protocol`` with httpcore's
public stream interface (``AsyncNetworkBackend``/``AsyncNetworkStream``, its documented
extension point; its default goes through anyio's stream layers), here, under the
keep-alive transports (``llm_keepalive``: llhttp in ``llm_httptools``, h11 in ``llm_h11``),
whose pool hands out the most recently used idle connection and looks at no other. (httpcore's
own HTTP/1.1 connection on this stream was the default until 2026-12-07, then removed.) Only
public interfaces of httpcore and asyncio are used (``tests/test_no_private_access.py``).
"""

from __future__ import annotations

import asyncio
import select
import socket
import ssl
import time
from collections.abc import Iterable
from typing import Any, cast

import httpcore

from partial_trust.middleware.llm_framing import AmbiguousFraming, AnswerFraming, Upstream

#: Bytes of a request held back before they are sent without waiting for the read.
_WRITE_COALESCE = 64 * 1024
#: Bytes buffered from the server before reading pauses: a runaway answer is refused at the
#: client's cap (256 kB by default) and must not fill memory while that happens.
_READ_HIGH_WATER = 256 * 1024


class AsyncioStream(asyncio.Protocol, httpcore.AsyncNetworkStream):
    """One TCP (or TLS) connection as httpcore wants it: ``read``, ``write``, ``aclose``.

    It also keeps the rule that makes a keep-alive connection safe to share between users:
    the only bytes it may carry are the answer to the request just sent. ``read`` hands the
    HTTP parser the answer's bytes and no more (``AnswerFraming``), so nothing past the
    answer can wait inside the parser for the next call. Bytes past the answer, or arriving
    while no request is outstanding (an upstream or proxy that answered twice, or sent more
    than it framed), make the stream *dirty*: its next read fails and ``settle`` refuses it,
    so one command's answer can never be read as another's.
    """

    def __init__(self, upstream: Upstream | None = None) -> None:
        self._upstream = upstream
        self._framing = AnswerFraming()
        self._answer_left = 0  # bytes at the buffer's start that belong to the answer
        self._transport: asyncio.Transport | None = None
        self._tcp: asyncio.Transport | None = None  # under TLS, the socket's own transport
        self._buffer = bytearray()
        self._eof = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._paused = False
        self._drained: asyncio.Future[None] | None = None
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._awaiting = False  # a request has been sent and its answer is not complete
        self._dirty = False  # bytes arrived that no outstanding request asked for

    # -- asyncio.Protocol callbacks --------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Duck-typed: uvloop's transports have every method used here but do not derive
        # from ``asyncio.Transport``, so an isinstance check would refuse every connection.
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if not self._awaiting or self._framing.done:
            self._stray()
        else:
            taken = self._framing.feed(data)
            self._answer_left += taken
            if taken < len(data):
                self._stray()
        self._buffer += data
        if len(self._buffer) > _READ_HIGH_WATER and self._transport is not None:
            self._transport.pause_reading()
        self._wake()

    def _stray(self) -> None:
        self._dirty = True
        if self._upstream is not None:
            self._upstream.stray_bytes_at = time.monotonic()

    def eof_received(self) -> bool | None:
        self._eof = True
        self._wake()
        return None  # let the transport close itself

    def connection_lost(self, exc: Exception | None) -> None:
        self._eof = True
        self._error = exc
        self._wake()
        self._wake_writer()

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        self._wake_writer()

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _wake_writer(self) -> None:
        drained, self._drained = self._drained, None
        if drained is not None and not drained.done():
            drained.set_result(None)

    # -- httpcore.AsyncNetworkStream -------------------------------------------------------
    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        # Deadlines are the caller's (one asyncio.timeout over the whole call), so the
        # per-phase ``timeout`` httpcore passes along is not used.
        if self._pending:
            await self._flush()
        if self._dirty and not self._answer_left:
            raise httpcore.ReadError("unsolicited bytes on the connection")
        while not self._answer_left:
            if self._framing.ambiguous:
                raise AmbiguousFraming("ambiguous framing headers")
            if self._eof:
                if self._error is not None:
                    raise httpcore.ReadError(type(self._error).__name__)
                return b""
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
        if self._framing.ambiguous:
            raise AmbiguousFraming("ambiguous framing headers")
        size = min(max_bytes, self._answer_left)
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        self._answer_left -= size
        transport = self._transport
        if transport is not None and not transport.is_reading() and not transport.is_closing():
            transport.resume_reading()
        return data

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        # A parser may write a request in pieces (headers, body, end-of-message) and always
        # reads next: holding the pieces until then sends the request in one system call
        # (and one TCP segment to the server) instead of two or three.
        if buffer:
            self._pending.append(buffer)
            self._pending_size += len(buffer)
        if self._pending_size >= _WRITE_COALESCE:
            await self._flush()

    async def _flush(self) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            raise httpcore.WriteError("connection closed")
        if self._dirty:
            raise httpcore.WriteError("unsolicited bytes on the connection")
        data = b"".join(self._pending) if len(self._pending) > 1 else self._pending[0]
        self._pending.clear()
        self._pending_size = 0
        self._awaiting = True
        self._framing = AnswerFraming()
        transport.write(data)
        while self._paused and not transport.is_closing():
            self._drained = asyncio.get_running_loop().create_future()
            await self._drained

    def settle(self) -> bool:
        """The answer has been read in full: from now on any byte is unsolicited. True when
        the connection is clean (nothing buffered, no EOF, no stray bytes) and may be reused."""
        self._awaiting = False
        if self._buffer:
            self._stray()
        return not (self._eof or self._dirty or self._pending)

    async def aclose(self) -> None:
        # No await: closing must also work while a cancellation unwinds the caller.
        if self._transport is not None:
            self._transport.close()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        raw = self._transport
        if raw is None:  # the connection was lost before the TLS upgrade
            raise httpcore.ConnectError("the connection closed before the TLS handshake")
        try:
            tls = await loop.start_tls(raw, self, ssl_context, server_hostname=server_hostname)
        except BaseException as exc:
            if isinstance(exc, OSError | ssl.SSLError):
                raise httpcore.ConnectError(type(exc).__name__) from None
            raise
        if tls is None:
            raise httpcore.ConnectError("TLS handshake failed")
        self._tcp, self._transport = self._transport, tls
        return self

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":
            # An idle keep-alive connection with bytes or EOF pending is unusable. The loop
            # may not have seen the server's FIN yet (it is running us, not polling), so ask
            # the kernel too: reusing a connection the server just closed fails the call.
            return bool(self._buffer) or self._eof or self._dirty or self._socket_readable()
        if self._transport is None:
            return None
        key = {"client_addr": "sockname", "server_addr": "peername"}.get(info, info)
        return self._transport.get_extra_info(key)

    def _socket_readable(self) -> bool:
        sock = self._transport.get_extra_info("socket") if self._transport is not None else None
        if sock is None:
            return False
        try:
            poller = select.poll()
            poller.register(sock.fileno(), select.POLLIN)
            return bool(poller.poll(0))
        except (OSError, ValueError):
            return True  # a socket we cannot poll is not one to reuse


class AsyncioBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend on the running asyncio loop, with ``TCP_NODELAY``."""

    def __init__(self) -> None:
        self.upstream = Upstream()

    def _stream(self) -> AsyncioStream:
        return AsyncioStream(self.upstream)

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        local = (local_address, 0) if local_address else None
        try:
            # An IP literal is connected to without a lookup; a name costs asyncio's
            # getaddrinfo on its executor, once per new connection.
            _, stream = await loop.create_connection(self._stream, host, port, local_addr=local)
        except OSError as exc:
            raise httpcore.ConnectError(type(exc).__name__) from None
        sock = stream.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for option in socket_options or ():
                sock.setsockopt(*option)
        return stream

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        try:
            _, stream = await loop.create_unix_connection(self._stream, path)
        except OSError as exc:
            raise httpcore.ConnectError(type(exc).__name__) from None
        return stream

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
