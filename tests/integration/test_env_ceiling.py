"""The runbook's environment steps (export + restart) over flags that say otherwise, with a
real ``partial-trust serve`` and a real llm-sim: the stricter wins.

With the flag file on at sample rate 1.0, ``PARTIAL_TRUST_ENABLED=false`` and a restart give
zero LLM calls (file and env providers over HTTP; a host-bound InMemoryProvider in-process);
``PARTIAL_TRUST_SAMPLE_RATE=0.01`` gives exactly the commands the corridor's own sampling
picks at 1%; ``PARTIAL_TRUST_TIMEOUT_MS=50`` caps the file's 200. ``/health`` names the limit.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from openfeature import api
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.routing import Route

from partial_trust.apps.reference.app import route_endpoint
from partial_trust.environment import Environment
from partial_trust.flags import build_settings_source, flagfile
from partial_trust.flags.source import DOMAIN
from partial_trust.middleware.factory import CorridorStack
from partial_trust.middleware.sampling import is_sampled
from tests.flags.helpers import memory_provider
from tests.integration.stack import (
    BASE_ENV,
    llm_sim,
    reference_app,
    shopping_command,
    sim_calls,
)
from tests.support.procs import REPO, Server

pytestmark = pytest.mark.integration
CORRIDOR = "add_shopping_item"
REQUESTS = 40


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with llm_sim(tmp_path_factory.mktemp("ceiling-sim")) as server:
        yield server


@pytest.fixture
def flag_file_on(tmp_path: Path) -> Path:
    """The shipped flag file, switched on at sample rate 1.0 and a 200 ms timeout."""
    path = tmp_path / "partial-trust.flagd.json"
    shutil.copy(REPO / "flags" / "partial-trust.flagd.json", path)
    flagfile.set_flag(path, flagfile.SAMPLE_RATE, 1.0)
    flagfile.set_flag(path, flagfile.TIMEOUT_MS, 200)
    flagfile.resume(path, keep_rate=True)
    return path


def file_env(path: Path, **extra: str) -> dict[str, str]:
    # BASE_ENV's PARTIAL_TRUST_TIMEOUT_MS=150 would itself be a ceiling: lift it above 200
    return {
        "PARTIAL_TRUST_FLAGS_PROVIDER": "file",
        "PARTIAL_TRUST_FLAGS_FILE": str(path),
        "PARTIAL_TRUST_TIMEOUT_MS": "1000",
        **extra,
    }


def health_flags(app: Server) -> dict[str, Any]:
    flags: dict[str, Any] = httpx.get(f"{app.url}/health", timeout=5).json()["partial_trust"][
        "flags"
    ]
    return flags


def post_all(app: Server, ids: list[str]) -> None:
    with httpx.Client(timeout=10) as client:
        for command_id in ids:
            assert (
                client.post(f"{app.url}/route", json=shopping_command(command_id)).status_code
                == 200
            )


def test_enabled_false_and_a_restart_beats_the_flag_file(
    tmp_path: Path, sim: Server, flag_file_on: Path
) -> None:
    env = file_env(flag_file_on)
    with reference_app(tmp_path, f"{sim.url}/v1", "on", **env) as (app, _):
        before = sim_calls(sim)
        post_all(app, [f"on-{i}" for i in range(5)])
        assert sim_calls(sim) - before == 5  # the file really says on, at 1.0
        assert health_flags(app)["limits"]["enabled"] == "flag partial-trust-enabled"
    killed = {**env, "PARTIAL_TRUST_ENABLED": "false"}
    with reference_app(tmp_path, f"{sim.url}/v1", "killed", **killed) as (app, log):  # restart
        before = sim_calls(sim)
        post_all(app, [f"killed-{i}" for i in range(REQUESTS)])
        assert sim_calls(sim) == before  # zero LLM calls
        flags = health_flags(app)
        assert flags["provider"] == "file" and flags["flags_available"] is True
        assert flags["enabled"] is False and flags["sample_rate"] == 0.0
        assert flags["limits"]["enabled"] == "env PARTIAL_TRUST_ENABLED"
        assert not log.exists()  # corridor off: no risk-log line


def test_enabled_false_with_the_env_provider(tmp_path: Path, sim: Server) -> None:
    env = {"PARTIAL_TRUST_FLAGS_PROVIDER": "env", "PARTIAL_TRUST_ENABLED": "false"}
    with reference_app(tmp_path, f"{sim.url}/v1", "env-killed", **env) as (app, _):
        before = sim_calls(sim)
        post_all(app, [f"env-{i}" for i in range(REQUESTS)])
        assert sim_calls(sim) == before
        flags = health_flags(app)
        assert flags["enabled"] is False
        assert flags["limits"]["enabled"] == "env PARTIAL_TRUST_ENABLED"


def test_sample_rate_set_caps_the_file_exactly(
    tmp_path: Path, sim: Server, flag_file_on: Path
) -> None:
    ids = [f"rate-{i}" for i in range(600)]
    due = [i for i in ids if is_sampled(CORRIDOR, i, 0.01)]
    assert 1 <= len(due) < 20  # the fixed ids: 1% of 600 is about 6
    env = file_env(flag_file_on, PARTIAL_TRUST_SAMPLE_RATE="0.01")
    with reference_app(tmp_path, f"{sim.url}/v1", "rate", **env) as (app, _):
        flags = health_flags(app)
        assert flags["sample_rate"] == 0.01
        assert flags["limits"]["sample_rate"] == "env PARTIAL_TRUST_SAMPLE_RATE"
        before = sim_calls(sim)
        post_all(app, ids)
        assert sim_calls(sim) - before == len(due)
        before = sim_calls(sim)
        post_all(app, due)  # the very same commands are sampled again, and only they
        assert sim_calls(sim) - before == len(due)


def test_timeout_set_caps_the_file(tmp_path: Path, sim: Server, flag_file_on: Path) -> None:
    env = file_env(flag_file_on, PARTIAL_TRUST_TIMEOUT_MS="50")
    with reference_app(tmp_path, f"{sim.url}/v1", "timeout", **env) as (app, _):
        flags = health_flags(app)
        assert flags["enabled"] is True and flags["timeout_ms"] == 50
        assert flags["limits"]["timeout_ms"] == "env PARTIAL_TRUST_TIMEOUT_MS"
        effective = httpx.get(f"{app.url}/health", timeout=5).json()["partial_trust"]["effective"]
        assert effective["timeout_ms"] == 50


@pytest.mark.anyio
async def test_enabled_false_over_a_host_bound_in_memory_provider(
    tmp_path: Path, sim: Server
) -> None:
    """In-process: the host binds a real InMemoryProvider (on, 1.0) to the corridor's domain;
    the stack starts with ``PARTIAL_TRUST_ENABLED=false`` and the real llm-sim sees nothing."""
    api.shutdown()
    on = {
        flagfile.ENABLED: True,
        flagfile.SAMPLE_RATE: 1.0,
        flagfile.TIMEOUT_MS: 1000,
        flagfile.PROFILE_ID: "",
    }
    results: dict[str, int] = {}
    try:
        for name, enabled in (("on", "true"), ("killed", "false")):
            api.set_provider(memory_provider(on), DOMAIN)
            env = {
                **BASE_ENV,
                "PARTIAL_TRUST_FLAGS_FILE": str(tmp_path / "unused.json"),
                "PARTIAL_TRUST_ENABLED": enabled,
                "PARTIAL_TRUST_TIMEOUT_MS": "1000",
                "LLM_BASE_URL": f"{sim.url}/v1",
                "PARTIAL_TRUST_RISK_LOG_PATH": str(tmp_path / f"{name}.jsonl"),
            }
            source = build_settings_source(Environment.from_mapping(env))
            stack = CorridorStack.from_env(
                Environment.from_mapping(env), registry=CollectorRegistry(), source=source
            )
            app = stack.wrap(
                Starlette(routes=[Route("/route", route_endpoint, methods=["POST"])]), ["/route"]
            )
            await stack.start()
            try:
                before = sim_calls(sim)
                transport = httpx.ASGITransport(app=app)
                async with httpx.AsyncClient(transport=transport, base_url="http://app") as c:
                    for i in range(10):
                        body = shopping_command(f"mem-{name}-{i}")
                        assert (await c.post("/route", json=body)).status_code == 200
                results[name] = sim_calls(sim) - before
                status = stack.status()["flags"]
                assert status["provider_owned"] is False
                if name == "killed":
                    assert status["enabled"] is False
                    assert status["limits"]["enabled"] == "env PARTIAL_TRUST_ENABLED"
            finally:
                await stack.stop()
            api.shutdown()
    finally:
        api.shutdown()
    assert results == {"on": 10, "killed": 0}
