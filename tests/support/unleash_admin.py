"""The corridor's four flags in a real Unleash, through its admin API (what an operator does).

Mapping (flags/README.md, Unleash): ``partial-trust-enabled`` is a toggle with one
flexibleRollout strategy at 100%; the three value flags are toggles whose strategy carries one
variant whose payload is the value (Unleash 7 deprecates environment variants: strategy
variants are the way). Everything is done in the client token's environment.
"""

from __future__ import annotations

from typing import Any

import httpx

from partial_trust.flags.flagfile import ENABLED, PROFILE_ID, SAMPLE_RATE, TIMEOUT_MS
from tests.support.unleash_server import ENVIRONMENT, UnleashServer

PROJECT = "/projects/default/features"


def _check(resp: httpx.Response, *ok: int) -> httpx.Response:
    if resp.status_code not in (ok or (200, 201, 202)):
        raise AssertionError(f"{resp.request.method} {resp.request.url.path}: {resp.text}")
    return resp


def _strategy(name: str, payload: dict[str, str] | None) -> dict[str, Any]:
    variants = []
    if payload is not None:
        variants = [
            {
                "name": "value",
                "weight": 1000,
                "weightType": "variable",
                "stickiness": "default",
                "payload": payload,
            }
        ]
    return {
        "name": "flexibleRollout",
        "parameters": {"rollout": "100", "stickiness": "default", "groupId": name},
        "variants": variants,
    }


def put_toggle(server: UnleashServer, name: str, on: bool, payload: dict[str, str] | None) -> None:
    """Create (if needed) and set one toggle: its strategy, its variant payload, on or off."""
    admin = server.admin
    if admin.get(f"{PROJECT}/{name}").status_code == 404:
        _check(admin.post(PROJECT, json={"name": name, "type": "operational"}))
    env = f"{PROJECT}/{name}/environments/{ENVIRONMENT}"
    existing = _check(admin.get(f"{env}/strategies")).json()
    body = _strategy(name, payload)
    if existing:
        _check(admin.put(f"{env}/strategies/{existing[0]['id']}", json=body))
    else:
        _check(admin.post(f"{env}/strategies", json=body))
    set_enabled(server, name, on)


def set_enabled(server: UnleashServer, name: str, on: bool) -> None:
    """Turn one toggle on or off in the environment (the kill switch is ``ENABLED`` off)."""
    env = f"{PROJECT}/{name}/environments/{ENVIRONMENT}"
    _check(server.admin.post(f"{env}/{'on' if on else 'off'}"))


def archive(server: UnleashServer, name: str) -> None:
    """Archive the toggle, then delete it from the archive so a test can create it again."""
    _check(server.admin.delete(f"{PROJECT}/{name}"))
    _check(server.admin.delete(f"/archive/{name}"))


def set_flags(
    server: UnleashServer,
    *,
    enabled: bool = True,
    sample_rate: str = "1",
    timeout_ms: str = "150",
    profile_id: str = "partial_trust",
) -> None:
    """All four flags at once (values as Unleash stores payloads: strings)."""
    put_toggle(server, SAMPLE_RATE, True, {"type": "number", "value": sample_rate})
    put_toggle(server, TIMEOUT_MS, True, {"type": "number", "value": timeout_ms})
    put_toggle(server, PROFILE_ID, True, {"type": "string", "value": profile_id})
    put_toggle(server, ENABLED, enabled, None)
