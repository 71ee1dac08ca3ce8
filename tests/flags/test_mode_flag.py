"""The fifth flag, ``partial-trust-mode``, read like the other four through a provider."""

from __future__ import annotations

import pytest

from partial_trust.flags.flagfile import ENABLED, MODE, PROFILE_ID, SAMPLE_RATE, TIMEOUT_MS
from partial_trust.mode import Mode

from .helpers import memory_provider, memory_source

pytestmark = pytest.mark.anyio
ON = {ENABLED: True, SAMPLE_RATE: 1.0, TIMEOUT_MS: 200, PROFILE_ID: ""}


@pytest.mark.parametrize(
    ("served", "env", "enabled", "mode"),
    [
        (None, {}, True, Mode.CANARY),  # not served, unset: the runbook's behaviour
        ("shadow", {}, True, Mode.SHADOW),
        ("canary", {"PARTIAL_TRUST_MODE": "shadow"}, True, Mode.SHADOW),  # the ceiling
        ("shadow", {"PARTIAL_TRUST_MODE": "canary"}, True, Mode.SHADOW),
        ("off", {}, False, Mode.OFF),
        ("sideways", {}, False, Mode.OFF),  # invalid: the strictest reading
        (7, {}, False, Mode.OFF),  # the wrong type: the strictest reading
    ],
)
async def test_the_mode_flag_with_the_ceiling(
    served: object, env: dict[str, str], enabled: bool, mode: Mode
) -> None:
    values: dict[str, object] = dict(ON)
    if served is not None:
        values[MODE] = served
    source = memory_source(memory_provider(values), env)
    await source.start()
    try:
        got = source.current()
        assert (got.enabled, got.mode) == (enabled, mode)
    finally:
        await source.stop()
