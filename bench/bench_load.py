"""The corridor under load with the LLM hanging past the deadline, as real processes.

    .venv/bin/python bench/bench_load.py [--requests 2000] [--concurrency 50] [--timeout-ms 150]
        [--rounds 3] [--quads 8] [--phase-s 2] [--skip-interleaved] [--skip-lockstep] [--no-pin]

Each run prints its figures and verdicts:

1. **deadline** (``bench.apps:reference_no_breaker``: the reference app with its circuit
   breaker taken out, so that *every* request waits for the hanging LLM until the deadline):
   ``--requests`` corridor requests (all sampled) at ``--concurrency`` after a warm-up, in
   ``--rounds`` rounds, with ``GET /health`` probed every 5 ms throughout by
   ``bench/probe.py`` (its own process, on its own connection). Checks: RSS growth of the
   app process after warm-up < 20 MB; p99 of the sampled requests <= timeout + 10 ms;
   risk-log lines == outcomes (``partial_trust_decisions_total`` without ``not_sampled``)
   == requests, every line parses, nothing dropped. ``/health`` against the same app with
   no traffic at all is printed for the record.
2. **requests off the corridor** (``bench/interleave.py``): one app, one steady load, the
   real flag file flipped between killed and live in ABBA order; ``/health`` p99 with the
   corridor live within 10% of the same traffic with it killed. Budgets at the runbook's top
   stage (10%) with the breaker out, and as shipped with every request sampled; every
   request sampled with the breaker out is printed for the record. Each also checks that
   no LLM call is made in a killed phase once it settled.
3. **lock-step** (the deadline run with all callers started at once), for the record.
4. **two workers** (``bench/workers.py``: ``partial-trust serve --workers 2``, instant LLM,
   one shared risk log): every line parses, the count matches the requests and the merged
   metrics, and each worker's own share (from its prometheus multiprocess file) is shown.

The load generator is ``bench/loadgen.py``; the processes and their cores ``bench/rig.py``:
on two or more cores the app is pinned to one core and the rig (this process, llm-sim, the
probe) to the others (``Placement``; ``--no-pin`` turns it off). The fast versions are
``tests/integration/test_load.py`` and ``tests/integration/test_interleave.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.interleave import InterleavedReport, run_interleaved  # noqa: E402
from bench.loadgen import (  # noqa: E402
    corridor_load,
    pct,
    rss_mb,
    rss_sampler,
    sched_s,
    settle_risk_log,
)
from bench.rig import (  # noqa: E402
    HealthProbe,
    Placement,
    app_process,
    idle_health,
    load_env,
    metric_samples,
    place_rig,
    sim_process,
)
from bench.workers import run_two_workers  # noqa: E402

RSS_BUDGET_MB = 20.0
DEADLINE_SLACK_MS = 10.0
IDLE_PROBES = 800  # before and after the load, half each: a p99 of 200 is its 2nd worst


# --- the runs -------------------------------------------------------------------------------
@dataclass
class LoadReport:
    label: str
    requests: int
    concurrency: int
    timeout_ms: int
    warmup: int
    spread_s: float = 0.0
    rounds: int = 1  # measured phases of ``requests`` each, on the same app
    round_health_p99: list[float] = field(default_factory=list)  # ``/health`` p99 per round
    round_rss_mb: list[float] = field(default_factory=list)  # the app's RSS after each round
    statuses: Counter[int] = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)
    health_idle_ms: list[float] = field(default_factory=list)
    health_load_ms: list[float] = field(default_factory=list)
    rss_start_mb: float = 0.0
    rss_warm_mb: float = 0.0
    rss_end_mb: float = 0.0
    rss_max_mb: float = 0.0
    lines: int = 0
    torn: int = 0
    outcomes: float = 0.0
    not_sampled: float = 0.0
    risk_log: dict[str, float] = field(default_factory=dict)
    reasons: Counter[str] = field(default_factory=Counter)
    llm_latency_ms: list[float] = field(default_factory=list)
    elapsed_s: float = 0.0
    placement: Placement | None = None
    cpu_s: float = 0.0  # the app's event-loop thread's CPU time in the measured phase
    runqueue_s: float = 0.0  # ... and its time runnable but waiting for a core

    @property
    def measured(self) -> int:
        """Requests in the measured phases (all rounds)."""
        return self.requests * self.rounds

    @property
    def loop_ms_per_request(self) -> float:
        """Event-loop time (running, or runnable and waiting for a core) per request."""
        return (self.cpu_s + self.runqueue_s) / max(self.measured, 1) * 1000

    @property
    def sent(self) -> int:
        return self.warmup + self.measured

    @property
    def p99_ms(self) -> float:
        return pct(self.latencies_ms, 99)

    @property
    def rss_growth_mb(self) -> float:
        return max(self.rss_end_mb, self.rss_max_mb) - self.rss_warm_mb

    @property
    def health_idle_p99(self) -> float:
        return pct(self.health_idle_ms, 99)

    @property
    def health_load_p99(self) -> float:
        return pct(self.health_load_ms, 99)

    @property
    def arrivals(self) -> str:
        return f"staggered over {self.spread_s * 1000:.0f} ms" if self.spread_s else "lock-step"

    def lines_match(self) -> bool:
        return (
            self.torn == 0
            and self.lines == self.outcomes == self.sent
            and self.risk_log.get("dropped", 0) == 0
            and self.risk_log.get("failed", 0) == 0
        )

    def verdicts(self) -> list[tuple[str, bool]]:
        budget = self.timeout_ms + DEADLINE_SLACK_MS
        return [
            (f"every answer 200 ({dict(self.statuses)})", set(self.statuses) == {200}),
            (
                f"RSS growth after warm-up {self.rss_growth_mb:.1f} MB < {RSS_BUDGET_MB:.0f} MB",
                self.rss_growth_mb < RSS_BUDGET_MB,
            ),
            (
                f"sampled p99 {self.p99_ms:.1f} ms <= timeout + {DEADLINE_SLACK_MS:.0f} = "
                f"{budget:.0f} ms",
                self.p99_ms <= budget,
            ),
            (
                f"risk log: {self.lines} lines, {self.torn} torn, outcomes {self.outcomes:.0f}, "
                f"sent {self.sent}, risk-log records {self.risk_log}",
                self.lines_match(),
            ),
        ]

    def print(self) -> None:
        lat = self.latencies_ms
        print(
            f"\n== {self.label}: {self.requests} requests"
            + (f" x {self.rounds} rounds" if self.rounds > 1 else "")
            + f" (+{self.warmup} warm-up) at "
            f"concurrency {self.concurrency}, arrivals {self.arrivals}, LLM hanging, "
            f"timeout {self.timeout_ms} ms, {self.elapsed_s:.1f} s"
        )
        print(
            f"sampled latency ms: p50 {pct(lat, 50):.1f}  p90 {pct(lat, 90):.1f}  "
            f"p99 {pct(lat, 99):.1f}  max {max(lat, default=float('nan')):.1f}  "
            f"(LLM wait in the risk log: p50 {pct(self.llm_latency_ms, 50):.1f}  "
            f"p99 {pct(self.llm_latency_ms, 99):.1f})"
        )
        print(
            f"/health ms, for the record (the budget is the interleaved runs'): no traffic p50 "
            f"{pct(self.health_idle_ms, 50):.2f} p99 {self.health_idle_p99:.2f} "
            f"(n={len(self.health_idle_ms)}); under this load p50 "
            f"{pct(self.health_load_ms, 50):.2f} p99 {self.health_load_p99:.2f} "
            f"(n={len(self.health_load_ms)})"
        )
        print(
            f"RSS MB: start {self.rss_start_mb:.1f}, after warm-up {self.rss_warm_mb:.1f}, "
            f"max {self.rss_max_mb:.1f}, end {self.rss_end_mb:.1f}"
        )
        per_req = self.cpu_s / max(self.measured, 1) * 1e6
        print(
            f"app event loop: CPU {per_req:.0f} µs per request, busy "
            f"{self.cpu_s / max(self.elapsed_s, 1e-9):.0%} of one core; waited "
            f"{self.runqueue_s:.2f} s in the run queue for a core during the "
            f"{self.elapsed_s:.1f} s run; machine load {os.getloadavg()[0]:.2f}"
        )
        if self.rounds > 1:
            per_round = ", ".join(f"{x:.2f}" for x in self.round_health_p99)
            print(f"/health p99 under load per round: {per_round} ms (pooled above)")
            rss = ", ".join(f"{x:.1f}" for x in self.round_rss_mb)
            print(f"RSS MB after each round: {rss}")
        if self.placement is not None:
            print(f"placement: {self.placement}")
        print("outcomes: " + ", ".join(f"{k} {v}" for k, v in sorted(self.reasons.items())))
        for text, ok in self.verdicts():
            print(f"  [{'PASS' if ok else 'MISS'}] {text}")


def collect_outcomes(report: LoadReport, url: str, risk_log: Path) -> None:
    lines, report.torn = settle_risk_log(risk_log, report.sent)
    report.lines = len(lines)
    report.reasons = Counter(f"{x['status']}/{x['reason_code']}" for x in lines)
    report.llm_latency_ms = [x["latency_ms"] for x in lines if x.get("latency_ms") is not None]
    for labels, value in metric_samples(url, "partial_trust_decisions_total"):
        if labels["reason"] == "not_sampled":
            report.not_sampled += value
        else:
            report.outcomes += value
    for labels, value in metric_samples(url, "partial_trust_risk_log_records_total"):
        report.risk_log[labels["result"]] = report.risk_log.get(labels["result"], 0) + value


async def _drive(report: LoadReport, port: int, pid: int, probe_interval_s: float) -> None:
    """Idle probes, warm-up, then ``rounds`` measured phases with idle probes between and
    after: a p99 of ~1,150 probes moves by ~30% from run to run, so rounds pool samples,
    and interleaving the idle ones lets drift hit both sides alike."""
    idle_n = IDLE_PROBES // (report.rounds + 1)
    report.rss_start_mb = rss_mb(pid)
    report.health_idle_ms += await asyncio.to_thread(idle_health, port, idle_n, probe_interval_s)
    await corridor_load(port, report.warmup, report.concurrency, "warm", report.spread_s)
    await asyncio.sleep(0.3)
    report.rss_warm_mb = rss_mb(pid)
    stop = asyncio.Event()
    rss: list[float] = []
    sampler = asyncio.create_task(rss_sampler(pid, stop, rss))
    for r in range(report.rounds):
        probe = HealthProbe(port, probe_interval_s)
        run0, wait0 = sched_s(pid)
        started = time.perf_counter()
        latencies, statuses = await corridor_load(
            port, report.requests, report.concurrency, f"load{r}", report.spread_s
        )
        report.elapsed_s += time.perf_counter() - started
        run1, wait1 = sched_s(pid)
        report.cpu_s += run1 - run0
        report.runqueue_s += wait1 - wait0
        report.latencies_ms += latencies
        report.statuses.update(statuses)
        health = probe.result(stop=True)
        report.round_health_p99.append(pct(health, 99))
        report.health_load_ms += health
        report.health_idle_ms += await asyncio.to_thread(
            idle_health, port, idle_n, probe_interval_s
        )
        report.round_rss_mb.append(rss_mb(pid))
    stop.set()
    await sampler
    await asyncio.sleep(0.3)
    report.rss_end_mb = rss_mb(pid)
    report.rss_max_mb = max(rss, default=report.rss_end_mb)


def run_load(
    tmp: Path,
    *,
    requests: int,
    concurrency: int,
    timeout_ms: int,
    warmup: int,
    spread: bool = True,
    probe_interval_s: float = 0.005,
    placement: Placement | None = None,
    rounds: int = 1,
) -> LoadReport:
    """One load run against a fresh app with its breaker taken out and a hanging llm-sim;
    see the module docstring. ``spread`` staggers the callers over one deadline (see
    ``corridor_load``). ``placement`` pins the app to its own core and llm-sim to the others
    (the caller pins itself: the probe inherits it)."""
    spread_s = timeout_ms / 1000 if spread else 0.0
    report = LoadReport("deadline (breaker off)", requests, concurrency, timeout_ms, warmup)
    report.spread_s = spread_s
    report.placement = placement
    report.rounds = rounds
    risk_log = tmp / f"risk-deadline-{'spread' if spread else 'lockstep'}.jsonl"
    with sim_process(tmp, "--force", "hang", "--hang-max-s", "60", placement=placement) as sim:
        env = load_env(f"{sim.url}/v1", risk_log, timeout_ms)
        with app_process(tmp, env, breaker=False, placement=placement) as app:
            asyncio.run(_drive(report, app.port, app.process.pid, probe_interval_s))
            collect_outcomes(report, app.url, risk_log)
    return report


def run_interleaved_cases(
    tmp: Path, args: argparse.Namespace, placement: Placement | None
) -> list[InterleavedReport]:
    """Requests off the corridor, live against killed (``bench/interleave.py``): at the
    runbook's top stage with every sampled call hanging, and as shipped with every request
    sampled (both budgets); then every request sampled with the breaker out, the worst case
    no runbook stage reaches, for the record."""
    cases = [
        ("requests off the corridor: stage 3 (10%), breaker off", 0.1, False, True),
        ("requests off the corridor: as shipped, every request sampled", 1.0, True, True),
        ("requests off the corridor: every request sampled, breaker off", 1.0, False, False),
    ]
    reports = []
    for label, rate, breaker, verdict in cases:
        report = run_interleaved(
            tmp,
            label=label,
            sample_rate=rate,
            breaker=breaker,
            verdict=verdict,
            timeout_ms=args.timeout_ms,
            concurrency=args.concurrency,
            quads=args.quads,
            phase_s=args.phase_s,
            placement=placement,
        )
        report.print()
        reports.append(report)
    return reports


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--timeout-ms", type=int, default=150)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument(
        "--skip-interleaved", action="store_true", help="no killed/live interleaved runs"
    )
    parser.add_argument(
        "--quads", type=int, default=8, help="ABBA quads per interleaved run (default 8)"
    )
    parser.add_argument(
        "--phase-s", type=float, default=2.0, help="seconds per interleaved phase (default 2)"
    )
    parser.add_argument(
        "--skip-lockstep", action="store_true", help="no lock-step (worst case) deadline run"
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="measured phases per run, pooled (default 3)"
    )
    parser.add_argument(
        "--no-pin", action="store_true", help="leave every process on every core (see Placement)"
    )
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="pt-bench-load-"))
    placement = place_rig(not args.no_pin)  # this process, and the probes it starts
    print(
        f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}; "
        f"{placement or 'no pinning'}; files in {tmp}"
    )
    common: dict[str, Any] = {
        "requests": args.requests,
        "concurrency": args.concurrency,
        "timeout_ms": args.timeout_ms,
        "warmup": args.warmup,
        "placement": placement,
        "rounds": args.rounds,
    }
    deadline = run_load(tmp, **common)
    deadline.print()
    interleaved = [] if args.skip_interleaved else run_interleaved_cases(tmp, args, placement)
    if not args.skip_lockstep:
        # The worst case, printed for the record: every deadline of the 50 callers expires
        # in the same millisecond, so the last answer of each bunch waits for the other 49.
        lockstep = run_load(tmp, spread=False, **common)
        lockstep.print()
    workers = run_two_workers(tmp, requests=args.requests, concurrency=args.concurrency)
    workers.print()
    verdicts = deadline.verdicts() + [v for r in interleaved for v in r.verdicts()]
    ok = all(ok for _, ok in verdicts) and workers.ok()
    print(f"\nall within the DESIGN budgets: {ok}; machine load now {os.getloadavg()[0]:.2f}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
