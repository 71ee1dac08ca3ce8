"""The Unleash provider against a real Unleash server (tests/support/unleash_server.py).

The server (PostgreSQL + unleash-server) is started once per session by the first test that
needs it. Without PostgreSQL, node or the unleash-server package these tests skip with the
reason; under ``CI=true`` they fail instead (``.ci/run`` installs all three).
"""

from __future__ import annotations

import time

import pytest

from partial_trust.environment import Environment
from partial_trust.flags import build_settings_source
from partial_trust.flags.flagfile import ENABLED
from partial_trust.flags.source import FlagSettingsSource
from tests.support.procs import free_port
from tests.support.unleash_admin import archive, set_enabled, set_flags
from tests.support.unleash_server import UnleashServer, shared_unleash

from .helpers import limits_of, wait_until

pytestmark = pytest.mark.anyio
FETCH_S = 5.0  # a change reaches the snapshot in ~1-2 s (1 s poll); generous for CI


@pytest.fixture
def unleash(request: pytest.FixtureRequest) -> UnleashServer:
    server = shared_unleash(request.config)
    set_flags(server)  # every test starts from the same four flags, corridor on
    return server


def unleash_env(server: UnleashServer, **extra: str) -> dict[str, str]:
    return {
        "PARTIAL_TRUST_FLAGS_PROVIDER": "unleash",
        "UNLEASH_URL": server.api_url,
        "UNLEASH_API_TOKEN": server.client_token,
        "UNLEASH_APP_NAME": "partial-trust-tests",
        # the environment says "on": none of it may leak through when Unleash cannot be read
        # (and, set, each variable is a ceiling: these are high enough to cap nothing here)
        "PARTIAL_TRUST_ENABLED": "true",
        "PARTIAL_TRUST_SAMPLE_RATE": "1",
        "PARTIAL_TRUST_TIMEOUT_MS": "1000",
        **extra,
    }


async def started(env: dict[str, str]) -> FlagSettingsSource:
    source = build_settings_source(Environment.from_mapping(env))
    assert isinstance(source, FlagSettingsSource)
    await source.start()
    return source


async def test_flags_map_from_toggles_and_variant_payloads(unleash: UnleashServer) -> None:
    set_flags(unleash, sample_rate="0.25", timeout_ms="250", profile_id="reliable")
    source = await started(unleash_env(unleash))
    try:
        await wait_until(lambda: source.current().sample_rate == 0.25, FETCH_S)
        snap = source.current()
        assert (snap.flags_available, snap.enabled) == (True, True)
        assert (snap.timeout_ms, snap.profile_id) == (250, "reliable")
        status = source.status()
        assert (status["provider_status"], status["last_error"]) == ("READY", None)

        start = time.monotonic()
        set_enabled(unleash, ENABLED, False)  # the kill, as an operator does it
        took = await wait_until(lambda: not source.current().enabled, FETCH_S)
        print(f"Unleash kill -> snapshot off in {took * 1000:.0f} ms (admin call included)")
        assert source.current().flags_available  # off by the flag, not by an outage
        assert time.monotonic() - start < 3.0

        set_flags(unleash, sample_rate="0.5")
        await wait_until(lambda: source.current().sample_rate == 0.5, FETCH_S)
        assert source.current().enabled
    finally:
        await source.stop()


async def test_an_archived_enable_toggle_is_off_not_the_env_default(
    unleash: UnleashServer,
) -> None:
    source = await started(unleash_env(unleash))
    try:
        await wait_until(lambda: source.current().enabled, FETCH_S)
        archive(unleash, ENABLED)
        await wait_until(lambda: not source.current().enabled, FETCH_S)
        snap = source.current()
        assert snap.flags_available  # Unleash answers; it just has no such toggle
        assert source.status()["last_error"] is None

        set_flags(unleash)  # created again: on again
        await wait_until(lambda: source.current().enabled, FETCH_S)
    finally:
        await source.stop()


