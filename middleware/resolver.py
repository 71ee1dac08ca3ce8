"""The LLM host's addresses, looked up once per TTL rather than for every new connection.

Why: asyncio resolves a host name for each new connection with ``getaddrinfo`` on the default
executor's threads. Under a hanging LLM every call ends on a new connection, so every sampled
request would pay a thread hop (measured here: 290-320 µs of CPU per connection to
``localhost`` against 145-185 µs to ``127.0.0.1``) and, with an uncaching system resolver, a
DNS round trip inside its deadline; a few slow lookups fill the executor's handful of threads
and every connect waits behind them. So one lookup per host per ``ttl_s`` (aiohttp's default
is also 10 s), shared by all callers that need it meanwhile, and never cancelled by one
caller's deadline. Once a host has been found, callers never wait for DNS again: an expired
answer keeps serving while one refresh runs in the background, and keeps serving if that
refresh fails (RFC 8767's "serve stale"), so a slow or failed DNS server neither spends a
call's deadline nor takes the LLM away from a corridor that was working.
"""

from __future__ import annotations

import asyncio
import ipaddress
import math
import socket
import time
from typing import Any

#: (address family, socket address) as ``getaddrinfo`` gives them, in its order.
Address = tuple[int, tuple[Any, ...]]


class AddressCache:
    """Host name → addresses, per (host, port), for ``ttl_s`` seconds."""

    def __init__(self, ttl_s: float = 10.0) -> None:
        if isinstance(ttl_s, bool) or not isinstance(ttl_s, int | float):
            raise ValueError(f"ttl_s must be a number of seconds, got {ttl_s!r}")
        if not (ttl_s > 0 and math.isfinite(ttl_s)):
            raise ValueError(f"ttl_s must be a finite number of seconds > 0, got {ttl_s!r}")
        self._ttl = float(ttl_s)
        self._answers: dict[tuple[str, int], tuple[float, list[Address]]] = {}
        self._lookups: dict[tuple[str, int], asyncio.Future[list[Address]]] = {}

    async def resolve(self, host: str, port: int) -> list[Address]:
        """The addresses to try, in order. An IP literal is its own answer, with no lookup.
        Raises ``OSError`` (``socket.gaierror`` mostly) only when the host was never found."""
        key = (host, port)
        cached = self._answers.get(key)
        if cached is None and (literal := _literal(host, port)) is not None:
            # Parsed once, then served from the cache like any answer, forever.
            cached = self._answers[key] = (math.inf, [literal])
        if cached is not None:
            if cached[0] <= time.monotonic() and key not in self._lookups:
                self._start(host, port)  # refresh behind the callers' backs
            # Stale or not, the last answer serves at once: a slow or failing DNS server
            # must not spend any call's deadline once the host has been found.
            return cached[1]
        lookup = self._lookups.get(key) or self._start(host, port)
        # Shielded: the caller's deadline may cancel its own wait, never the shared lookup.
        return await asyncio.shield(lookup)

    def _start(self, host: str, port: int) -> asyncio.Future[list[Address]]:
        lookup = self._lookups[(host, port)] = asyncio.ensure_future(self._lookup(host, port))
        lookup.add_done_callback(_retrieve)
        return lookup

    async def _lookup(self, host: str, port: int) -> list[Address]:
        key = (host, port)
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_STREAM
            )
            addresses: list[Address] = [(int(fam), addr) for fam, _, _, _, addr in infos]
            if not addresses:
                raise socket.gaierror(socket.EAI_NONAME, "no address")
            self._answers[key] = (time.monotonic() + self._ttl, addresses)
            return addresses
        finally:
            self._lookups.pop(key, None)


def connect_host(address: Address) -> str:
    """The host string to connect to for ``address``: an IPv6 scope id stays attached."""
    family, sockaddr = address
    host = str(sockaddr[0])
    if family == socket.AF_INET6 and len(sockaddr) >= 4 and sockaddr[3] and "%" not in host:
        host = f"{host}%{sockaddr[3]}"
    return host


def _literal(host: str, port: int) -> Address | None:
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None
    family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
    return family, (host, port)


def _retrieve(lookup: asyncio.Future[list[Address]]) -> None:
    # Every caller may have given up (their deadlines) before a failed lookup ended: read the
    # exception so asyncio does not log it as never retrieved.
    if not lookup.cancelled():
        lookup.exception()
