"""Risk-log faults on the real app: the disk is full, the path is unwritable, then it heals.

Requests keep getting the right answers, the failure is counted and shown on /health, and
the log recovers by itself once the fault ends: no restart, no 5xx, no stall.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.integration.stack import (
    llm_sim,
    metric_value,
    read_lines,
    reference_app,
    shopping_command,
)

pytestmark = pytest.mark.integration


def _post_all(url: str, n: int, prefix: str) -> None:
    with httpx.Client(timeout=10) as client:
        for i in range(n):
            response = client.post(f"{url}/route", json=shopping_command(f"{prefix}-{i}"))
            assert response.status_code == 200
            assert response.json()["intent"] == "add_shopping_item"


def _health(url: str) -> dict[str, object]:
    risk_log: dict[str, object] = httpx.get(f"{url}/health", timeout=5).json()["partial_trust"][
        "risk_log"
    ]
    return risk_log


def _wait(predicate: Callable[[], object], timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_full_disk_is_counted_and_never_fails_a_request(tmp_path: Path) -> None:
    with (
        llm_sim(tmp_path) as sim,
        reference_app(tmp_path, f"{sim.url}/v1", PARTIAL_TRUST_RISK_LOG_PATH="/dev/full") as (
            app,
            _,
        ),
    ):
        _post_all(app.url, 20, "full")
        assert _wait(
            lambda: (
                metric_value(app, "partial_trust_risk_log_records_total", {"result": "failed"})
                == 20
            )
        )
        health = _health(app.url)
        assert health["writable"] is False and health["last_error"] == "ENOSPC"
        assert metric_value(app, "partial_trust_risk_log_records_total", {"result": "written"}) == 0


def test_unwritable_path_recovers_when_the_fault_ends(tmp_path: Path) -> None:
    log = tmp_path / "risk.jsonl"
    log.mkdir()  # a directory where the file should be: every write fails (EISDIR)
    with (
        llm_sim(tmp_path) as sim,
        reference_app(tmp_path, f"{sim.url}/v1", PARTIAL_TRUST_RISK_LOG_PATH=str(log)) as (app, _),
    ):
        _post_all(app.url, 10, "broken")
        assert _wait(
            lambda: (
                metric_value(app, "partial_trust_risk_log_records_total", {"result": "failed"})
                == 10
            )
        )
        assert _health(app.url)["writable"] is False
        shutil.rmtree(log)  # the operator fixes the path; no restart
        _post_all(app.url, 10, "healed")
        assert _wait(lambda: len(read_lines(log)) == 10)
        assert _health(app.url)["writable"] is True
        lines = read_lines(log)  # every line parses: json.loads raises on a torn one
        assert {line["status"] for line in lines} <= {"accepted_llm", "fallback_deterministic"}
        written = metric_value(app, "partial_trust_risk_log_records_total", {"result": "written"})
        assert written == 10
