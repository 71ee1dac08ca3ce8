"""The corridor under uvicorn and ``wrk``, against a bare Starlette app measured in the same run.

    .venv/bin/python bench/bench_uvicorn.py [--duration 5] [--rounds 3] [--connections 32]
                                            [--sample-rate 0.1] [--json FILE]

Each case is its own uvicorn process (one worker, 127.0.0.1, a free port, ``--log-level
warning``, no access log; apps in ``bench/apps.py``), all started up front and driven one at a
time by ``wrk -t1`` with a Lua script that POSTs the reference CommandDTO with a fresh
``command_id`` per request. Rounds are interleaved (the case order rotates every round) so
that drift on a shared machine hits every case alike; each figure is the median over rounds,
and each ratio is the median of the per-round ratios to the bare app's run in that round.

Besides wrk's req/s and p50/p99, the server process's own CPU time per request is read from
``/proc/<pid>/stat`` around every run: on a machine shared with other work this is the
steadier figure (it does not count time the process spent waiting for a core).

The corridor cases run at ``--sample-rate`` (10%, DESIGN's figure); "not sampled" cycles
through ids that rate never takes. The two "sampled" cases call a real ``partial-trust
llm-sim --latency-ms 0`` process, whose CPU is shown apart. The first has the circuit breaker
taken out, so every sampled request really asks the LLM; the second ("breaker on") is the
app as shipped: at saturation some LLM answers wait past the 200 ms deadline in the app's
own queue, five in a row open the breaker, and for its 30 s cooldown sampled requests cost
nothing, which flatters the figure. The outcome counts of both are printed. DESIGN's target:
the first keeps >= 85% of the bare app's throughput.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.rig import pin, place_rig  # noqa: E402
from bench.uvicorn_cases import (  # noqa: E402
    SAMPLED,
    SAMPLED_H11,
    SHIPPED,
    STACKS,
    Case,
    cases,
    lua_script,
)
from tests.support.procs import PYTHON, Server, free_port, partial_trust, run_server  # noqa: E402

TARGET_RATIO = 0.85
CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass
class Run:
    rps: float
    p50_ms: float
    p99_ms: float
    cpu_us: float  # server CPU time per request
    errors: int


@dataclass
class Results:
    runs: dict[str, list[Run]] = field(default_factory=dict)
    ratios: dict[str, list[float]] = field(default_factory=dict)
    sim_cpu_us: list[float] = field(default_factory=list)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime


def wrk(url: str, script: Path, mode: str, duration: float, connections: int) -> dict[str, int]:
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(duration))}s", "--timeout", "5s"]
    out = subprocess.run(
        [*argv, "-s", str(script), url, "--", mode], capture_output=True, text=True, check=True
    ).stdout
    line = next((x for x in out.splitlines() if x.startswith("WRK_JSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no summary:\n{out}")
    result: dict[str, int] = json.loads(line.removeprefix("WRK_JSON "))
    return result


def measure(
    server: Server, case: Case, script: Path, duration: float, connections: int, sim: Server
) -> tuple[Run, float]:
    pid, sim_pid = server.process.pid, sim.process.pid
    cpu0, sim0 = cpu_seconds(pid), cpu_seconds(sim_pid)
    raw = wrk(server.url + case.path, script, case.mode, duration, connections)
    cpu1, sim1 = cpu_seconds(pid), cpu_seconds(sim_pid)
    n = max(raw["requests"], 1)
    run = Run(
        rps=raw["requests"] / (raw["duration_us"] / 1e6),
        p50_ms=raw["p50_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
        cpu_us=(cpu1 - cpu0) / n * 1e6,
        errors=raw["non2xx"] + raw["socket_errors"],
    )
    return run, (sim1 - sim0) / n * 1e6


def sampled_share(server: Server) -> tuple[float, dict[str, float]]:
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"{server.url}/metrics", timeout=5).text
    counts: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "partial_trust_decisions_total" and s.value:
                key = f"{s.labels['status']}/{s.labels['reason']}"
                counts[key] = counts.get(key, 0.0) + s.value
    total = sum(counts.values())
    sampled = total - counts.get("skipped/not_sampled", 0.0)
    return (sampled / total if total else 0.0), counts


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": sys.version.split()[0]}
    for name in (
        "uvicorn",
        "starlette",
        "starlette-exporter",
        "opentelemetry-instrumentation-asgi",
        "uvloop",
        "httptools",
    ):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "-"
    wrk_v = subprocess.run(["wrk", "--version"], capture_output=True, text=True).stdout
    out["wrk"] = wrk_v.split()[1] if wrk_v.split() else "?"
    cpu = next(
        (
            x.split(":", 1)[1].strip()
            for x in Path("/proc/cpuinfo").read_text().splitlines()
            if x.startswith("model name")
        ),
        "?",
    )
    out["machine"] = f"{os.cpu_count()} cores, {cpu}, load {os.getloadavg()[0]:.2f}"
    return out


def print_table(res: Results, order: list[str], bares: dict[str, str]) -> None:
    head = f"{'case':<28}{'req/s':>9}{'ratio':>7}{'p50 ms':>8}{'p99 ms':>8}"
    print(head + f"{'cpu µs/req':>11}{'+µs':>8}{'errors':>8}")
    for name in order:
        runs = res.runs[name]
        cpu = statistics.median(r.cpu_us for r in runs)
        bare_cpu = statistics.median(r.cpu_us for r in res.runs[bares[name]])
        print(
            f"{name:<28}{statistics.median(r.rps for r in runs):>9.0f}"
            f"{statistics.median(res.ratios[name]):>7.2f}"
            f"{statistics.median(r.p50_ms for r in runs):>8.2f}"
            f"{statistics.median(r.p99_ms for r in runs):>8.2f}"
            f"{cpu:>11.0f}{cpu - bare_cpu:>+8.0f}{sum(r.errors for r in runs):>8}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument(
        "--sample-rate", type=float, default=0.1, help="of the corridor cases (DESIGN: 0.1)"
    )
    parser.add_argument("--json", type=Path, help="also write the raw figures here")
    parser.add_argument(
        "--no-pin", action="store_true", help="leave every process on every core (see Placement)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="only bare and sampled, on both uvicorn stacks"
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed: apt-get install -y wrk", file=sys.stderr)
        return 2
    started = time.monotonic()
    placement = place_rig(not args.no_pin)  # this process, and wrk and llm-sim it starts
    tmp = Path(tempfile.mkdtemp(prefix="pt-bench-uvicorn-"))
    script = lua_script(tmp / "post.lua", args.sample_rate)
    info = versions()
    print("  ".join(f"{k} {v}" for k, v in info.items()))
    os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
    res = Results()
    with contextlib.ExitStack() as stack:
        port = free_port()
        sim = stack.enter_context(
            run_server(
                partial_trust(
                    "llm-sim", "--port", str(port), "--latency-ms", "0", "--log-level", "warning"
                ),
                port=port,
                ready_path="/health",
                log_path=tmp / "llm-sim.log",
            )
        )
        servers: dict[str, tuple[Case, Server]] = {}
        for case in cases(f"{sim.url}/v1", tmp, args.sample_rate, args.quick):
            port = free_port()
            argv = [
                PYTHON,
                "-m",
                "uvicorn",
                f"bench.apps:{case.factory}",
                "--factory",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                "1",
                "--log-level",
                "warning",
                "--no-access-log",
                "--loop",
                STACKS[case.stack][0],
                "--http",
                STACKS[case.stack][1],
            ]
            server = stack.enter_context(
                run_server(
                    argv,
                    port=port,
                    ready_path="/other",
                    env=dict(case.env),
                    log_path=tmp / f"{case.factory}-{port}.log",
                )
            )
            if placement is not None:
                pin(server.process.pid, placement.app)
            servers[case.name] = (case, server)
        order = list(servers)
        for name in order:  # warm-up: imports, caches, the LLM connection pool
            case, server = servers[name]
            measure(server, case, script, 1, args.connections, sim)
        for r in range(args.rounds):
            this_round: dict[str, Run] = {}
            for name in order[r % len(order) :] + order[: r % len(order)]:
                case, server = servers[name]
                run, sim_cpu = measure(server, case, script, args.duration, args.connections, sim)
                this_round[name] = run
                res.runs.setdefault(name, []).append(run)
                if name == SAMPLED:
                    res.sim_cpu_us.append(sim_cpu)
            for name, run in this_round.items():
                bare_rps = this_round[servers[name][0].bare].rps
                res.ratios.setdefault(name, []).append(run.rps / bare_rps)
        shown = [n for n in (SAMPLED, SHIPPED, SAMPLED_H11) if n in servers]
        outcomes = {name: sampled_share(servers[name][1]) for name in shown}
    print(f"\nplacement: {placement or 'none (every process on every core)'}")
    print_table(res, order, {n: servers[n][0].bare for n in order})
    ratios = {n: statistics.median(res.ratios[n]) for n in (SAMPLED, SAMPLED_H11)}
    ratio = min(ratios.values())
    print(
        f"\nllm-sim CPU per request of the sampled case (not in the app's figure): "
        f"{statistics.median(res.sim_cpu_us):.0f} µs"
    )
    for name, (share, counts) in outcomes.items():
        print(
            f"{name.strip()}: {share:.1%} of requests sampled; outcomes "
            + ", ".join(f"{k} {v:.0f}" for k, v in sorted(counts.items()))
        )
    verdict = "PASS" if ratio >= TARGET_RATIO else "MISS"
    print(
        f"DESIGN: sampled {args.sample_rate:.0%} with an instant LLM >= {TARGET_RATIO:.0%} of bare "
        "throughput (the target is for 10%): "
        + ", ".join(f"{n} {r:.0%}" for n, r in ratios.items())
        + f" {verdict}"
    )
    print(f"total {time.monotonic() - started:.0f} s")
    if args.json:
        payload = {
            "versions": info,
            "runs": {k: [vars(r) for r in v] for k, v in res.runs.items()},
            "ratios": res.ratios,
            "sim_cpu_us": res.sim_cpu_us,
            "outcomes": {k: v[1] for k, v in outcomes.items()},
        }
        args.json.write_text(json.dumps(payload, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
