"""Shadow mode's paced runs (``bench_shadow.py``): an open load, the same offered load on
every app, so latency and the share of the sample shadow records are compared, not capacity.

- ``hanging``: the LLM hangs (``llm-sim --force hang``); the p99 of the requests a 10% sample
  shadows, corridor off vs shadow (budget 3 of ``bench_shadow.py``).
- ``below_saturation``: an instant LLM and a load well under the worker's capacity; how many
  of the sampled requests got a verdict, and the drops by cause. Shadow takes the loop's spare
  time (``loop_load.LoopLoad``), so here it should record nearly all of its sample, where a
  saturated worker (``bench_shadow.py``'s throughput run) keeps only a trickle.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from pathlib import Path

from bench.bench_middleware import body_for
from bench.loadgen import Connection, pct, post_bytes
from bench.rig import metric_samples, pin, place_rig, sim_process
from bench.shadow_servers import SAMPLE, metric_value, shadow_env, uvicorn_app
from partial_trust.middleware.sampling import is_sampled

BUDGET_P99 = 1.10


async def mixed_load(
    port: int, n: int, concurrency: int, prefix: str, rate: float | None = None
) -> list[float]:
    """``n`` POST /route, fresh ids: latencies (ms) of the requests a 10% sample shadows (the
    same ids on every app, so the corridor-off run measures the same ones). With ``rate``
    (requests/s in all) each caller is paced to its share of it (an open load: the same
    offered load on every app); without, a closed loop at saturation."""
    ids = iter(range(n))
    shadowed: list[float] = []
    gap = concurrency / rate if rate else 0.0

    async def caller(k: int) -> None:
        conn = await Connection.open(port)
        next_at = time.perf_counter() + gap * k / concurrency
        try:
            for i in ids:
                if gap:
                    await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
                    next_at += gap
                command_id = f"{prefix}-{i}"
                raw = post_bytes(port, "/route", body_for(command_id))
                started = time.perf_counter()
                status, _ = await conn.request(raw)
                elapsed = (time.perf_counter() - started) * 1000
                if status != 200:
                    raise RuntimeError(f"HTTP {status}")
                if is_sampled("add_shopping_item", command_id, SAMPLE):
                    shadowed.append(elapsed)
        finally:
            await conn.close()

    await asyncio.gather(*(caller(k) for k in range(concurrency)))
    return shadowed


def hanging(tmp: Path, n: int, rounds: int, concurrency: int, rate: float) -> dict[str, float]:
    """The budget's run is the paced one: the same offered load on both apps. The closed loop
    at saturation is printed for the record: there every request waits behind ``concurrency``
    others, so its p99 is ``concurrency`` x the CPU per request, a throughput figure (budget 2
    measures that) rather than the wait a shadowed request adds."""
    saved = os.sched_getaffinity(0)
    placement = place_rig()
    with contextlib.ExitStack() as stack:
        stack.callback(os.sched_setaffinity, 0, saved)
        sim = stack.enter_context(sim_process(tmp, "--force", "hang", placement=placement))
        url = f"{sim.url}/v1"
        servers = {
            "corridor off": stack.enter_context(
                uvicorn_app(tmp, "corridor", shadow_env(url, tmp / "off.jsonl", SAMPLE, False))),
            "shadow, hanging LLM": stack.enter_context(
                uvicorn_app(tmp, "corridor", shadow_env(url, tmp / "hang.jsonl", SAMPLE))),
        }  # fmt: skip
        for s in servers.values():
            if placement is not None:
                pin(s.process.pid, placement.app)
            asyncio.run(mixed_load(s.port, 500, concurrency, "warm"))
        if placement is not None:
            print(f"\nplacement: {placement}")
        figures: dict[str, float] = {}
        for label, pace in (("paced", rate), ("closed loop", None)):
            # Pooled over the interleaved rounds: a p99 of one round's ~400 shadowed requests
            # is its 4th-slowest, which one scheduler hiccup moves by 2x.
            pooled: dict[str, list[float]] = {k: [] for k in servers}
            ratios = []
            for r in range(rounds):
                order = list(servers)[r % 2 :] + list(servers)[: r % 2]
                got = {}
                for name in order:
                    port = servers[name].port
                    lat = asyncio.run(mixed_load(port, n, concurrency, f"{label[0]}{r}", pace))
                    got[name] = pct(lat, 99)
                    pooled[name] += lat
                ratios.append(got["shadow, hanging LLM"] / got["corridor off"])
            off, hung = pct(pooled["corridor off"], 99), pct(pooled["shadow, hanging LLM"], 99)
            ratio = hung / off
            load = f"paced at {rate:.0f} req/s" if pace else "closed loop, saturated"
            verdict = f"(budget <= {BUDGET_P99})" if pace else "(for the record)"
            print(f"\nhanging LLM, {concurrency} callers x {n} requests x {rounds} rounds, {load}, "
                  f"10% shadowed; p99 of those ({len(pooled['corridor off'])} per app, pooled) "
                  f"off {off:.2f} ms, shadow {hung:.2f} ms, ratio {ratio:.2f} {verdict}; p50 off "
                  f"{pct(pooled['corridor off'], 50):.2f}, shadow "
                  f"{pct(pooled['shadow, hanging LLM'], 50):.2f}; per-round p99 ratios "
                  f"{', '.join(f'{x:.2f}' for x in ratios)}")  # fmt: skip
            figures["hanging_p99_ratio" if pace else "hanging_closed_loop_ratio"] = ratio
        shadow_url = servers["shadow, hanging LLM"].url
        dropped = metric_value(shadow_url, "partial_trust_shadow_dropped_total")
        shed = metric_value(shadow_url, "partial_trust_shadow_shed_total")
        print(f"shadow jobs dropped (queue full or over the loop share): {dropped:.0f}; "
              f"requests shed (not looked at): {shed:.0f}")  # fmt: skip
    return figures


def below_saturation(tmp: Path, rate: float, n: int, concurrency: int) -> dict[str, float]:
    """One shadow app (the default share, an instant LLM), paced at ``rate`` requests/s: the
    share of its 10% sample it recorded a verdict for, and the drops by cause."""
    saved = os.sched_getaffinity(0)
    placement = place_rig()
    with contextlib.ExitStack() as stack:
        stack.callback(os.sched_setaffinity, 0, saved)
        sim = stack.enter_context(sim_process(tmp, "--latency-ms", "0", placement=placement))
        env = shadow_env(f"{sim.url}/v1", tmp / "below.jsonl", SAMPLE)
        server = stack.enter_context(uvicorn_app(tmp, "corridor", env))
        if placement is not None:
            pin(server.process.pid, placement.app)
        started = time.perf_counter()
        shadowed = asyncio.run(mixed_load(server.port, n, concurrency, "below", rate))
        elapsed = time.perf_counter() - started
        time.sleep(1.0)  # the last jobs' verdicts
        recorded = metric_value(server.url, "partial_trust_agreement_total")
        drops = {labels["cause"]: v for labels, v in
                 metric_samples(server.url, "partial_trust_shadow_dropped_total")}  # fmt: skip
        shed = metric_value(server.url, "partial_trust_shadow_shed_total")
    share = recorded / len(shadowed) if shadowed else 0.0
    dropped = ", ".join(f"{k} {v:.0f}" for k, v in drops.items())
    print(f"\nbelow saturation: {n} requests paced at {rate:.0f} req/s (achieved "
          f"{n / elapsed:.0f}), 10% sample, instant LLM, default share: verdicts recorded "
          f"{recorded:.0f} of {len(shadowed)} sampled ({share:.0%}); dropped {dropped}; requests "
          f"shed {shed:.0f}; p99 {pct(shadowed, 99):.2f} ms")  # fmt: skip
    return {"below_saturation_recorded_share": share}