async def test_set_variables_are_a_ceiling_over_unleash(unleash: UnleashServer) -> None:
    """The runbook's ``export ...`` + restart with Unleash serving the corridor on at rate 1:
    a set rate and timeout cap what Unleash serves, ``PARTIAL_TRUST_ENABLED=false`` turns it
    off while Unleash answers, and ``/health``'s limits name the variable each time."""
    set_flags(unleash, sample_rate="1", timeout_ms="250")
    capped = {"PARTIAL_TRUST_SAMPLE_RATE": "0.01", "PARTIAL_TRUST_TIMEOUT_MS": "50"}
    killed = {"PARTIAL_TRUST_ENABLED": "false"}
    seen = [await _served_under(unleash, extra) for extra in (capped, killed)]
    assert seen == [(True, 0.01, 50), (False, 0.0, 0)]


async def _served_under(unleash: UnleashServer, extra: dict[str, str]) -> tuple[bool, float, int]:
    """(enabled, rate, timeout) served with ``extra`` set; each variable named as the limit."""
    source = await started(unleash_env(unleash, **extra))
    try:
        await wait_until(lambda: source.status()["last_error"] is None, FETCH_S)
        snap, limits = source.current(), limits_of(source.status())
        assert snap.flags_available  # Unleash answers: the variable decided, not an outage
        for key in extra:
            setting = key.removeprefix("PARTIAL_TRUST_").lower()
            assert limits[setting] == f"env {key}", limits
        return snap.enabled, snap.sample_rate, snap.timeout_ms
    finally:
        await source.stop()


async def test_a_hanging_unleash_goes_stale_then_comes_back(unleash: UnleashServer) -> None:
    source = await started(unleash_env(unleash))
    try:
        await wait_until(lambda: source.current().enabled, FETCH_S)
        start = time.monotonic()
        unleash.pause()  # fetches now hang: no refusal, no answer
        try:
            took = await wait_until(lambda: not source.current().flags_available, 3 + 3)
            status = source.status()
        finally:
            unleash.pause(False)
        print(f"Unleash hanging -> corridor off after {took:.2f} s: {status['last_error']}")
        assert time.monotonic() - start >= 2.0  # not before the bound (3 s after a good fetch)
        assert status["provider_status"] == "STALE"
        assert "no successful fetch from Unleash within 3 s" in str(status["last_error"])
        await wait_until(lambda: source.current().enabled, FETCH_S)
        assert source.status()["last_error"] is None
    finally:
        await source.stop()


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"UNLEASH_API_TOKEN": "default:development.not-a-token"}, "HTTP 401"),
        ({"UNLEASH_API_TOKEN": ""}, "HTTP 401"),
        ({"UNLEASH_URL": "<server without /api>"}, "UNLEASH_URL ending in /api"),
    ],
    ids=["wrong-token", "no-token", "url-without-api"],
)
async def test_unusable_unleash_is_off_and_says_why(
    unleash: UnleashServer, change: dict[str, str], reason: str
) -> None:
    if change.get("UNLEASH_URL") == "<server without /api>":
        change = {"UNLEASH_URL": unleash.url}
    await off_and_says_why(unleash_env(unleash, **change), reason)


async def test_nothing_listening_is_off_and_says_why() -> None:
    """No server needed: Unleash "down" from the start, the environment saying on."""
    env = {
        "PARTIAL_TRUST_FLAGS_PROVIDER": "unleash",
        "UNLEASH_URL": f"http://127.0.0.1:{free_port()}/api",
        "UNLEASH_API_TOKEN": "default:development.anything",
        "PARTIAL_TRUST_ENABLED": "true",
        "PARTIAL_TRUST_SAMPLE_RATE": "1",
    }
    await off_and_says_why(env, "no successful fetch from Unleash yet: connection failed")


async def off_and_says_why(env: dict[str, str], reason: str) -> None:
    source = await started(env)
    try:
        await wait_until(lambda: source.status()["last_error"] != "not started", FETCH_S)
        snap, status = source.current(), source.status()
        assert (snap.flags_available, snap.enabled, snap.sample_rate) == (False, False, 0.0)
        assert status["provider_status"] == "ERROR"
        assert isinstance(status["last_error"], str) and reason in status["last_error"]
        print(f"{env['UNLEASH_URL']}: {status['last_error']}")
        time.sleep(1.5)  # more polls fail the same way: still off, same words
        assert source.refresh().flags_available is False
        assert status["last_error"] == source.status()["last_error"]
    finally:
        await source.stop()
