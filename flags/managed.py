"""The interface the app and the engine use, and the ``env`` variant (no provider at all).

``ManagedSettingsSource`` extends the engine's ``SettingsSource`` (``current()``) with what the
app's lifespan and ``/health`` need, so the app is written once whatever provider is chosen.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

from partial_trust.config import EffectiveSettings, StaticSettings


@runtime_checkable
class ManagedSettingsSource(Protocol):
    """``current()`` is on the request path and must stay free of I/O and evaluation."""

    def current(self) -> EffectiveSettings: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def status(self) -> dict[str, object]: ...

    def on_change(self, callback: Callable[[EffectiveSettings], None]) -> None: ...


class EnvSettingsSource(StaticSettings):
    """``PARTIAL_TRUST_FLAGS_PROVIDER=env``: the runbook's variables, read once, never change.

    No flag is served, so every value is the variable's (``limits`` says ``env <VARIABLE>``
    for a set one, ``default`` for an unset one): the same ``config.apply_ceiling`` as every
    provider, with nothing above the ceiling."""

    def __init__(self, settings: EffectiveSettings) -> None:
        super().__init__(settings)
        self._settings = settings

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    def on_change(self, callback: Callable[[EffectiveSettings], None]) -> None:
        """Called once, now: the value never changes, but gauges still need setting."""
        callback(self._settings)

    def status(self) -> dict[str, object]:
        s = self._settings
        return {
            "provider": "env",
            "provider_name": None,
            "provider_status": "READY",
            "provider_owned": False,
            "flags_file": None,
            "flags_available": s.flags_available,
            "enabled": s.enabled,
            "sample_rate": s.sample_rate,
            "timeout_ms": s.timeout_ms,
            "profile_id": s.profile_id,
            "limits": dict(s.limits),
            "targeting_key": None,
            "last_change": None,
            "last_error": None,
        }
