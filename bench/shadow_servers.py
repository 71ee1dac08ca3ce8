"""The apps ``bench_shadow.py`` and ``shadow_paced.py`` run: uvicorn factories from
``bench/apps.py`` configured by the runbook's variables, and reading their ``/metrics``."""

from __future__ import annotations

import contextlib
from pathlib import Path

from bench.rig import metric_samples
from tests.support.procs import PYTHON, Server, free_port, run_server

#: The shadow sample of every run: the issue's 10%.
SAMPLE = 0.1


def metric_value(url: str, name: str) -> float:
    """The sum of a metric's samples on ``url``/metrics (every label set)."""
    return sum(value for _, value in metric_samples(url, name))


def uvicorn_app(
    tmp: Path, factory: str, env: dict[str, str]
) -> contextlib.AbstractContextManager[Server]:
    port = free_port()
    argv = [PYTHON, "-m", "uvicorn", f"bench.apps:{factory}", "--factory", "--host",
            "127.0.0.1", "--port", str(port), "--workers", "1", "--log-level", "warning",
            "--no-access-log"]  # fmt: skip
    return run_server(argv, port=port, ready_path="/other", env=env,
                      log_path=tmp / f"{factory}-{port}.log")  # fmt: skip


def shadow_env(llm_url: str, log: Path, rate: float, enabled: bool = True) -> dict[str, str]:
    return {
        "PARTIAL_TRUST_FLAGS_PROVIDER": "env",
        "PARTIAL_TRUST_ENABLED": "true" if enabled else "false",
        "PARTIAL_TRUST_MODE": "shadow",
        "PARTIAL_TRUST_SAMPLE_RATE": str(rate),
        "PARTIAL_TRUST_TIMEOUT_MS": "200",
        "LLM_POLICY_ENABLED": "true",
        "LLM_BASE_URL": llm_url,
        "PARTIAL_TRUST_HASH_KEY": "bench-key",
        "PARTIAL_TRUST_RISK_LOG_PATH": str(log),
    }
