"""The LLM client's connections: httpcore's HTTP/1.1 over plain asyncio.

Why not ``httpx.AsyncClient`` on the request path: measured against a local LLM double, one
call through it cost ~970 µs of the app's CPU, most of it outside HTTP itself (URL merging,
cookie extraction, and a pool that re-examines every connection, with an O(n²) idle count,
on every request and every release). A sampled request has ~300 µs in the DESIGN's budget.

So the HTTP/1.1 protocol stays httpcore's (``AsyncHTTPConnection``, the well-kept
implementation under httpx, which respx also patches in unit tests), and two small parts are
ours: a network backend on an ``asyncio.Protocol`` (httpcore's documented extension point;
its default goes through anyio's stream layers), here, and a pool for one origin that hands
out the most recently used idle connection and looks at no other (``llm_pool``). The host's
addresses come from ``resolver.AddressCache``, not from a lookup per connection.
"""

from __future__ import annotations

import asyncio
import select
import socket
import ssl
import sys
import time
from collections.abc import Iterable
from typing import Any, cast

import httpcore

from partial_trust.middleware.llm_framing import (
    AmbiguousFraming,
    Upstream,
    ambiguous_framing,
    head_fields,
)
from partial_trust.middleware.resolver import AddressCache, connect_host

#: Bytes of a request held back before they are sent without waiting for the read.
_WRITE_COALESCE = 64 * 1024
#: Bytes buffered from the server before reading pauses: a runaway answer is refused at the
#: client's cap (256 kB by default) and must not fill memory while that happens.
_READ_HIGH_WATER = 256 * 1024


#: The most of a response's header block looked at for its framing headers.
_HEAD_LIMIT = 64 * 1024


class AsyncioStream(asyncio.Protocol, httpcore.AsyncNetworkStream):
    """One TCP (or TLS) connection as httpcore wants it: ``read``, ``write``, ``aclose``.

    It also keeps the rule that makes a keep-alive connection safe to share between users:
    the only bytes it may carry are the answer to the request just sent. Bytes that arrive
    while no request is outstanding (an upstream or proxy that answered twice, or sent more
    than it framed) make the stream *dirty*: its next read fails and ``settle`` refuses it,
    so one command's answer can never be read as another's.
    """

    def __init__(self, upstream: Upstream | None = None) -> None:
        self._upstream = upstream
        self._head = bytearray()  # the current answer's header block, until it is complete
        self._head_done = False
        self._framing_error = False
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
        if not self._awaiting:
            self._stray()
        elif not self._head_done:
            self._scan_head(data)
        self._buffer += data
        if len(self._buffer) > _READ_HIGH_WATER and self._transport is not None:
            self._transport.pause_reading()
        self._wake()

    def _stray(self) -> None:
        self._dirty = True
        if self._upstream is not None:
            self._upstream.stray_bytes_at = time.monotonic()

    def _scan_head(self, data: bytes) -> None:
        """Check the answer's framing headers as they came over the wire: h11 merges
        duplicates before anyone above it can see them."""
        self._head += data
        while True:
            end = self._head.find(b"\r\n\r\n")
            if end < 0:
                if len(self._head) > _HEAD_LIMIT:
                    self._framing_error = True
                    self._head_done = True
                return
            head = bytes(self._head[:end])
            if head.startswith(b"HTTP/1.1 1") and not head.startswith(b"HTTP/1.1 101"):
                del self._head[: end + 4]  # an interim 1xx answer: the final one follows
                continue
            self._head_done = True
            self._head.clear()
            self._framing_error = ambiguous_framing(head_fields(head))
            return

    def eof_received(self) -> bool | None:
        self._eof = True
        self._wake()
        return None  # let the transport close itself

    def connection_lost(self, exc: Exception | None) -> None:
        self._eof = True
        self._error = exc
        self._wake()
        self._wake_writer()
        for transport in (self._transport, self._tcp):
            if transport is not None:
                release_transport_cycle(transport)

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
        if self._dirty:
            raise httpcore.ReadError("unsolicited bytes on the connection")
        while not self._buffer:
            if self._eof:
                if self._error is not None:
                    raise httpcore.ReadError(type(self._error).__name__)
                return b""
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
        if self._framing_error:
            raise AmbiguousFraming("ambiguous framing headers")
        data = bytes(self._buffer[:max_bytes])
        del self._buffer[:max_bytes]
        transport = self._transport
        if transport is not None and not transport.is_reading() and not transport.is_closing():
            transport.resume_reading()
        return data

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        # httpcore writes a request as headers, body and end-of-message, and always reads
        # next: holding the pieces until then sends the request in one system call (and
        # one TCP segment to the server) instead of two or three.
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
        self._head_done = self._framing_error = False
        self._head.clear()
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
            # A handshake that failed or was cancelled by the deadline: asyncio has closed the
            # socket's transport, whose protocol was the TLS layer, so our connection_lost
            # never runs. Release it here, or it waits for the cyclic collector.
            if raw.is_closing():
                release_transport_cycle(raw)
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


def release_transport_cycle(transport: asyncio.BaseTransport) -> None:
    """Drop the bound method a closed selector transport keeps of itself (CPython < 3.12).

    Python 3.11's ``_SelectorSocketTransport`` stores ``self._read_ready_cb``, a method of
    itself, so a closed transport, its socket and their dicts are freed only by the cyclic
    garbage collector (gh-100348; 3.12 releases it on close). Under a hanging LLM every call
    ends on a new connection, and the young-generation collections that then free ~40 dead
    transports at a time took 1.5-2.8 ms each inside the app, on the event loop, which is
    what other requests' tail latency saw (``bench/bench_load.py``). Called from
    ``connection_lost``, when the transport has left the selector and never reads again
    (under TLS the socket's transport has already passed it to the TLS layer by then).
    """
    if sys.version_info < (3, 12) and getattr(transport, "_read_ready_cb", None) is not None:
        transport._read_ready_cb = None  # type: ignore[attr-defined]  # CPython private (3.11)


class AsyncioBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend on the running asyncio loop, with ``TCP_NODELAY`` and the
    host's addresses from an ``AddressCache`` (not a lookup per connection)."""

    def __init__(self, addresses: AddressCache | None = None) -> None:
        self.addresses = addresses if addresses is not None else AddressCache()
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
            candidates = await self.addresses.resolve(host, port)
        except OSError as exc:
            raise httpcore.ConnectError(type(exc).__name__) from None
        error: OSError | None = None
        for address in candidates:  # in getaddrinfo's order, as asyncio itself tries them
            try:
                _, stream = await loop.create_connection(
                    self._stream, connect_host(address), port, family=address[0], local_addr=local
                )
                break
            except OSError as exc:
                error = exc
        else:
            raise httpcore.ConnectError(type(error).__name__)
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
