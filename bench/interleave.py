"""Requests off the corridor with the corridor live, against the same traffic with it killed.

Run by ``bench/bench_load.py``; the fast version is ``tests/integration/test_interleave.py``.

What it answers: does the corridor, with its LLM hanging, slow down the requests it does not
own? One app process serves one steady load of corridor requests (each caller paced to one
request per deadline, so the request rate does not depend on what the corridor does) while
``GET /health`` is probed every 5 ms, and the real flag file is flipped between *killed* and
*live* with the runbook's own ``kill``/``resume``. The killed phases are the reference: the
same requests, answered by the baseline alone, in the same process and the same minute.

Why not two runs, one idle: on this 2-core VM the same app's ``/health`` p99 moved 2-3x
within a minute, so runs minutes apart cannot resolve a 10% difference; and a run with no
traffic at all measures the server, not the corridor (the baseline alone, at the same rate,
missed "within 10% of no traffic" in every run of stop 12, by 30-60%). Phases go in ABBA
order (killed, live, live, killed, ...), so a slow drift hits both alike and a linear one
cancels. A probe sent within ``SETTLE_S`` of a flip is not counted: the file provider sees a
change within its 50 ms poll, and requests admitted just before a kill still wait out their
deadline. llm-sim's call count is read at each phase's settle point and end: no call may
reach the LLM in a killed phase after it settled (the kill switch, under load).
"""

from __future__ import annotations

import asyncio
import functools
import json
import shutil
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from bench.loadgen import Connection, corridor_load, get_bytes, pct, sched_s
from bench.rig import (
    REPO,
    HealthProbe,
    Placement,
    app_process,
    idle_health,
    load_env,
    metric_samples,
    sim_process,
)
from partial_trust.flags import flagfile

SHIPPED_FLAGS = REPO / "flags" / "partial-trust.flagd.json"
HEALTH_SLACK = 0.10
SETTLE_S = 0.25
PROBE_INTERVAL_S = 0.005


def abba(quads: int) -> list[bool]:
    """Whether each phase is live: killed, live, live, killed, repeated ``quads`` times."""
    return [i % 4 in (1, 2) for i in range(4 * quads)]


@dataclass(frozen=True)
class Phase:
    live: bool
    start: float  # time.monotonic() of the flip
    end: float
    llm_calls: int  # calls llm-sim received between start + SETTLE_S and end
    loop_cpu_s: float  # the app's event-loop thread's CPU time in the phase


def by_phase(
    samples: list[tuple[float, float]], phases: list[Phase], settle_s: float = SETTLE_S
) -> list[list[float]]:
    """The probe latencies (ms) sent in each phase after it settled; others are dropped."""
    out: list[list[float]] = [[] for _ in phases]
    for sent, ms in samples:
        for k, phase in enumerate(phases):
            if phase.start + settle_s <= sent < phase.end:
                out[k].append(ms)
                break
    return out


