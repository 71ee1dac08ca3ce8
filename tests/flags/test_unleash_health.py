"""The Unleash provider's judgement of its own fetches, on a fake clock (no server needed)."""

from __future__ import annotations

import pytest
from openfeature.provider import ProviderStatus

from partial_trust.environment import Environment
from partial_trust.flags.provider import make_unleash_provider, unleash_refresh_interval
from partial_trust.flags.unleash_health import FetchHealth, describe_http
from tests.support.procs import REPO
from tests.support.unleash_server import UNLEASH_VERSION


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_never_fetched_is_an_error_naming_the_last_failure() -> None:
    health = FetchHealth(3.0, Clock())
    assert health.assess() == (ProviderStatus.ERROR, "no successful fetch from Unleash yet: -")
    health.failed("connection failed")
    assert health.assess() == (
        ProviderStatus.ERROR,
        "no successful fetch from Unleash yet: connection failed",
    )


def test_fresh_then_stale_with_a_stable_reason_then_back() -> None:
    clock = Clock()
    health = FetchHealth(3.0, clock)
    health.succeeded()
    health.failed("connection failed")  # one failed poll within the bound: ride it out
    clock.now += 3.0
    assert health.assess() == (ProviderStatus.READY, None)
    clock.now += 0.1
    status, reason = health.assess()
    assert status is ProviderStatus.STALE
    assert reason == (
        "no successful fetch from Unleash within 3 s (last attempt: connection failed)"
    )
    clock.now += 60
    assert health.assess() == (status, reason)  # same words: logged once, not every tick
    health.succeeded()
    assert health.assess() == (ProviderStatus.READY, None)


def test_a_fetch_that_hangs_goes_stale() -> None:
    clock = Clock()
    health = FetchHealth(3.0, clock)
    health.succeeded()
    clock.now += 5
    assert health.assess() == (
        ProviderStatus.STALE,
        "no successful fetch from Unleash within 3 s (last attempt: still running)",
    )


@pytest.mark.parametrize("status", [401, 403])
def test_a_refused_token_is_an_error_at_once_even_when_fresh(status: int) -> None:
    health = FetchHealth(3.0, Clock())
    health.succeeded()
    health.failed(describe_http(status), http_status=status)
    got, reason = health.assess()
    assert got is ProviderStatus.ERROR
    assert reason is not None and f"HTTP {status}" in reason
    health.succeeded()
    assert health.assess() == (ProviderStatus.READY, None)


def test_a_200_counts_once_applied_and_start_up_waits_for_it_bounded() -> None:
    health = FetchHealth(3.0)
    health.applying()
    health.settle(timeout_s=0.05)  # nobody applies it: returns after the bound
    assert health.assess()[0] is ProviderStatus.ERROR
    health.succeeded()
    health.settle(timeout_s=5)  # nothing pending: returns at once
    assert health.assess() == (ProviderStatus.READY, None)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(None, 0.5), ("", 0.5), ("1", 1), (" 5 ", 5), ("60", 60), ("0.25", 0.25), ("2.5", 2.5)],
)
def test_refresh_interval(raw: str | None, expected: float) -> None:
    env = {} if raw is None else {"UNLEASH_REFRESH_INTERVAL": raw}
    assert unleash_refresh_interval(Environment.from_mapping(env)) == expected


@pytest.mark.parametrize(
    "raw", ["0", "61", "0.1", "-1", "15s", "abc", "nan", "inf", "1e1", "1..5", "0x10"]
)
def test_a_bad_refresh_interval_stops_start_up(raw: str) -> None:
    with pytest.raises(ValueError, match="UNLEASH_REFRESH_INTERVAL"):
        unleash_refresh_interval(Environment.from_mapping({"UNLEASH_REFRESH_INTERVAL": raw}))


@pytest.mark.parametrize("url", ["", "unleash:4242/api", "ftp://unleash/api"])
def test_a_url_that_is_not_http_stops_start_up(url: str) -> None:
    with pytest.raises(ValueError, match="UNLEASH_URL"):
        make_unleash_provider(Environment.from_mapping({"UNLEASH_URL": url}))


def test_ci_installs_the_unleash_server_the_tests_start() -> None:
    script = (REPO / "scripts" / "ci-unleash").read_text()
    assert f"\nversion={UNLEASH_VERSION}\n" in script
