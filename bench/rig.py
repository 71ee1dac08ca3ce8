"""The processes a load bench runs: llm-sim, the app, the ``/health`` probe, and their cores.

The load generator, llm-sim and the probe are the test rig, not the system under test; in
production they are other machines (``Placement``).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.support.procs import PYTHON, Server, free_port, partial_trust, run_server

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class ProbeSamples:
    """One probe's run: whether it ran at real-time priority, and ``(sent at, ms)`` pairs
    (``sent at`` on ``time.monotonic()``, the same clock in every process)."""

    realtime: bool
    sent_ms: list[tuple[float, float]]

    @property
    def latencies(self) -> list[float]:
        return [ms for _, ms in self.sent_ms]


class HealthProbe:
    """``bench/probe.py`` in its own process: ``GET /health`` every ``interval_s``.

    Not a task on this loop: here it would queue behind the 50 callers' answers and measure
    the load generator as much as the app (the figures before this change did)."""

    def __init__(self, port: int, interval_s: float, count: int | None = None) -> None:
        argv = [PYTHON, "-m", "bench.probe", "--port", str(port), "--realtime"]
        argv += ["--interval-ms", str(interval_s * 1000)]
        if count is not None:
            argv += ["--count", str(count)]
        self.process = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE)

    def samples(self, *, stop: bool) -> ProbeSamples:
        """What the probe measured, stopping it first when ``stop``."""
        if stop:
            self.process.send_signal(signal.SIGTERM)
        out, _ = self.process.communicate(timeout=120)
        if self.process.returncode != 0:
            raise RuntimeError(f"the /health probe failed ({self.process.returncode})")
        data = json.loads(out)
        return ProbeSamples(bool(data["realtime"]), [(t, ms) for t, ms in data["samples"]])

    def result(self, *, stop: bool) -> list[float]:
        """Latencies (ms), stopping the probe first when ``stop``."""
        return self.samples(stop=stop).latencies


def idle_health(port: int, count: int, interval_s: float) -> list[float]:
    return HealthProbe(port, interval_s, count).result(stop=False)


@dataclass(frozen=True)
class Placement:
    """The app's own core, and the cores of everything else the bench runs.

    The load generator, llm-sim and the probe are the test rig, not the system under test;
    in production they are other machines. On 2 cores they would otherwise take the app's
    core from it at random moments, and ``/health`` would measure the Linux scheduler."""

    app: frozenset[int]
    rest: frozenset[int]

    @classmethod
    def split(cls) -> Placement | None:
        """The highest allowed core for the app, the others for the rest; None on 1 core."""
        cpus = sorted(os.sched_getaffinity(0))
        return cls(frozenset(cpus[-1:]), frozenset(cpus[:-1])) if len(cpus) > 1 else None

    def __str__(self) -> str:
        app, rest = sorted(self.app), sorted(self.rest)
        return f"app pinned to core {app}; load generator, llm-sim and probe to {rest}"


def place_rig(pinning: bool = True) -> Placement | None:
    """The split (``Placement.split``) with this process, the load generator, moved to the
    rig's cores, so the rig processes it starts later inherit them; ``None`` when not
    ``pinning`` or on one core."""
    placement = Placement.split() if pinning else None
    if placement is not None:
        os.sched_setaffinity(0, placement.rest)
    return placement


def pin(pid: int, cpus: frozenset[int]) -> None:
    """Every thread of ``pid`` (affinity is per thread; later ones inherit the creator's)."""
    for tid in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(ProcessLookupError):
            os.sched_setaffinity(int(tid), cpus)


def load_env(llm_url: str, risk_log: Path, timeout_ms: int) -> dict[str, str]:
    return {
        "PARTIAL_TRUST_FLAGS_PROVIDER": "env",
        "PARTIAL_TRUST_ENABLED": "true",
        "PARTIAL_TRUST_SAMPLE_RATE": "1",
        "PARTIAL_TRUST_TIMEOUT_MS": str(timeout_ms),
        "LLM_POLICY_ENABLED": "true",
        "PARTIAL_TRUST_HASH_KEY": "load-bench-key",
        "LLM_BASE_URL": llm_url,
        "PARTIAL_TRUST_RISK_LOG_PATH": str(risk_log),
    }


@contextlib.contextmanager
def sim_process(tmp: Path, *args: str, placement: Placement | None = None) -> Iterator[Server]:
    port = free_port()
    argv = partial_trust("llm-sim", "--port", str(port), "--log-level", "critical", *args)
    with run_server(argv, port=port, ready_path="/health", log_path=tmp / f"sim-{port}.log") as s:
        if placement is not None:
            pin(s.process.pid, placement.rest)
        yield s


@contextlib.contextmanager
def app_process(
    tmp: Path,
    env: dict[str, str],
    *,
    breaker: bool,
    workers: int = 1,
    placement: Placement | None = None,
) -> Iterator[Server]:
    port = free_port()
    if breaker or workers > 1:
        argv = partial_trust(
            "serve", "--port", str(port), "--log-level", "warning", "--workers", str(workers)
        )
    else:
        argv = [
            PYTHON,
            "-m",
            "uvicorn",
            "bench.apps:reference_no_breaker",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
        ]
    with run_server(
        argv, port=port, ready_path="/health", env=env, log_path=tmp / f"app-{port}.log"
    ) as server:
        if placement is not None:
            pin(server.process.pid, placement.app)
        yield server


def metric_samples(url: str, name: str) -> list[tuple[dict[str, str], float]]:
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"{url}/metrics", timeout=10).text
    return [
        (dict(s.labels), float(s.value))
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name
    ]