@dataclass
class InterleavedReport:
    """One interleaved run: its phases in order, the probe latencies sent in each (after it
    settled), and what the app answered. ``verdict`` False: printed for the record."""

    label: str
    sample_rate: float
    breaker: bool
    concurrency: int
    timeout_ms: int
    phase_s: float
    verdict: bool
    phases: list[Phase] = field(default_factory=list)
    health: list[list[float]] = field(default_factory=list)  # per phase
    idle_ms: list[float] = field(default_factory=list)  # no traffic at all, before the load
    statuses: Counter[int] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)
    realtime_probe: bool = False

    def pooled(self, live: bool) -> list[float]:
        pairs = zip(self.phases, self.health, strict=True)
        return [ms for phase, health in pairs if phase.live is live for ms in health]

    def p99(self, live: bool) -> float:
        return pct(self.pooled(live), 99)

    @property
    def ratio(self) -> float:
        """The live phases' pooled ``/health`` p99 over the killed phases'."""
        return self.p99(True) / self.p99(False)

    def cpu_us_per_request(self, live: bool) -> float:
        """The app loop's CPU per corridor request in that condition (the rate is fixed)."""
        chosen = [p for p in self.phases if p.live is live]
        seconds = sum(p.end - p.start for p in chosen)
        rate = self.concurrency / (self.timeout_ms / 1000)
        return sum(p.loop_cpu_s for p in chosen) / max(seconds * rate, 1e-9) * 1e6

    def kill_held(self) -> bool:
        return all(p.llm_calls == 0 for p in self.phases if not p.live)

    def verdicts(self) -> list[tuple[str, bool]]:
        killed_calls = [p.llm_calls for p in self.phases if not p.live]
        live_calls = [p.llm_calls for p in self.phases if p.live]
        checks = [
            (f"every answer 200 ({dict(self.statuses)})", set(self.statuses) == {200}),
            (
                f"kill switch under load: LLM calls in each killed phase after "
                f"{SETTLE_S * 1000:.0f} ms {killed_calls}; in each live phase {live_calls}",
                self.kill_held() and (self.breaker or all(live_calls)),
            ),
        ]
        if self.verdict:
            budget = self.p99(False) * (1 + HEALTH_SLACK)
            checks.append(
                (
                    f"/health p99 with the corridor live {self.p99(True):.2f} ms within 10% of "
                    f"killed {self.p99(False):.2f} ms (<= {budget:.2f}; {self.ratio - 1:+.1%})",
                    self.p99(True) <= budget,
                )
            )
        return checks

    def print(self) -> None:
        n = len(self.phases)
        print(
            f"\n== {self.label}: sample rate {self.sample_rate:g}, breaker "
            f"{'on' if self.breaker else 'off'}, LLM hanging, timeout {self.timeout_ms} ms, "
            f"concurrency {self.concurrency} paced to "
            f"{self.concurrency / self.timeout_ms * 1000:.0f} req/s; {n} phases of "
            f"{self.phase_s:g} s, killed/live in ABBA order"
        )
        for live in (False, True):
            ms = self.pooled(live)
            print(
                f"/health {'live  ' if live else 'killed'}: p50 {pct(ms, 50):.2f} p99 "
                f"{pct(ms, 99):.2f} p99.9 {pct(ms, 99.9):.2f} ms (n={len(ms)}); app loop CPU "
                f"{self.cpu_us_per_request(live):.0f} µs per corridor request"
            )
        print(
            f"/health with no traffic (before the load, for the record): p50 "
            f"{pct(self.idle_ms, 50):.2f} p99 {pct(self.idle_ms, 99):.2f} ms "
            f"(n={len(self.idle_ms)}); probe at real-time priority: {self.realtime_probe}"
        )
        quads = [
            f"{pct(self.health[k] + self.health[k + 3], 99):.2f}/"
            f"{pct(self.health[k + 1] + self.health[k + 2], 99):.2f}"
            for k in range(0, n - 3, 4)
        ]
        print("/health p99 per ABBA quad, killed/live: " + " ".join(quads))
        print("outcomes: " + ", ".join(f"{k} {v}" for k, v in sorted(self.reasons.items())))
        for text, ok in self.verdicts():
            print(f"  [{'PASS' if ok else 'MISS'}] {text}")
        if not self.verdict:
            print(f"  [info] /health p99 live against killed: {self.ratio - 1:+.1%}")


