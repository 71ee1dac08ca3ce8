"""End to end through Unleash: a real ``partial-trust serve`` and llm-sim under traffic, flags
in a real Unleash server changed through its admin API, and Unleash itself stopped.

What is measured is what the runbook cares about: seconds from the admin API call (or the
server stopping) to the last LLM call llm-sim saw. Figures are printed (``-s``) and asserted
with room for a busy 2-core machine.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from partial_trust.flags.flagfile import ENABLED
from tests.integration.stack import llm_sim, reference_app, shopping_command
from tests.support.procs import Server
from tests.support.traffic import Traffic
from tests.support.unleash_admin import archive, set_enabled, set_flags
from tests.support.unleash_server import UnleashServer, shared_unleash

pytestmark = pytest.mark.integration
KILL_TARGET_S = 2.0  # the bound for a kill in Unleash
KILL_LIMIT_S = 3.0  # target 2 s (1 s poll + Unleash's 1 s revision tick); room for CI
STALE_LIMIT_S = 3.0 + 2.0  # the bound (3 polls of 1 s) + a watcher tick and a busy machine


class Sim:
    """llm-sim's call count over one kept-alive connection."""

    def __init__(self, server: Server) -> None:
        self.base = server.url
        self.url = f"{server.url}/sim/stats"
        self.client = httpx.Client(timeout=5)

    def calls(self) -> int:
        return int(self.client.get(self.url).json()["total"])

    def last_call_after(self, since: float, quiet_s: float = 1.5, limit_s: float = 15) -> float:
        """Seconds from ``since`` to the last call, once none came for ``quiet_s``."""
        last, last_at = self.calls(), since
        while time.monotonic() - last_at < quiet_s:
            assert time.monotonic() - since < limit_s, "LLM calls did not stop"
            count = self.calls()
            if count != last:
                last, last_at = count, time.monotonic()
            time.sleep(0.01)
        return last_at - since

    def calls_resume(self, timeout_s: float) -> float:
        start, first = time.monotonic(), self.calls()
        while self.calls() == first:
            assert time.monotonic() - start < timeout_s, "LLM calls did not come back"
            time.sleep(0.01)
        return time.monotonic() - start


def health_flags(app: Server) -> dict[str, object]:
    body = httpx.get(f"{app.url}/health", timeout=5).json()
    flags: dict[str, object] = body["partial_trust"]["flags"]
    return flags


def unleash_env(server: UnleashServer, token: str | None = None) -> dict[str, str]:
    return {
        "PARTIAL_TRUST_FLAGS_PROVIDER": "unleash",
        "UNLEASH_URL": server.api_url,
        "UNLEASH_API_TOKEN": token or server.client_token,
        "UNLEASH_APP_NAME": "partial-trust-live",
    }


@pytest.fixture(scope="module")
def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[UnleashServer, Server, Sim]]:
    unleash = shared_unleash(request.config)
    set_flags(unleash)
    tmp = tmp_path_factory.mktemp("unleash-live")
    with (
        llm_sim(tmp) as sim,
        reference_app(tmp, f"{sim.url}/v1", **unleash_env(unleash)) as (
            app,
            _,
        ),
    ):
        stats = Sim(sim)
        try:
            yield unleash, app, stats
        finally:
            stats.client.close()


@pytest.fixture
def live(stack: tuple[UnleashServer, Server, Sim]) -> Iterator[tuple[UnleashServer, Server, Sim]]:
    unleash, _, sim = stack
    set_flags(unleash)
    sim.calls_resume(10)  # the corridor is on before each test (traffic makes LLM calls)
    yield stack
    if not unleash.running():
        unleash.start_unleash()


@pytest.fixture
def traffic(stack: tuple[UnleashServer, Server, Sim]) -> Iterator[Traffic]:
    with Traffic(stack[1]) as running:
        yield running
    assert running.failures == 0, "a request failed while flags changed"


def test_a_kill_in_unleash_stops_llm_calls_within_2s(
    traffic: Traffic, live: tuple[UnleashServer, Server, Sim]
) -> None:
    unleash, app, sim = live
    kills, resumes = [], []
    for _ in range(3):
        start = time.monotonic()
        set_enabled(unleash, ENABLED, False)
        kills.append(sim.last_call_after(start))
        assert health_flags(app)["enabled"] is False
        start = time.monotonic()
        set_enabled(unleash, ENABLED, True)
        resumes.append(sim.calls_resume(KILL_LIMIT_S + 2))
    print(
        f"Unleash kill -> last LLM call: {', '.join(f'{s:.2f}' for s in kills)} s; "
        f"resume -> first call: {', '.join(f'{s:.2f}' for s in resumes)} s"
    )
    # The target is 2 s: the median of three kills must meet it; one slow outlier on a
    # loaded machine may take up to KILL_LIMIT_S, never more.
    assert sorted(kills)[1] < KILL_TARGET_S, kills
    assert max(kills) < KILL_LIMIT_S, kills


def test_unleash_down_turns_the_corridor_off_and_back_on(
    traffic: Traffic, live: tuple[UnleashServer, Server, Sim]
) -> None:
    unleash, app, sim = live
    start = time.monotonic()
    unleash.stop_unleash()
    stopped = sim.last_call_after(start)
    flags = health_flags(app)
    print(f"Unleash stopped -> last LLM call after {stopped:.2f} s; /health: {flags['last_error']}")
    assert stopped < STALE_LIMIT_S
    assert flags["flags_available"] is False
    assert flags["provider_status"] == "STALE"
    assert "no successful fetch from Unleash within 3 s" in str(flags["last_error"])

    start = time.monotonic()
    unleash.start_unleash()
    restarted = time.monotonic() - start
    back = sim.calls_resume(10)
    print(f"Unleash restarted in {restarted:.1f} s -> LLM calls back {back:.2f} s later")
    flags = health_flags(app)
    assert (flags["flags_available"], flags["last_error"]) == (True, None)


def test_an_archived_enable_toggle_turns_the_corridor_off(
    traffic: Traffic, live: tuple[UnleashServer, Server, Sim]
) -> None:
    unleash, app, sim = live
    start = time.monotonic()
    archive(unleash, ENABLED)
    gone = sim.last_call_after(start)
    print(f"toggle archived -> last LLM call after {gone:.2f} s (env default says on)")
    assert gone < KILL_LIMIT_S
    flags = health_flags(app)
    assert (flags["flags_available"], flags["enabled"]) == (True, False)
    set_flags(unleash)
    sim.calls_resume(KILL_LIMIT_S + 2)


def test_a_wrong_token_serves_with_the_corridor_off_and_says_why(
    stack: tuple[UnleashServer, Server, Sim], tmp_path: Path
) -> None:
    unleash, _, sim = stack
    env = unleash_env(unleash, token="default:development.wrong")
    with reference_app(tmp_path, f"{sim.base}/v1", **env) as (app, _):
        before = sim.calls()
        for i in range(20):
            resp = httpx.post(f"{app.url}/route", json=shopping_command(f"w-{i}"), timeout=5)
            assert resp.status_code < 500
        flags = health_flags(app)
    assert sim.calls() == before, "the corridor called the LLM on the environment defaults"
    assert (flags["flags_available"], flags["provider_status"]) == (False, "ERROR")
    assert "HTTP 401" in str(flags["last_error"])
