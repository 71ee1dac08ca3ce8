"""Hostile and slow HTTP clients on raw sockets (asyncio), for the serve-limit tests."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field


@dataclass
class Held:
    """One connection: what it was, when it was opened and closed, what the server sent."""

    kind: str
    opened: float = 0.0
    closed: float | None = None
    received: bytes = b""
    error: str = ""
    sent: int = 0

    @property
    def status(self) -> int | None:
        first = self.received.split(b"\r\n", 1)[0].split()
        return int(first[1]) if len(first) > 1 and first[1].isdigit() else None

    @property
    def held_s(self) -> float:
        return (self.closed or time.monotonic()) - self.opened


async def _read_until_closed(reader: asyncio.StreamReader, held: Held) -> None:
    try:
        while chunk := await reader.read(65536):
            held.received += chunk
    except (ConnectionError, OSError) as exc:
        held.error = type(exc).__name__
    held.closed = time.monotonic()


async def hold(
    port: int,
    kind: str,
    *,
    give_up_s: float,
    body_size: int = 1000,
    path: str = "/route",
    headers: bytes = b"",
) -> Held:
    """Open one connection that misbehaves as ``kind`` until the server closes it (or
    ``give_up_s`` passes): ``slowloris`` trickles its head one byte a second, ``upload`` sends
    a complete head announcing ``body_size`` bytes and then 10 of them, ``idle`` sends
    nothing."""
    held = Held(kind, opened=time.monotonic())
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    reading = asyncio.create_task(_read_until_closed(reader, held))
    try:
        if kind == "slowloris":
            writer.write(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        elif kind == "upload":
            writer.write(
                b"POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                b'%sContent-Length: %d\r\n\r\n{"command"' % (path.encode(), headers, body_size)
            )
        deadline = held.opened + give_up_s
        while not reading.done() and time.monotonic() < deadline:
            if kind == "slowloris":
                try:
                    writer.write(b"a")
                    held.sent += 1
                except (ConnectionError, OSError):
                    break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(reading), timeout=1.0)
    finally:
        if not reading.done():
            reading.cancel()
        writer.close()
    return held


@dataclass
class Probe:
    """GET /health over fresh connections while the hostile clients are held."""

    statuses: list[int] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)


async def probe_health(port: int, probe: Probe, stop: asyncio.Event, every_s: float = 0.25) -> None:
    while not stop.is_set():
        start = time.monotonic()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        data = await asyncio.wait_for(reader.read(), timeout=10)
        writer.close()
        probe.latencies.append(time.monotonic() - start)
        probe.statuses.append(int(data.split()[1]))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=every_s)


async def request_slowly(
    writer: asyncio.StreamWriter, reader: asyncio.StreamReader, data: bytes, over_s: float
) -> bytes:
    """Send ``data`` in 10 pieces spread over ``over_s`` seconds; the response head and body
    (read by Content-Length)."""
    step = max(1, len(data) // 10)
    for i in range(0, len(data), step):
        writer.write(data[i : i + step])
        await asyncio.sleep(over_s / 10)
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    return head + await asyncio.wait_for(reader.readexactly(length), timeout=10)
