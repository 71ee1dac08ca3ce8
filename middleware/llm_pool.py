"""The LLM client's keep-alive connections to its one origin: a LIFO pool over httpcore.

httpx's pool re-examines every connection (``has_expired``, a socket poll, an O(n²) idle
count) on every request and every release; this one hands out the most recently used idle
connection and looks at no other, refuses at once past ``max_connections`` instead of
queueing (a queued call would only spend its deadline waiting), and never lets two calls
share a connection. The connections themselves are ``llm_transport``'s.
"""

from __future__ import annotations

import ssl
import time

import httpcore

from partial_trust.middleware.llm_transport import AsyncioBackend

#: How long an upstream that sent stray bytes gets a fresh connection for every call.
QUARANTINE_S = 300.0


class ConnectionLimitError(Exception):
    """More calls in flight than the pool allows; the caller fails fast instead of queueing."""


def check_pool_limits(
    owner: str, max_connections: int, max_idle: int, keepalive_expiry: float
) -> None:
    """The one rule for a keep-alive pool's limits, shared by every pool of LLM connections."""
    if max_connections < 1 or max_idle < 0 or keepalive_expiry <= 0:
        raise ValueError(f"{owner} needs max_connections >= 1, max_idle >= 0, keepalive_expiry > 0")


class OriginPool:
    """Keep-alive connections to one origin, most recently used first.

    A request takes the newest idle connection (dropping any that expired or saw EOF while
    idle), or opens one; ``release`` puts it back if the exchange ended cleanly and there is
    room, else closes it. Only the connection at hand is ever inspected.
    """

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
        check_pool_limits("OriginPool", max_connections, max_idle, keepalive_expiry)
        self.url = httpcore.URL(url)
        if self.url.scheme not in (b"http", b"https"):
            raise ValueError(f"the LLM URL must be http or https, got {url!r}")
        self.origin = self.url.origin
        self._max_connections = max_connections
        self._max_idle = max_idle
        self._keepalive = keepalive_expiry
        self._ssl = ssl_context
        self._backend = network_backend or AsyncioBackend()
        self._idle: list[httpcore.AsyncHTTPConnection] = []
        self._closed = False
        self.in_use = 0

    @property
    def quarantined(self) -> bool:
        """Whether this upstream sent stray bytes lately: then no connection is reused, so
        a copy still on its way can never land inside the next call's exchange."""
        upstream = getattr(self._backend, "upstream", None)
        seen = getattr(upstream, "stray_bytes_at", -float("inf"))
        return time.monotonic() - seen < QUARANTINE_S

    def acquire(self, *, fresh: bool = False) -> httpcore.AsyncHTTPConnection:
        """The newest usable idle connection, or a new one (always new with ``fresh``)."""
        if self.in_use >= self._max_connections:
            raise ConnectionLimitError(f"{self._max_connections} LLM calls already in flight")
        idle = self._idle
        if idle and not fresh and self.quarantined:
            fresh = True
            for conn in idle:
                _close_soon(conn)
            idle.clear()
        while idle and not fresh:
            conn = idle.pop()
            if conn.is_idle() and not conn.has_expired():
                self.in_use += 1
                return conn
            _close_soon(conn)
        self.in_use += 1
        conn = httpcore.AsyncHTTPConnection(
            self.origin,
            ssl_context=self._ssl,
            keepalive_expiry=self._keepalive,
            network_backend=self._backend,
        )
        return conn

    def answered(self, conn: httpcore.AsyncHTTPConnection, stream: object) -> bool:
        """Whether ``conn``, whose answer was just read in full, carries nothing more.

        Our stream hands the HTTP parser exactly one answer and keeps anything after it
        (``AsyncioStream.settle``), so nothing can wait inside httpcore for the next call.
        Another backend's stream cannot promise that: its connection is reused only when
        nothing at all is waiting on it. Stray bytes quarantine the upstream
        (``quarantined``).
        """
        settle = getattr(stream, "settle", None)
        if settle is not None:
            return bool(settle())
        if not isinstance(stream, httpcore.AsyncNetworkStream):
            return False
        return not stream.get_extra_info("is_readable")

    def release(self, conn: httpcore.AsyncHTTPConnection, *, reusable: bool) -> None:
        self.in_use -= 1
        # After ``aclose`` a call still in flight may release: close it, never keep it.
        if (
            reusable
            and not self._closed
            and conn.is_idle()
            and len(self._idle) < self._max_idle
            and not self.quarantined
        ):
            self._idle.append(conn)
        else:
            _close_soon(conn)

    async def aclose(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for conn in idle:
            await conn.aclose()

    @property
    def idle_count(self) -> int:
        return len(self._idle)


def _close_soon(conn: httpcore.AsyncHTTPConnection) -> None:
    """Close a connection without awaiting in the caller's path: our stream's ``aclose``
    never suspends, so driving the coroutine one step finishes it."""
    coro = conn.aclose()
    try:
        coro.send(None)
    except StopIteration:
        return
    except Exception:  # a close that fails leaves nothing to clean up
        return
    coro.close()  # another backend suspended: give up on a graceful close
