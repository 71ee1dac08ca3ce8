#!/usr/bin/env python3
"""Benchmark ``partial-trust analyze`` against ``jq`` on one generated risk log, same run.

Targets (issue 6): >= 1M lines/s, <= 100 MB peak memory, >= 5x faster than jq computing the
same counts. Peak memory is measured two ways, because the analyzer may fan out to worker
processes: ``ru_maxrss`` of the analyzer process (wait4) and the sampled sum of RSS over its
whole process tree (what the machine actually pays). jq counts by status, reason_code,
intent_match and entity_key_match plus the latency count; it does not compute latency_p95
(it would need every value in memory), so the comparison favours jq.

The log is generated fast: one block of distinct canonical lines, rewritten per repetition
with a later hour prefix, so the file spans many hours like a real one.

    .venv/bin/python bench/bench_analyzer.py               # 10M lines (~4 GB in a temp dir)
    .venv/bin/python bench/bench_analyzer.py --lines 200000
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from partial_trust.apps.analysis.selftest import canonical  # noqa: E402
from partial_trust.outcome import STATUS_REASONS  # noqa: E402

BLOCK_LINES = 10_000
HOUR0 = b"2026-11-23T00"
JQ_PROGRAM = (
    "reduce inputs as $r ({}; .status[$r.status] += 1 | .reason[$r.reason_code] += 1"
    " | .intent[$r.intent_match|tostring] += 1 | .entity[$r.entity_key_match|tostring] += 1"
    ' | .latencies += (if $r.status != "skipped" and $r.latency_ms != null then 1 else 0 end))'
)


def block(rng: random.Random) -> bytes:
    """BLOCK_LINES distinct lines in one hour: mostly accepted, some fallback/error/skipped."""
    weights = {"accepted_llm": 80.0, "fallback_deterministic": 2.0, "error": 1.0, "skipped": 1.0}
    pairs = [(s.value, r.value) for s, r in STATUS_REASONS]
    lines = []
    for i in range(BLOCK_LINES):
        status, reason = rng.choices(pairs, [weights[s] for s, _ in pairs])[0]
        called = status != "skipped" and reason != "circuit_open"
        parsed = status in ("accepted_llm", "fallback_deterministic")
        ts = f"{HOUR0.decode()}:{i * 3600 // BLOCK_LINES // 60:02d}:{i % 60:02d}.{i % 1000:03d}Z"
        lat = round(rng.lognormvariate(4.9, 0.4), 2) if called else None
        intent = (reason != "intent_mismatch") if parsed else None
        entity = (rng.random() < 0.9) if parsed else None
        key = f"{rng.getrandbits(96):024x}"
        lines.append(canonical((ts, status, reason, lat, intent, entity), key))
    return ("\n".join(lines) + "\n").encode()


def generate(path: Path, n: int) -> None:
    data = block(random.Random(6))
    t0 = datetime.strptime(HOUR0.decode(), "%Y-%m-%dT%H").replace(tzinfo=UTC)
    with path.open("wb") as f:
        for k in range(n // BLOCK_LINES):
            hour = (t0 + timedelta(hours=k // 4)).strftime("%Y-%m-%dT%H").encode()
            f.write(data.replace(HOUR0, hour) if k // 4 else data)
        rest = n % BLOCK_LINES
        if rest:
            f.write(b"".join(data.splitlines(keepends=True)[:rest]))


def _tree_rss_kb(root: int) -> int:
    """Sum of VmRSS over ``root`` and its descendants (``/proc/<pid>/task/*/children``)."""
    total, todo, seen = 0, [root], set()
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        try:
            for task in Path(f"/proc/{pid}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except (OSError, ValueError):
            continue
    return total


def measure(cmd: list[str], stdout: int | None = subprocess.DEVNULL) -> dict[str, float]:
    """Wall and CPU time, ru_maxrss (MB) of the process, sampled peak RSS of its tree (MB).

    CPU seconds matter on a shared machine: wall time there measures the neighbours too.
    """
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=stdout, stderr=subprocess.PIPE)
    peak = [0]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.05):
            peak[0] = max(peak[0], _tree_rss_kb(proc.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    done.set()
    sampler.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        err = proc.stderr.read().decode() if proc.stderr else ""
        raise SystemExit(f"{cmd[0]} failed ({proc.returncode}): {err}")
    cpu = usage.ru_utime + usage.ru_stime  # includes the workers the analyzer waited for
    return {"wall": wall, "cpu": cpu, "maxrss": usage.ru_maxrss / 1024, "tree": peak[0] / 1024}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--lines", type=int, default=10_000_000)
    ap.add_argument("--dir", help="where to write the log (default: a temp dir, removed after)")
    ap.add_argument("--skip-jq", action="store_true")
    args = ap.parse_args()
    tmp = Path(args.dir or tempfile.mkdtemp(prefix="pt-bench-"))
    tmp.mkdir(parents=True, exist_ok=True)
    try:
        log = tmp / "partial_trust_risk.jsonl"
        t = time.perf_counter()
        generate(log, args.lines)
        size = log.stat().st_size
        took = time.perf_counter() - t
        print(f"generated {args.lines:,} lines, {size / 1e6:,.0f} MB in {took:.1f} s")
        rows: list[tuple[str, dict[str, float]]] = []
        counts: dict[str, Any] = {}  # the analyzer's JSON report
        for jobs in ("1", "0"):
            out = tmp / f"report-{jobs}.json"
            cmd = [
                sys.executable,
                "-m",
                "partial_trust.apps.cli",
                "analyze",
                "--risk-log",
                str(log),
            ]
            cmd += ["--no-progress", "--jobs", jobs, "--output-json", str(out)]
            rows.append((f"analyze --jobs {'auto' if jobs == '0' else jobs}", measure(cmd)))
            counts = json.loads(out.read_text())
        jq = shutil.which("jq")
        if jq and not args.skip_jq:
            jq_out = tmp / "jq.json"
            with jq_out.open("wb") as f:
                rows.append(
                    (
                        "jq (same counts, no p95)",
                        measure([jq, "-n", "-c", JQ_PROGRAM, str(log)], f.fileno()),
                    )
                )
            jq_counts = json.loads(jq_out.read_text())
            same = (
                jq_counts["status"] == {k: v for k, v in counts["status_counts"].items() if v}
                and jq_counts["reason"] == counts["reason_counts"]
            )
            print(f"jq and analyzer counts agree: {same}")
        jq_row = next((r for name, r in rows if name.startswith("jq")), None)
        head = f"{'tool':<28}{'wall s':>8}{'lines/s':>12}{'cpu s':>8}{'lines/cpu-s':>13}"
        print(f"\n{head}{'maxrss MB':>11}{'tree MB':>9}{'vs jq wall':>12}{'vs jq cpu':>11}")
        for name, r in rows:
            ratio = f"{jq_row['wall'] / r['wall']:.1f}x" if jq_row else "-"
            cpu_ratio = f"{jq_row['cpu'] / r['cpu']:.1f}x" if jq_row else "-"
            rate, cpu_rate = args.lines / r["wall"], args.lines / r["cpu"]
            print(
                f"{name:<28}{r['wall']:>8.2f}{rate:>12,.0f}{r['cpu']:>8.2f}{cpu_rate:>13,.0f}"
                f"{r['maxrss']:>11.1f}{r['tree']:>9.1f}{ratio:>12}{cpu_ratio:>11}"
            )
        load = os.getloadavg()[0]
        print(f"\nload average at the end: {load:.2f} on {os.cpu_count()} CPUs")
        p95, n = counts["latency_p95"], counts["latency_count"]
        print(f"latency_p95 = {p95} ms over {n:,} values")
    finally:
        if not args.dir:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
