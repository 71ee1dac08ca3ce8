"""Two uvicorn workers appending to one risk log: every line parses, none lost.

Run by ``bench/bench_load.py``; the fast version is in ``tests/integration/test_load.py``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from bench.loadgen import corridor_load, settle_risk_log
from bench.rig import app_process, load_env, metric_samples, sim_process


@dataclass
class WorkersReport:
    requests: int
    statuses: Counter[int]
    lines: int
    torn: int
    outcomes: float
    per_worker: dict[int, float]

    def ok(self) -> bool:
        return (
            set(self.statuses) == {200}
            and self.torn == 0
            and self.lines == self.outcomes == self.requests
        )

    def print(self) -> None:
        print(f"\n== two workers, one risk log: {self.requests} requests, instant LLM")
        print(f"answers {dict(self.statuses)}; per worker (pid: outcomes) {self.per_worker}")
        print(
            f"  [{'PASS' if self.ok() else 'MISS'}] {self.lines} lines, {self.torn} torn, "
            f"merged outcomes {self.outcomes:.0f}, sent {self.requests}"
        )


def per_worker_outcomes(directory: Path) -> dict[int, float]:
    """Each worker's own ``partial_trust_decisions_total`` from its multiprocess file."""
    from prometheus_client.mmap_dict import MmapedDict

    shares: dict[int, float] = {}
    for path in sorted(directory.glob("counter_*.db")):
        pid = int(path.stem.rsplit("_", 1)[1])
        for key, value, *_ in MmapedDict.read_all_values_from_file(str(path)):  # type: ignore[no-untyped-call]  # prometheus_client's multiprocess API is unannotated
            name = json.loads(key)[1]
            if name == "partial_trust_decisions_total":
                shares[pid] = shares.get(pid, 0.0) + value
    return shares


def run_two_workers(tmp: Path, *, requests: int, concurrency: int) -> WorkersReport:
    risk_log = tmp / "risk-workers.jsonl"
    metrics_dir = tmp / "prom-multiproc"
    metrics_dir.mkdir(exist_ok=True)
    with sim_process(tmp, "--latency-ms", "0") as sim:
        env = load_env(f"{sim.url}/v1", risk_log, 1000)
        env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
        with app_process(tmp, env, breaker=True, workers=2) as app:
            statuses: Counter[int] = Counter()
            sent = until_both_workers_serve(app.port, concurrency, metrics_dir, statuses)
            # Several rounds of fresh connections, so the kernel hands them to both workers.
            rounds = 4
            for r in range(rounds):
                share = requests // rounds + (1 if r < requests % rounds else 0)
                _, got = asyncio.run(corridor_load(app.port, share, concurrency, f"w{r}"))
                statuses.update(got)
            sent += requests
            lines, torn = settle_risk_log(risk_log, sent)
            outcomes = sum(
                v
                for labels, v in metric_samples(app.url, "partial_trust_decisions_total")
                if labels["reason"] != "not_sampled"
            )
            per_worker = per_worker_outcomes(metrics_dir)
    return WorkersReport(sent, statuses, len(lines), torn, outcomes, per_worker)


def until_both_workers_serve(
    port: int, concurrency: int, metrics_dir: Path, statuses: Counter[int]
) -> int:
    """Rounds of fresh connections until each worker has served one: how many were sent.

    ``/health`` answers as soon as the first worker is up; on a loaded machine the second can
    still be importing while 400 instant requests finish, and then one process wrote every
    line and the run proved nothing about two writers. Bounded: a worker that never serves
    within a minute is a failure the caller sees in ``per_worker``."""
    sent = 0
    deadline = time.monotonic() + 60
    while (
        sum(1 for n in per_worker_outcomes(metrics_dir).values() if n > 0) < 2
        and time.monotonic() < deadline
    ):
        _, got = asyncio.run(corridor_load(port, concurrency, concurrency, f"up{sent}"))
        statuses.update(got)
        sent += concurrency
        time.sleep(0.1)
    return sent
