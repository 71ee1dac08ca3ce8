"""FlagSettingsSource semantics over OpenFeature's real InMemoryProvider."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import pytest
from openfeature import api
from openfeature.event import ProviderEventDetails
from openfeature.provider import ProviderStatus
from openfeature.provider.in_memory_provider import InMemoryProvider

from partial_trust.config import EffectiveSettings
from partial_trust.environment import Environment
from partial_trust.flags.flagfile import ENABLED, PROFILE_ID, SAMPLE_RATE, TIMEOUT_MS
from partial_trust.flags.source import DOMAIN

from .helpers import memory_provider, memory_source, put, wait_until

pytestmark = pytest.mark.anyio
ON = {ENABLED: True, SAMPLE_RATE: 0.05, TIMEOUT_MS: 300, PROFILE_ID: "reliable"}
ENV_ON = {
    "PARTIAL_TRUST_ENABLED": "true",
    "PARTIAL_TRUST_SAMPLE_RATE": "0.2",
    "PARTIAL_TRUST_TIMEOUT_MS": "150",
    "PARTIAL_TRUST_PROFILE_ID": "partial_trust",
}


async def test_flag_values_become_the_snapshot() -> None:
    source = memory_source(memory_provider(ON), policy_default=True)
    assert source.current().flags_available is False  # fail closed before start
    await source.start()
    try:
        assert source.current() == EffectiveSettings(
            True, "add_shopping_item", 0.05, 300, "reliable", True, True, "memory"
        )
    finally:
        await source.stop()
    assert source.current().flags_available is False


async def test_flags_the_provider_does_not_define_take_the_env_defaults() -> None:
    source = memory_source(memory_provider({}), ENV_ON)
    await source.start()
    try:
        got = source.current()
        assert (got.enabled, got.sample_rate, got.timeout_ms, got.profile_id) == (
            True,
            0.2,
            150,
            "partial_trust",
        )
    finally:
        await source.stop()


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        (SAMPLE_RATE, "abc", (True, 0.01, 300)),  # garbage -> the env default rate
        (SAMPLE_RATE, 7, (True, 1.0, 300)),  # clamped
        (SAMPLE_RATE, -1, (True, 0.0, 300)),
        (TIMEOUT_MS, 0, (False, 0.0, 0)),  # 0 disables
        (TIMEOUT_MS, "abc", (False, 0.0, 0)),
        (TIMEOUT_MS, 250.0, (True, 0.05, 250)),
        (ENABLED, "yes", (False, 0.0, 0)),  # not a boolean: fail closed
    ],
)
async def test_malformed_values_follow_the_runbook(
    key: str, value: object, expected: tuple[bool, float, int]
) -> None:
    source = memory_source(memory_provider({**ON, key: value}))  # no variable set: no ceiling
    await source.start()
    try:
        got = source.current()
        assert (got.enabled, got.sample_rate, got.timeout_ms) == expected
        assert got.flags_available is True
    finally:
        await source.stop()


@pytest.mark.parametrize("value", [5, "   "])
async def test_malformed_profile_means_the_default_profile(value: object) -> None:
    source = memory_source(memory_provider({**ON, PROFILE_ID: value}))
    await source.start()
    try:
        assert source.current().profile_id is None
        assert source.current().enabled is True
    finally:
        await source.stop()


async def test_provider_error_and_stale_fail_closed_and_ready_recovers() -> None:
    provider = memory_provider(ON)
    source = memory_source(provider, refresh_interval_s=10)
    await source.start()
    try:
        for emit in (provider.emit_provider_error, provider.emit_provider_stale):
            emit(ProviderEventDetails(message="backend gone"))
            await wait_until(lambda: not source.current().flags_available)
            assert source.current().enabled is False
            assert source.status()["provider_status"] in {"ERROR", "STALE"}
            provider.emit_provider_ready(ProviderEventDetails())
            await wait_until(lambda: source.current().enabled)
    finally:
        await source.stop()


class SlowInit(InMemoryProvider):
    """A real provider whose initialize() waits for a gate (a flag backend slow to answer)."""

    def __init__(self) -> None:
        super().__init__(dict(memory_provider(ON).flags))
        self.gate = threading.Event()

    def initialize(self, evaluation_context: object) -> None:
        self.gate.wait(5)


async def test_not_ready_fails_closed_until_ready() -> None:
    provider = SlowInit()
    source = memory_source(provider, ready_timeout_s=0.05, refresh_interval_s=10)
    await source.start()
    try:
        assert source.status()["provider_status"] == "NOT_READY"
        assert source.current().flags_available is False
        assert source.status()["last_error"] == "provider NOT_READY"
        provider.gate.set()
        await wait_until(lambda: source.current().enabled)
    finally:
        provider.gate.set()
        await source.stop()


async def test_interval_refresh_sees_changes_from_a_provider_without_events() -> None:
    provider = memory_provider(ON)
    source = memory_source(provider, refresh_interval_s=0.05)
    await source.start()
    try:
        put(provider, SAMPLE_RATE, 0.1)
        await wait_until(lambda: source.current().sample_rate == 0.1)
    finally:
        await source.stop()


async def test_configuration_changed_event_refreshes_at_once() -> None:
    provider = memory_provider(ON)
    source = memory_source(provider, refresh_interval_s=10)
    await source.start()
    try:
        put(provider, ENABLED, False)
        provider.emit_provider_configuration_changed(ProviderEventDetails(flags_changed=[ENABLED]))
        await wait_until(lambda: not source.current().enabled, timeout_s=0.1)
    finally:
        await source.stop()


async def test_a_stale_snapshot_fails_closed() -> None:
    source = memory_source(memory_provider(ON), refresh_interval_s=10, stale_after_s=0.1)
    await source.start()
    try:
        assert source.current().enabled is True
        await wait_until(lambda: not source.current().flags_available, timeout_s=0.5)
        source.refresh()
        assert source.current().enabled is True
    finally:
        await source.stop()


async def test_each_change_is_reported_once(caplog: pytest.LogCaptureFixture) -> None:
    provider = memory_provider(ON)
    source = memory_source(provider, refresh_interval_s=10)
    seen: list[EffectiveSettings] = []
    source.on_change(seen.append)

    def broken(_: EffectiveSettings) -> None:
        raise ZeroDivisionError("a listener's own bug")  # must not break the others

    source.on_change(broken)
    await source.start()
    try:
        with caplog.at_level(logging.INFO, logger="partial_trust.flags"):
            put(provider, SAMPLE_RATE, 0.1)
            for _ in range(3):
                source.refresh()
        changes = [r.getMessage() for r in caplog.records if "flags changed" in r.getMessage()]
        assert changes == ["partial-trust flags changed (memory): sample_rate 0.05 -> 0.1"]
        assert [s.sample_rate for s in seen] == [0.0, 0.05, 0.1]  # now, start, the change
    finally:
        await source.stop()


async def test_a_provider_the_host_bound_is_used_and_never_replaced() -> None:
    host_default = memory_provider({ENABLED: False})
    api.set_provider(host_default)  # the host app's own flags
    host_ours = memory_provider(ON)
    api.set_provider(host_ours, DOMAIN)

    def factory() -> InMemoryProvider:
        raise AssertionError("the library must not build a provider when one is bound")

    from partial_trust.config import EnvDefaults
    from partial_trust.flags.source import FlagSettingsSource

    source = FlagSettingsSource(EnvDefaults.from_env({}), kind="memory", provider_factory=factory)
    await source.start()
    assert source.current().enabled is True
    assert source.status()["provider_owned"] is False
    await source.stop()
    assert api.get_client(DOMAIN).provider is host_ours
    assert api.get_client(DOMAIN).get_provider_status() is ProviderStatus.READY
    assert api.get_client().provider is host_default


async def test_an_owned_provider_is_bound_to_our_domain_only_and_removed_at_stop() -> None:
    host_default = memory_provider({ENABLED: False})
    api.set_provider(host_default)
    ours = memory_provider(ON)
    source = memory_source(ours)
    await source.start()
    assert api.get_client(DOMAIN).provider is ours
    assert api.get_client().provider is host_default
    status = source.status()
    assert status["provider_owned"] is True
    assert status["flags_available"] is True
    assert status["last_change"] is not None
    await source.stop()
    assert api.get_client(DOMAIN).provider is not ours
    assert api.get_client().provider is host_default


async def test_current_is_nearly_free() -> None:
    source = memory_source(memory_provider(ON))
    await source.start()
    try:
        n = 100_000
        start = time.perf_counter()
        for _ in range(n):
            source.current()
        per_call_us = (time.perf_counter() - start) / n * 1e6
        print(f"current(): {per_call_us:.3f} us per call")
        assert per_call_us < 2.0
    finally:
        await source.stop()


async def test_a_source_can_be_stopped_and_started_again() -> None:
    provider = memory_provider(ON)
    source = memory_source(provider)
    for _ in range(2):
        await source.start()
        assert source.current().enabled is True
        assert source.status()["provider_owned"] is True
        await source.stop()
        assert source.current().flags_available is False
        assert source.status()["last_error"] == "stopped"


async def test_a_host_bound_provider_is_not_second_guessed_by_the_file_check(
    tmp_path: Path,
) -> None:
    api.set_provider(memory_provider(ON), DOMAIN)
    from partial_trust.flags import build_settings_source

    missing = tmp_path / "no-such-file.json"  # would fail closed if we checked it
    source = build_settings_source(
        Environment.from_mapping({"PARTIAL_TRUST_FLAGS_FILE": str(missing)})
    )
    await source.start()
    try:
        assert source.current().enabled is True
    finally:
        await source.stop()
