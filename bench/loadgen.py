"""The load generator of the load benches: a minimal HTTP/1.1 client and what it measures.

The client is a keep-alive HTTP/1.1 connection on asyncio streams (one per concurrent
caller): httpx spends about 1-2 ms of CPU per request on this kind of machine, which on 2
cores would compete with the app and inflate its latencies.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench.bench_middleware import body_for

RISK_LOG_FIELDS = frozenset(
    {
        "timestamp",
        "schema",
        "corridor",
        "command_key",
        "status",
        "reason_code",
        "sampled",
        "latency_ms",
    }
)


# --- a minimal HTTP/1.1 client --------------------------------------------------------------
class Connection:
    """One keep-alive HTTP/1.1 connection; answers must carry a content-length (uvicorn's do)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> Connection:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        return status, await self.reader.readexactly(length)

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()


def post_bytes(port: int, path: str, body: bytes) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\ncontent-type: application/json"
        f"\r\ncontent-length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def get_bytes(port: int, path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\n\r\n".encode()


# --- measurements ---------------------------------------------------------------------------
def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def sched_s(pid: int) -> tuple[float, float]:
    """Seconds the main (event-loop) thread of ``pid`` has run on a CPU, and has waited
    runnable for one (``/proc/<pid>/task/<pid>/schedstat``)."""
    fields = Path(f"/proc/{pid}/task/{pid}/schedstat").read_text().split()
    return int(fields[0]) / 1e9, int(fields[1]) / 1e9


def pct(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank) of ``values``; NaN when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


async def corridor_load(
    port: int,
    n: int,
    concurrency: int,
    prefix: str,
    spread_s: float = 0.0,
    pace_s: float = 0.0,
    stop: asyncio.Event | None = None,
) -> tuple[list[float], Counter[int]]:
    """``n`` POST /route with distinct command ids at ``concurrency``: latencies (ms), statuses.

    ``spread_s`` staggers the callers' first requests evenly over that many seconds. Without
    it all callers start at once and, since every request lasts exactly the deadline, they
    stay in lock-step for the whole run: 50 deadlines expire in the same millisecond, again
    and again, which real clients never do. Both shapes are measured (see ``main``).
    ``pace_s``: each caller sends at most one request per ``pace_s`` (the corridor-off
    reference run uses the deadline, so it sees the same request rate as the hung run)."""
    counter = itertools.count()
    latencies: list[float] = []
    statuses: Counter[int] = Counter()

    async def caller(k: int) -> None:
        conn = await Connection.open(port)
        try:
            await asyncio.sleep(spread_s * k / concurrency)
            while (i := next(counter)) < n and not (stop is not None and stop.is_set()):
                raw = post_bytes(port, "/route", body_for(f"{prefix}-{i}"))
                started = time.perf_counter()
                status, _ = await conn.request(raw)
                elapsed = time.perf_counter() - started
                latencies.append(elapsed * 1000)
                statuses[status] += 1
                if pace_s > elapsed:
                    await asyncio.sleep(pace_s - elapsed)
        finally:
            await conn.close()

    await asyncio.gather(*(caller(k) for k in range(concurrency)))
    return latencies, statuses


async def rss_sampler(pid: int, stop: asyncio.Event, out: list[float]) -> None:
    while not stop.is_set():
        out.append(rss_mb(pid))
        await asyncio.sleep(0.05)


def read_risk_log(path: Path) -> tuple[list[dict[str, Any]], int]:
    """The parsed lines and how many are torn (not one complete JSON object per line)."""
    if not path.exists():
        return [], 0
    data = path.read_bytes()
    torn = 0 if not data or data.endswith(b"\n") else 1
    parsed: list[dict[str, Any]] = []
    for line in data.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            torn += 1
            continue
        if not isinstance(record, dict) or not record.keys() >= RISK_LOG_FIELDS:
            torn += 1
            continue
        parsed.append(record)
    return parsed, torn


def settle_risk_log(path: Path, expected: int, timeout_s: float = 10.0) -> tuple[list[Any], int]:
    """The risk log once it holds ``expected`` lines (the writer thread appends in batches)."""
    deadline = time.monotonic() + timeout_s
    lines, torn = read_risk_log(path)
    while len(lines) + torn < expected and time.monotonic() < deadline:
        time.sleep(0.05)
        lines, torn = read_risk_log(path)
    return lines, torn
