"""The Unleash provider against a real Unleash server (optional; see flags/README.md).

Skipped, with the reason, unless ``UNLEASH_URL`` (…/api) and ``UNLEASH_API_TOKEN`` (a client
token) point at a reachable server and the ``unleash`` extra is installed. CI has no Unleash.
"""

from __future__ import annotations

import os

import httpx
import pytest

pytestmark = pytest.mark.anyio


def _unleash_env() -> dict[str, str]:
    url, token = os.environ.get("UNLEASH_URL", ""), os.environ.get("UNLEASH_API_TOKEN", "")
    if not url or not token:
        pytest.skip("no Unleash server: set UNLEASH_URL and UNLEASH_API_TOKEN (flags/README.md)")
    pytest.importorskip("openfeature.contrib.provider.unleash", reason="the 'unleash' extra")
    health = url.rstrip("/").removesuffix("/api") + "/health"
    try:
        httpx.get(health, timeout=2).raise_for_status()
    except httpx.HTTPError as exc:
        pytest.skip(f"Unleash at {health} is not reachable: {exc}")
    return {
        "PARTIAL_TRUST_FLAGS_PROVIDER": "unleash",
        "UNLEASH_URL": url,
        "UNLEASH_API_TOKEN": token,
    }


async def test_unleash_provider_serves_a_snapshot() -> None:
    from flags import build_settings_source

    from .helpers import wait_until

    source = build_settings_source(_unleash_env())
    await source.start()
    try:
        await wait_until(lambda: source.current().flags_available, timeout_s=10)
        status = source.status()
        assert status["provider"] == "unleash"
        assert status["provider_status"] == "READY"
        assert isinstance(source.current().enabled, bool)
    finally:
        await source.stop()
