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
from collections.abc import Iterable
from typing import Any

import httpcore

from middleware.resolver import AddressCache, connect_host

#: Bytes of a request held back before they are sent without waiting for the read.
_WRITE_COALESCE = 64 * 1024
#: Bytes buffered from the server before reading pauses: a runaway answer is refused at the
#: client's cap (256 kB by default) and must not fill memory while that happens.
_READ_HIGH_WATER = 256 * 1024


class AsyncioStream(asyncio.Protocol, httpcore.AsyncNetworkStream):
    """One TCP (or TLS) connection as httpcore wants it: ``read``, ``write``, ``aclose``."""

    def __init__(self) -> None:
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

    # -- asyncio.Protocol callbacks --------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if len(self._buffer) > _READ_HIGH_WATER and self._transport is not None:
            self._transport.pause_reading()
        self._wake()

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
        while not self._buffer:
            if self._eof:
                if self._error is not None:
                    raise httpcore.ReadError(type(self._error).__name__)
                return b""
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
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
        data = b"".join(self._pending) if len(self._pending) > 1 else self._pending[0]
        self._pending.clear()
        self._pending_size = 0
        transport.write(data)
        while self._paused and not transport.is_closing():
            self._drained = asyncio.get_running_loop().create_future()
            await self._drained

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
        assert raw is not None
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
            return bool(self._buffer) or self._eof or self._socket_readable()
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
        transport._read_ready_cb = None  # type: ignore[attr-defined]


class AsyncioBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend on the running asyncio loop, with ``TCP_NODELAY`` and the
    host's addresses from an ``AddressCache`` (not a lookup per connection)."""

    def __init__(self, addresses: AddressCache | None = None) -> None:
        self.addresses = addresses if addresses is not None else AddressCache()

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
                    AsyncioStream, connect_host(address), port, family=address[0], local_addr=local
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
            _, stream = await loop.create_unix_connection(AsyncioStream, path)
        except OSError as exc:
            raise httpcore.ConnectError(type(exc).__name__) from None
        return stream

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
