"""The LLM call's own CPU cost: ``LLMClient`` against a real ``llm-sim`` process.

    .venv/bin/python bench/bench_llm_client.py [--calls 3000] [--concurrency 1 8] [--rounds 3]

For each concurrency, ``--calls`` sequential-per-worker calls of the corridor's real request
through ``LLMClient`` over each ``LLMTransport``: the default (``HttptoolsTransport``: llhttp's
parser on our asyncio stream, with a LIFO pool), ``H11Transport`` (h11 over the same pool and
stream, the default until llhttp took over), aiohttp's ``ClientSession``, httpcore's public
``AsyncConnectionPool`` (its own anyio backend, and our asyncio backend), and an
``httpx.AsyncClient`` (the proxy path); httpcore's HTTP/1.1 connection in our own pool, the
default until 2026-12-07, cost about twice the default per call and was removed that day.
Printed: this process's CPU µs per call (``time.process_time``, so the simulator's own CPU
is not counted), wall µs per call, and CPU relative to the default; rounds interleave the
transports, medians are shown. The issue's rule: keep the well-kept library wherever it is
within 10% of the hand-written one.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_middleware import body_for
from bench.llm_transports import AiohttpTransport, HttpcorePoolTransport
from partial_trust.contracts import CommandDTO
from partial_trust.middleware.candidate import chat_request
from partial_trust.middleware.llm_client import LLMClient
from partial_trust.middleware.llm_h11 import H11Transport
from partial_trust.middleware.llm_seam import HttpxTransport, LLMTransport
from partial_trust.middleware.llm_transport import AsyncioBackend
from tests.support.procs import free_port, partial_trust

REPO = Path(__file__).resolve().parents[1]
COMMAND = CommandDTO.model_validate_json(body_for("c-1"))
REQUEST = chat_request(COMMAND, model="m", temperature=0.0, max_tokens=256)


def start_sim(port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        partial_trust("llm-sim", "--host", "127.0.0.1", "--port", str(port), "--latency-ms", "0"),
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/sim/stats", timeout=1).raise_for_status()
            return proc
        except httpx.HTTPError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("llm-sim did not start")


async def run(client: LLMClient, calls: int, concurrency: int) -> tuple[float, float]:
    per_worker = max(1, calls // concurrency)

    async def worker() -> None:
        for _ in range(per_worker):
            await client.complete(REQUEST, timeout_s=5.0)

    await worker()  # warm the pool
    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    n = per_worker * concurrency
    return (time.process_time() - cpu) / n * 1e6, (time.perf_counter() - wall) / n * 1e6


DEFAULT = "default (HttptoolsTransport)"
#: Each transport, made fresh per round for the completions URL (None: the client's default).
TRANSPORTS: dict[str, Callable[[str], LLMTransport | None]] = {
    DEFAULT: lambda url: None,
    "H11Transport (h11, same pool)": H11Transport,
    "aiohttp ClientSession": lambda url: AiohttpTransport(),
    "httpcore AsyncConnectionPool": lambda url: HttpcorePoolTransport(),
    "  same, our asyncio backend": lambda url: HttpcorePoolTransport(AsyncioBackend()),
    "httpx AsyncClient": lambda url: HttpxTransport(httpx.AsyncClient()),
}


async def main(args: argparse.Namespace) -> None:
    port = free_port()
    sim = start_sim(port)
    base = f"http://127.0.0.1:{port}/v1"
    try:
        print(
            f"{'transport':<32}{'conc':>5}{'cpu µs/call':>13}{'wall µs/call':>14}"
            f"{'cpu/default':>13}"
        )
        for concurrency in args.concurrency:
            results: dict[str, list[tuple[float, float]]] = {name: [] for name in TRANSPORTS}
            for r in range(args.rounds):
                names = list(TRANSPORTS)
                for name in names[r % len(names) :] + names[: r % len(names)]:
                    transport = TRANSPORTS[name](base + "/chat/completions")
                    async with LLMClient(base, transport=transport) as client:
                        results[name].append(await run(client, args.calls, concurrency))
                    if transport is not None:
                        await transport.aclose()
            default = statistics.median(v[0] for v in results[DEFAULT])
            for name, values in results.items():
                cpu = statistics.median(v[0] for v in values)
                wall = statistics.median(v[1] for v in values)
                print(f"{name:<32}{concurrency:>5}{cpu:>13.1f}{wall:>14.1f}{cpu / default:>13.2f}")
    finally:
        sim.terminate()
        sim.wait(10)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--rounds", type=int, default=3)
    asyncio.run(main(parser.parse_args()))
