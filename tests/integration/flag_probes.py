"""Traffic, /health probes and kill routes for the hostile flag file tests (real processes)."""

from __future__ import annotations

import os
import statistics
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from tests.apps.console.helpers import AUTH, HOOK_AUTH, alert, notification
from tests.support.procs import REPO, Server, partial_trust


class HealthProbe:
    """``/health`` every 50 ms on a kept-alive connection: each answer's latency and body."""

    def __init__(self, app: Server) -> None:
        self.url = f"{app.url}/health"
        self.latencies: list[float] = []
        self.failures: list[str] = []
        self.last: dict[str, Any] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        with httpx.Client(timeout=10) as client:
            while not self._stop.is_set():
                start = time.monotonic()
                try:
                    response = client.get(self.url)
                    self.last = response.json()["partial_trust"]["flags"]
                    self.latencies.append(time.monotonic() - start)
                except (httpx.HTTPError, ValueError, KeyError) as exc:
                    self.failures.append(repr(exc))
                self._stop.wait(0.05)

    def __enter__(self) -> HealthProbe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(15)

    def wait_for(self, count: int, timeout_s: float = 10.0) -> None:
        deadline = time.monotonic() + timeout_s
        while len(self.latencies) < count and time.monotonic() < deadline:
            time.sleep(0.02)

    def summary(self) -> str:
        ms = sorted(x * 1000 for x in self.latencies)
        return (
            f"/health over {len(ms)} probes: median {statistics.median(ms):.1f} ms, "
            f"max {ms[-1]:.1f} ms"
        )


def sim_calls(client: httpx.Client, sim: Server) -> int:
    return int(client.get(f"{sim.url}/sim/stats").json()["total"])


def calls_settle(client: httpx.Client, sim: Server, since: float, window_s: float = 0.8) -> float:
    """Seconds after ``since`` of the last LLM call seen while watching for ``window_s``."""
    last, last_at = sim_calls(client, sim), since
    while time.monotonic() - since < window_s:
        count = sim_calls(client, sim)
        if count != last:
            last, last_at = count, time.monotonic()
        time.sleep(0.005)
    return last_at - since


def calls_grow(client: httpx.Client, sim: Server, timeout_s: float = 3.0) -> None:
    start, first = time.monotonic(), sim_calls(client, sim)
    while sim_calls(client, sim) == first:
        assert time.monotonic() - start < timeout_s, "LLM calls did not come back"
        time.sleep(0.005)


def health(app: Server) -> dict[str, Any]:
    flags: dict[str, Any] = httpx.get(f"{app.url}/health", timeout=5).json()["partial_trust"][
        "flags"
    ]
    return flags


def wait_health(app: Server, timeout_s: float = 3.0, **expected: object) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    flags = health(app)
    while any(flags.get(k) != v for k, v in expected.items()):
        assert time.monotonic() < deadline, f"/health never showed {expected}: {flags}"
        time.sleep(0.02)
        flags = health(app)
    return flags


def kill_cli(path: Path, audit: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        partial_trust("flags", "kill", "--file", str(path), "--reason", "hostile file drill"),
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "PARTIAL_TRUST_FLAGS_AUDIT_LOG": str(audit)},
        timeout=60,
        check=False,
    )


def kill_console(app: Server) -> httpx.Response:
    return httpx.post(
        f"{app.url}/flags/api/kill",
        json={"reason": "hostile file drill", "actor": "drill"},
        headers=AUTH,
        timeout=30,
    )


def kill_webhook(app: Server, fingerprint: str) -> httpx.Response:
    body = notification(alert(fingerprint=fingerprint))
    return httpx.post(f"{app.url}/flags/alertmanager", json=body, headers=HOOK_AUTH, timeout=30)