class SimCalls:
    """llm-sim's count of calls received, over one kept-alive connection."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.raw = get_bytes(port, "/sim/stats")
        self.conn: Connection | None = None

    async def __call__(self) -> int:
        if self.conn is None:
            self.conn = await Connection.open(self.port)
        _, body = await self.conn.request(self.raw)
        return int(json.loads(body)["total"])

    async def close(self) -> None:
        if self.conn is not None:
            await self.conn.close()


async def _flip(path: Path, live: bool) -> None:
    # A file write and fsync; off this loop, which is also the load generator's. Resume keeps
    # the phase's rate (a plain resume restarts at stage 1, as the playbook says).
    if live:
        await asyncio.to_thread(functools.partial(flagfile.resume, path, keep_rate=True))
    else:
        await asyncio.to_thread(flagfile.kill, path)


async def _drive(
    report: InterleavedReport, port: int, pid: int, flags: Path, sim: SimCalls, quads: int
) -> None:
    timeout_s = report.timeout_ms / 1000
    await _flip(flags, True)
    await asyncio.sleep(SETTLE_S)
    await corridor_load(port, 200, report.concurrency, "warm", timeout_s, timeout_s)
    await _flip(flags, False)
    await asyncio.sleep(SETTLE_S)
    probe = HealthProbe(port, PROBE_INTERVAL_S)
    done = asyncio.Event()
    load = asyncio.create_task(
        corridor_load(port, 10**9, report.concurrency, "ab", timeout_s, timeout_s, done)
    )
    try:
        for live in abba(quads):
            start, cpu0 = time.monotonic(), sched_s(pid)[0]
            await _flip(flags, live)
            await asyncio.sleep(max(0.0, start + SETTLE_S - time.monotonic()))
            calls0 = await sim()
            await asyncio.sleep(max(0.0, start + report.phase_s - time.monotonic()))
            calls = await sim() - calls0
            end = time.monotonic()
            report.phases.append(Phase(live, start, end, calls, sched_s(pid)[0] - cpu0))
    finally:
        done.set()  # each caller ends after its current request: at most one deadline
        _, report.statuses = await load
        measured = probe.samples(stop=True)
    report.realtime_probe = measured.realtime
    report.health = by_phase(measured.sent_ms, report.phases)


def run_interleaved(
    tmp: Path,
    *,
    label: str,
    sample_rate: float,
    breaker: bool,
    verdict: bool,
    timeout_ms: int = 150,
    concurrency: int = 50,
    quads: int = 8,
    phase_s: float = 2.0,
    placement: Placement | None = None,
) -> InterleavedReport:
    """One app (breaker on: ``partial-trust serve``; off: ``bench.apps:reference_no_breaker``)
    on the file flag provider, against ``llm-sim --force hang``; see the module docstring."""
    report = InterleavedReport(
        label, sample_rate, breaker, concurrency, timeout_ms, phase_s, verdict
    )
    name = f"interleaved-{'breaker' if breaker else 'nobreaker'}-{sample_rate:g}"
    flags = tmp / f"{name}.flagd.json"
    shutil.copy(SHIPPED_FLAGS, flags)
    flagfile.set_flag(flags, flagfile.SAMPLE_RATE, sample_rate)
    flagfile.set_flag(flags, flagfile.TIMEOUT_MS, timeout_ms)
    # The shipped file starts in shadow (a bounded queue after the response); this measures
    # the runbook's canary stages, where the LLM call is on the request path.
    flagfile.set_flag(flags, flagfile.MODE, "canary")
    flagfile.kill(flags)
    with sim_process(tmp, "--force", "hang", "--hang-max-s", "60", placement=placement) as llm:
        env = load_env(f"{llm.url}/v1", tmp / f"risk-{name}.jsonl", timeout_ms)
        env |= {"PARTIAL_TRUST_FLAGS_PROVIDER": "file", "PARTIAL_TRUST_FLAGS_FILE": str(flags)}
        with app_process(tmp, env, breaker=breaker, placement=placement) as app:
            report.idle_ms = idle_health(app.port, 400, PROBE_INTERVAL_S)

            async def go() -> None:
                sim = SimCalls(llm.port)
                try:
                    await _drive(report, app.port, app.process.pid, flags, sim, quads)
                finally:
                    await sim.close()

            asyncio.run(go())
            for labels, value in metric_samples(app.url, "partial_trust_decisions_total"):
                if value:
                    report.reasons[f"{labels['status']}/{labels['reason']}"] += round(value)
    return report
