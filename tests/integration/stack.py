"""The reference app and llm-sim as real processes on 127.0.0.1, for integration tests."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from tests.support.procs import Server, free_port, partial_trust, run_server

BASE_ENV = {
    "PARTIAL_TRUST_FLAGS_PROVIDER": "env",
    "PARTIAL_TRUST_ENABLED": "true",
    "PARTIAL_TRUST_SAMPLE_RATE": "1",
    "PARTIAL_TRUST_TIMEOUT_MS": "150",
    "LLM_POLICY_ENABLED": "true",
    "PARTIAL_TRUST_HASH_KEY": "integration-test-key",
}


@contextmanager
def llm_sim(tmp_path: Path, *args: str) -> Iterator[Server]:
    port = free_port()
    with run_server(
        partial_trust("llm-sim", "--port", str(port), *args),
        port=port,
        ready_path="/health",
        log_path=tmp_path / f"llm-sim-{port}.log",
    ) as server:
        yield server


@contextmanager
def reference_app(
    tmp_path: Path, llm_url: str, name: str = "app", **env: str
) -> Iterator[tuple[Server, Path]]:
    port = free_port()
    risk_log = tmp_path / f"{name}-risk.jsonl"
    full_env = {
        **BASE_ENV,
        "LLM_BASE_URL": llm_url,
        "PARTIAL_TRUST_RISK_LOG_PATH": str(risk_log),
        **env,
    }
    with run_server(
        partial_trust("serve", "--port", str(port), "--log-level", "warning"),
        port=port,
        ready_path="/health",
        log_path=tmp_path / f"{name}.log",
        env=full_env,
    ) as server:
        yield server, risk_log


def shopping_command(
    command_id: str, text: str = "add milk and two eggs to my shopping list", **extra: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "command_id": command_id,
        "user_id": "u-1",
        "text": text,
        "capabilities": ["start_job"],
        "context": {"default_list_id": "l-1", "lists": ["l-1", "l-2"]},
    }
    body.update(extra)
    return body


def sim_force(sim: Server, mode: str) -> None:
    httpx.post(f"{sim.url}/sim/config", json={"force": mode}, timeout=5).raise_for_status()


def sim_calls(sim: Server) -> int:
    return int(httpx.get(f"{sim.url}/sim/stats", timeout=5).json()["total"])


def read_lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def metric_value(app: Server, name: str, labels: dict[str, str]) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"{app.url}/metrics", timeout=5).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


def wait_lines(path: Path, count: int, timeout_s: float = 5.0) -> list[dict[str, Any]]:
    """The risk log once it holds ``count`` lines: the writer thread appends in batches."""
    import time

    deadline = time.monotonic() + timeout_s
    lines = read_lines(path)
    while len(lines) < count and time.monotonic() < deadline:
        time.sleep(0.02)
        lines = read_lines(path)
    return lines
