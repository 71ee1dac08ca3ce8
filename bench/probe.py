"""A ``GET /health`` latency probe in its own process, on plain blocking sockets.

    .venv/bin/python -m bench.probe --port P [--interval-ms 5] [--count N] [--realtime]

It prints ``{"realtime": bool, "samples": [[sent at, ms], ...]}`` on stdout (``sent at`` on
``time.monotonic()``, which every process shares) when it has sent ``--count`` probes or
when it gets SIGTERM/SIGINT. Why a process of its own: a probe that shares the load
generator's event loop measures that loop's queue (50 callers' answers waiting to be read)
as much as the app's, and a probe on asyncio adds its own loop's wake-ups to every sample.
A blocking ``recv`` returns as soon as the kernel has the answer.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sys
import time
from types import FrameType


class _Stop:
    requested = False

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True


def _read_answer(sock: socket.socket, buffer: bytearray) -> int:
    """Read one HTTP/1.1 answer with a content-length; return its status."""
    while (end := buffer.find(b"\r\n\r\n")) < 0:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("the app closed the probe's connection")
        buffer += chunk
    head = bytes(buffer[:end]).decode("latin-1")
    length = 0
    for line in head.split("\r\n")[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    total = end + 4 + length
    while len(buffer) < total:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("the app closed the probe's connection")
        buffer += chunk
    del buffer[:total]
    return int(head[9:12])


def realtime_priority() -> bool:
    """Run at ``SCHED_FIFO`` priority 10 if this process may; whether it does.

    The probe shares the rig's core with the load generator, which keeps that core busy. At
    normal priority a woken probe can wait up to a scheduler slice for it, and that wait would
    be counted as the app's latency: two probes in one run, one real-time and one not, saw
    p99 1.97 against 2.14 ms and p99.9 3.5 against 4.7 ms. Needs root or CAP_SYS_NICE; the
    bench prints whether it got it.
    """
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(10))
    except (PermissionError, OSError, AttributeError):
        return False
    return True


def probe(port: int, interval_s: float, count: int, stop: _Stop) -> list[tuple[float, float]]:
    """``GET /health`` every ``interval_s`` on one keep-alive connection: for each, when it was
    sent (``time.monotonic()``, the same clock in every process) and its latency in ms."""
    raw = f"GET /health HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\n\r\n".encode()
    latencies: list[tuple[float, float]] = []
    buffer = bytearray()
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        while not stop.requested and len(latencies) < count:
            sent, started = time.monotonic(), time.perf_counter()
            sock.sendall(raw)
            status = _read_answer(sock, buffer)
            latencies.append((sent, (time.perf_counter() - started) * 1000))
            if status != 200:
                raise RuntimeError(f"/health answered {status}")
            time.sleep(interval_s)
    return latencies


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--interval-ms", type=float, default=5.0)
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument(
        "--realtime", action="store_true", help="ask for SCHED_FIFO (see realtime_priority)"
    )
    args = parser.parse_args()
    stop = _Stop()
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    realtime = args.realtime and realtime_priority()
    samples = probe(args.port, args.interval_ms / 1000, args.count, stop)
    json.dump({"realtime": realtime, "samples": samples}, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
