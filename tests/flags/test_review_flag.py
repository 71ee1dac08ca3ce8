"""``partial-trust-review-enabled``: read live with the other flags (OpenFeature's real
InMemoryProvider), off unless served ``true``; a bad value turns review off, never the corridor."""

from __future__ import annotations

import pytest
from openfeature.event import ProviderEventDetails

from partial_trust.flags.flagfile import ENABLED, PROFILE_ID, SAMPLE_RATE, TIMEOUT_MS
from partial_trust.flags.flagmodel import REVIEW_ENABLED

from .helpers import memory_provider, memory_source, put, wait_until

pytestmark = pytest.mark.anyio
ON = {ENABLED: True, SAMPLE_RATE: 1.0, TIMEOUT_MS: 200, PROFILE_ID: ""}


async def test_the_review_flag_is_off_unless_served_and_follows_changes() -> None:
    provider = memory_provider(ON)
    source = memory_source(provider, refresh_interval_s=10)
    await source.start()
    try:
        assert source.current().enabled and source.current().review_enabled is False
        put(provider, REVIEW_ENABLED, True)
        provider.emit_provider_configuration_changed(
            ProviderEventDetails(flags_changed=[REVIEW_ENABLED])
        )
        await wait_until(lambda: source.current().review_enabled)
        put(provider, REVIEW_ENABLED, "yes")  # the wrong type: review off, corridor on
        provider.emit_provider_configuration_changed(
            ProviderEventDetails(flags_changed=[REVIEW_ENABLED])
        )
        await wait_until(lambda: not source.current().review_enabled)
        assert source.current().enabled and source.current().flags_available
    finally:
        await source.stop()


async def test_the_kill_switch_also_stops_review() -> None:
    source = memory_source(memory_provider({**ON, ENABLED: False, REVIEW_ENABLED: True}))
    await source.start()
    try:
        assert source.current().enabled is False
        assert source.current().review_enabled is False  # off is off for every part
    finally:
        await source.stop()
