"""The environment's ceilings over every settings source: OpenFeature's real InMemoryProvider,
the ``file`` provider (flagd's in-process FILE resolver behind the guard) and ``env``; the
rule itself is tested in ``tests/test_config_ceiling.py``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from openfeature import api
from openfeature.event import ProviderEventDetails

from partial_trust.config import EffectiveSettings
from partial_trust.environment import Environment
from partial_trust.flags import ManagedSettingsSource, build_settings_source, flagfile
from partial_trust.flags.flagfile import ENABLED, PROFILE_ID, SAMPLE_RATE, TIMEOUT_MS
from partial_trust.flags.source import DOMAIN

from .helpers import limits_of, memory_provider, memory_source, put, wait_until

pytestmark = pytest.mark.anyio
FILE_ON = {ENABLED: True, SAMPLE_RATE: 1.0, TIMEOUT_MS: 200, PROFILE_ID: "partial_trust"}


async def test_enabled_false_set_turns_an_on_provider_off() -> None:
    source = memory_source(memory_provider(FILE_ON), {"PARTIAL_TRUST_ENABLED": "false"})
    await source.start()
    try:
        got = source.current()
        assert (got.enabled, got.sample_rate, got.flags_available) == (False, 0.0, True)
        status = source.status()
        assert status["enabled"] is False and status["last_error"] is None
        assert limits_of(status)["enabled"] == "env PARTIAL_TRUST_ENABLED"
    finally:
        await source.stop()


async def test_enabled_true_set_does_not_lift_the_kill_switch_flag() -> None:
    provider = memory_provider(FILE_ON)
    source = memory_source(provider, {"PARTIAL_TRUST_ENABLED": "true"}, refresh_interval_s=10)
    await source.start()
    try:
        assert source.current().enabled is True
        put(provider, ENABLED, False)
        provider.emit_provider_configuration_changed(ProviderEventDetails(flags_changed=[ENABLED]))
        await wait_until(lambda: not source.current().enabled)
        limits = limits_of(source.status())
        assert limits["enabled"] == "flag partial-trust-enabled"
    finally:
        await source.stop()


async def test_rate_and_timeout_set_cap_the_flags_also_after_a_change() -> None:
    provider = memory_provider(FILE_ON)
    env = {"PARTIAL_TRUST_SAMPLE_RATE": "0.01", "PARTIAL_TRUST_TIMEOUT_MS": "50"}
    source = memory_source(provider, env, refresh_interval_s=10)
    await source.start()
    try:
        status = source.status()
        assert (status["sample_rate"], status["timeout_ms"]) == (0.01, 50)
        assert status["limits"] == {
            "enabled": "flag partial-trust-enabled",
            "sample_rate": "env PARTIAL_TRUST_SAMPLE_RATE",
            "timeout_ms": "env PARTIAL_TRUST_TIMEOUT_MS",
            "profile_id": "flag partial-trust-profile-id",
            "policy_enabled": "policy file",
            "mode": "default",
        }
        put(provider, SAMPLE_RATE, 0.005)  # below the cap: the flag decides
        put(provider, TIMEOUT_MS, 30)
        source.refresh()
        assert (source.current().sample_rate, source.current().timeout_ms) == (0.005, 30)
        assert limits_of(source.status())["sample_rate"] == "flag partial-trust-sample-rate"
        put(provider, SAMPLE_RATE, 0.5)  # above it again: capped
        source.refresh()
        assert source.current().sample_rate == 0.01
    finally:
        await source.stop()


async def test_timeout_zero_set_and_a_foreign_intent_turn_it_off() -> None:
    for env, name in (
        ({"PARTIAL_TRUST_TIMEOUT_MS": "0"}, "env PARTIAL_TRUST_TIMEOUT_MS"),
        ({"PARTIAL_TRUST_TIMEOUT_MS": "abc"}, "env PARTIAL_TRUST_TIMEOUT_MS"),
        ({"PARTIAL_TRUST_INTENT": "delete_account"}, "env PARTIAL_TRUST_INTENT"),
    ):
        source = memory_source(memory_provider(FILE_ON), env)
        await source.start()
        try:
            assert source.current().enabled is False, env
            assert limits_of(source.status())["enabled"] == name
        finally:
            await source.stop()


async def test_profile_set_wins() -> None:
    source = memory_source(memory_provider(FILE_ON), {"PARTIAL_TRUST_PROFILE_ID": "reliable"})
    await source.start()
    try:
        assert source.current().profile_id == "reliable"
    finally:
        await source.stop()


async def test_a_host_bound_in_memory_provider_is_capped_too(tmp_path: Path) -> None:
    """The host app binds its own provider to our domain: the variables still cap it."""
    api.set_provider(memory_provider(FILE_ON), DOMAIN)
    env = {
        "PARTIAL_TRUST_FLAGS_FILE": str(tmp_path / "unused.json"),
        "PARTIAL_TRUST_ENABLED": "false",
    }
    source = build_settings_source(Environment.from_mapping(env))
    await source.start()
    try:
        assert source.current().enabled is False
        assert limits_of(source.status())["enabled"] == "env PARTIAL_TRUST_ENABLED"
    finally:
        await source.stop()


async def test_the_file_provider_is_capped(flag_file: Path) -> None:
    flagfile.set_flag(flag_file, SAMPLE_RATE, 1.0)
    flagfile.resume(flag_file, keep_rate=True)
    base = {"PARTIAL_TRUST_FLAGS_FILE": str(flag_file)}
    cases: list[tuple[dict[str, str], Callable[[EffectiveSettings], bool]]] = [
        ({}, lambda s: s.enabled and s.sample_rate == 1.0 and s.timeout_ms == 200),
        ({"PARTIAL_TRUST_ENABLED": "false"}, lambda s: not s.enabled and s.flags_available),
        ({"PARTIAL_TRUST_SAMPLE_RATE": "0.01"}, lambda s: s.enabled and s.sample_rate == 0.01),
        ({"PARTIAL_TRUST_TIMEOUT_MS": "50"}, lambda s: s.enabled and s.timeout_ms == 50),
    ]
    for extra, check in cases:
        api.shutdown()
        source = build_settings_source(Environment.from_mapping({**base, **extra}))
        await source.start()
        try:

            def available(s: ManagedSettingsSource = source) -> bool:
                return s.current().flags_available

            await wait_until(available, timeout_s=3)
            assert check(source.current()), (extra, source.status())
            assert source.status()["provider"] == "file"
        finally:
            await source.stop()


async def test_the_env_provider_reports_its_limits() -> None:
    env = {
        "PARTIAL_TRUST_FLAGS_PROVIDER": "env",
        "PARTIAL_TRUST_ENABLED": "false",
        "PARTIAL_TRUST_SAMPLE_RATE": "1",
    }
    source = build_settings_source(Environment.from_mapping(env))
    await source.start()
    status = source.status()
    assert status["enabled"] is False
    assert limits_of(status)["enabled"] == "env PARTIAL_TRUST_ENABLED"
    on = build_settings_source(
        Environment.from_mapping({**env, "PARTIAL_TRUST_ENABLED": "true"})
    ).status()
    assert limits_of(on)["sample_rate"] == "env PARTIAL_TRUST_SAMPLE_RATE"
    assert limits_of(on)["timeout_ms"] == "default"
    await source.stop()
