"""A real Prometheus scrapes the real app: its totals equal the requests sent.

With one worker and with two (prometheus-client multiprocess mode set up by
``partial-trust serve --workers 2``), ``sum(partial_trust_decisions_total)`` queried over
Prometheus' HTTP API must equal the number of corridor requests, every outcome included.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tests.alerts.monitoring import prometheus_config, query, run_prometheus, wait_until
from tests.integration.stack import BASE_ENV, llm_sim, shopping_command
from tests.support.procs import Server, free_port, partial_trust, run_server

pytestmark = pytest.mark.integration


def _scalar(prometheus: Server, expr: str) -> float | None:
    answer = query(prometheus, expr)
    result = answer["data"]["result"]
    return float(result[0]["value"][1]) if result else None


@pytest.mark.parametrize("workers", [1, 2])
def test_scraped_totals_equal_the_requests_sent(tmp_path: Path, workers: int) -> None:
    port = free_port()
    log = tmp_path / "risk.jsonl"
    with llm_sim(tmp_path, "--error-rate", "0.1", "--wrong-intent-rate", "0.1") as sim:
        env = {
            **BASE_ENV,
            "PARTIAL_TRUST_SAMPLE_RATE": "0.5",
            "LLM_BASE_URL": f"{sim.url}/v1",
            "PARTIAL_TRUST_RISK_LOG_PATH": str(log),
        }
        argv = partial_trust(
            "serve", "--port", str(port), "--workers", str(workers), "--log-level", "warning"
        )
        with run_server(
            argv, port=port, ready_path="/health", log_path=tmp_path / "app.log", env=env
        ) as app:
            bodies: list[object] = [shopping_command(f"scrape-{i}") for i in range(150)]
            bodies += [
                shopping_command(f"timer-{i}", text="set a timer for 5 minutes") for i in range(20)
            ]
            bodies += [b'{"command_id": 1}'] * 10
            with httpx.Client(timeout=10) as client:
                for body in bodies:
                    content = body if isinstance(body, bytes) else json.dumps(body).encode()
                    assert client.post(f"{app.url}/route", content=content).status_code in (
                        200,
                        422,
                    )
            config = prometheus_config(
                targets=[f"127.0.0.1:{port}"], rule_files=[], alertmanager=None, interval="1s"
            )
            (tmp_path / "prom").mkdir()
            with run_prometheus(tmp_path / "prom", config) as prometheus:
                total = "sum(partial_trust_decisions_total)"
                assert wait_until(lambda: _scalar(prometheus, total) == len(bodies), 20), (
                    _scalar(prometheus, total),
                    len(bodies),
                )
                by_reason = query(
                    prometheus, "sum by (status, reason) (partial_trust_decisions_total) > 0"
                )
                seen = {
                    (r["metric"]["status"], r["metric"]["reason"])
                    for r in by_reason["data"]["result"]
                }
                assert ("skipped", "not_sampled") in seen
                assert ("skipped", "corridor_mismatch") in seen
                assert ("skipped", "invalid_command") in seen
                assert ("accepted_llm", "accepted") in seen
                sampled = _scalar(
                    prometheus, 'sum(partial_trust_decisions_total{status!="skipped"})'
                )
                hist = _scalar(prometheus, "sum(partial_trust_llm_latency_seconds_count)")
                assert sampled is not None and sampled > 0 and hist == sampled
