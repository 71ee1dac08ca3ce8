"""A settings source kept current from an OpenFeature provider, read for free per request.

``current()`` returns a prebuilt, frozen ``EffectiveSettings`` (plus one clock read for the
staleness bound): no flag is evaluated on the request path. The snapshot is rebuilt when the
provider says something happened (READY, CONFIGURATION_CHANGED, ERROR, STALE) and every
``refresh_interval_s`` for providers that emit no events.

Fail closed, watched by us rather than trusted to the provider: provider status not READY, a
snapshot older than ``stale_after_s``, or (file provider) anything wrong with the flag file
(missing, unreadable, not a regular file, oversized, invalid, too slow to read: the guard's
``state().error``, see ``partial_trust.flags.guard``) → corridor off with ``flags_available=False``
and the
reason in ``status()["last_error"]`` (logged once per new reason). With the file provider the
values are used only when flagd serves the very content the guard validated last (its hash);
while flagd catches up (one poll) the previous snapshot is held, for at most ``stale_after_s``.
Nothing here reads a file: the guard reads on its own thread and tells us when it changes.

Every evaluation carries an evaluation context without raw data (``partial_trust.flags.evaluate``):
the
targeting key ``partial-trust/<corridor>`` and the attributes ``corridor`` and ``service``. An
error the provider answers for a flag (``TARGETING_KEY_MISSING`` and the like) fails closed
and is named in ``last_error``. The environment's ceilings (``config.apply_ceiling``) apply
to whatever the provider serves; ``status()["limits"]`` says what decided each value.

Provider rule: the corridor evaluates through its own OpenFeature domain (``partial-trust``),
so it never touches the host app's default provider. If the host already bound a provider to
that domain, it is used as it is and never replaced or shut down; otherwise ``start()`` binds
the configured one and ``stop()`` unbinds and shuts down only that one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from openfeature import api
from openfeature.event import EventDetails, ProviderEvent
from openfeature.provider import ProviderStatus
from openfeature.provider.no_op_provider import NoOpProvider
from opentelemetry import trace

from partial_trust.config import DEFAULT_INTENT, EffectiveSettings, EnvDefaults
from partial_trust.corridors import corridor_mode_cap, flag_keys
from partial_trust.flags import logthrottle
from partial_trust.flags.evaluate import (
    ProviderError,
    ProviderUnavailable,
    evaluate,
    evaluation_context,
    unavailable,
)
from partial_trust.flags.filecheck import FileCheck
from partial_trust.flags.guard import FlagFileGuard

logger = logging.getLogger("partial_trust.flags")
_tracer = trace.get_tracer("partial_trust.flags")
DOMAIN = "partial-trust"
DEFAULT_SERVICE = "partial-trust"
_EVENTS = tuple(ProviderEvent)
_FIELDS = ("flags_available", "enabled", "sample_rate", "timeout_ms", "profile_id")
#: What stop() leaves bound to our domain: recognised as "nothing bound" by the next start().
_UNBOUND = NoOpProvider()
ChangeCallback = Callable[[EffectiveSettings], None]


def _tracing_hooks() -> list[Any]:
    """The OpenTelemetry hook if its package is installed (it is a dependency; be lenient)."""
    try:
        from openfeature.contrib.hook.opentelemetry import TracingHook
    except ImportError:  # pragma: no cover - the dependency is declared
        logger.warning("openfeature-hooks-opentelemetry missing: flag evaluations not traced")
        return []
    return [TracingHook(exclude_exceptions=True)]  # a missing flag is normal here, not an error


class FlagSettingsSource:
    """``ManagedSettingsSource`` over an OpenFeature provider (see the module docstring)."""

    def __init__(
        self,
        defaults: EnvDefaults,
        *,
        kind: str,
        provider_factory: Callable[[], Any],
        policy_default: bool = False,
        flags_file: Path | None = None,
        refresh_interval_s: float = 0.25,
        stale_after_s: float = 2.0,
        ready_timeout_s: float = 2.0,
        corridor: str | None = None,
        service: str | None = None,
    ) -> None:
        self.kind = kind
        self._defaults = defaults
        self._policy = policy_default
        name = corridor or defaults.intent or DEFAULT_INTENT
        self.corridor = name
        self._context = evaluation_context(name, service or DEFAULT_SERVICE)
        #: The corridor's own keys, and its risk class's cap (``partial_trust.corridors``).
        self._keys = flag_keys(name)
        self._cap = corridor_mode_cap(name)
        self._factory = provider_factory
        self._flags_file = flags_file
        self._file: FileCheck | None = None  # only while we run our own guarded file provider
        self._interval = refresh_interval_s
        self._stale_after = stale_after_s
        self._ready_timeout = ready_timeout_s
        self._off = unavailable(defaults, self._policy, kind, self._keys, self._cap)
        self._snapshot = self._off
        self._refreshed_at = -float("inf")
        self._lock = threading.Lock()
        self._callbacks: list[ChangeCallback] = []
        self._client = api.get_client(DOMAIN)
        self._owned: Any = None
        self._task: asyncio.Task[None] | None = None
        self._filter: logthrottle.ThrottleFilter | None = None
        self._running = False
        self._last_change: datetime | None = None
        self._last_error: str | None = "not started"

    # --- the request path -------------------------------------------------------------
    def current(self) -> EffectiveSettings:
        if time.monotonic() - self._refreshed_at > self._stale_after:
            return self._off
        return self._snapshot

    # --- lifecycle --------------------------------------------------------------------
    async def start(self) -> None:
        if self._running:
            return
        self._filter = logthrottle.install()
        self._client = api.get_client(DOMAIN)  # a fresh client: hooks from a past start go
        bound = self._client.provider
        if bound is _UNBOUND or bound is api.get_client().provider:  # nothing bound to us
            self._owned = self._factory()
            guard = getattr(self._owned, "guard", None)
            if isinstance(guard, FlagFileGuard):
                self._file = FileCheck(guard, self._client)
                guard.add_listener(self._on_guard)
            api.set_provider(self._owned, DOMAIN)  # initializes on a thread; status NOT_READY
            deadline = time.monotonic() + self._ready_timeout
            while (
                self._client.get_provider_status() is ProviderStatus.NOT_READY
                and time.monotonic() < deadline
            ):
                await asyncio.sleep(0.01)
        self._client.add_hooks(_tracing_hooks())
        self._running = True
        for event in _EVENTS:
            self._client.add_handler(event, self._on_event)
        self.refresh()
        self._task = asyncio.create_task(self._refresh_loop(), name="partial-trust-flags")

    async def stop(self) -> None:
        if not self._running:
            return
        self._running = False
        for event in _EVENTS:
            with contextlib.suppress(ValueError):
                self._client.remove_handler(event, self._on_event)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._file is not None:
            self._file.guard.remove_listener(self._on_guard)
        if self._owned is not None:
            api.set_provider(_UNBOUND, DOMAIN)
            await asyncio.to_thread(self._owned.shutdown)
            self._owned = None
            self._file = None
        if self._filter is not None:
            logthrottle.remove(self._filter)
            self._filter = None
        self._publish(self._off, None)
        self._last_error = "stopped"

    def on_change(self, callback: ChangeCallback) -> None:
        """Call ``callback(settings)`` now and on every effective change (from any thread)."""
        self._callbacks.append(callback)
        self._call(callback, self._snapshot)

    # --- refreshing -------------------------------------------------------------------
    def _on_event(self, details: EventDetails) -> None:
        if not self._running:
            return
        self.refresh()

    def _on_guard(self) -> None:
        """The guard saw the flag file change (its thread): act now, not at the next tick."""
        if self._running:
            self.refresh()

    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                self.refresh()
            except Exception:  # never let the refresher die: current() would go stale (off)
                logger.exception("flag refresh failed")

    def refresh(self) -> EffectiveSettings:
        """Rebuild the snapshot now (event handlers, the interval task, and tests call it)."""
        with self._lock:
            new, error = self._compute()
            if new != self._snapshot:
                with _tracer.start_as_current_span("partial_trust.flags.change") as span:
                    new, error = self._compute()  # again, so the tracing hook records it
                    span.set_attribute("partial_trust.flags_available", new.flags_available)
                    span.set_attribute("partial_trust.enabled", new.enabled)
                    span.set_attribute("partial_trust.sample_rate", new.sample_rate)
            self._publish(new, error)
            self._refreshed_at = time.monotonic()
            return new

    def _compute(self) -> tuple[EffectiveSettings, str | None]:
        expected = None
        if self._file is not None:
            error, behind, expected = self._file.check()
            if error is not None:  # before the provider's status: the file is the reason
                return self._off, error
        status = self._client.get_provider_status()
        if status is not ProviderStatus.READY:
            why = getattr(
                self._client.provider, "status_detail", None
            )  # partial_trust.flags.unleash: why
            return self._off, f"provider {status.value}" + (f": {why}" if why else "")
        if self._file is not None:
            if behind > self._stale_after:
                return self._off, "the provider did not reload the changed flag file"
            if behind > 0:
                return self._snapshot, self._last_error  # hold until the provider reloads
        try:
            new = evaluate(
                self._client, self._defaults, self._policy, self.kind, self._context,
                self._keys, self._cap,
            )  # fmt: skip
        except ProviderUnavailable as exc:
            return self._off, f"provider unavailable ({exc})"
        except ProviderError as exc:  # e.g. TARGETING_KEY_MISSING: fail closed, say which
            return self._off, f"provider error ({exc})"
        if self._file is not None and self._file.served() != expected:
            return self._snapshot, self._last_error  # reloaded while we evaluated: next time
        return new, None

    def _publish(self, new: EffectiveSettings, error: str | None) -> None:
        previous_error, self._last_error = self._last_error, error  # before the snapshot:
        old, self._snapshot = self._snapshot, new  # status() never pairs "off" with no reason
        if error != previous_error and error is not None:
            logger.warning("partial-trust flags unavailable, corridor off: %s", error)
        if new == old:
            return
        self._last_change = datetime.now(UTC)
        diff = ", ".join(
            f"{name} {getattr(old, name)!r} -> {getattr(new, name)!r}"
            for name in _FIELDS
            if getattr(old, name) != getattr(new, name)
        )
        logger.info("partial-trust flags changed (%s): %s", self.kind, diff)
        for callback in list(self._callbacks):
            self._call(callback, new)

    @staticmethod
    def _call(callback: ChangeCallback, settings: EffectiveSettings) -> None:
        try:
            callback(settings)
        except Exception:
            logger.exception("flag change callback failed")

    def status(self) -> dict[str, object]:
        """For /health: where the flags come from and what they are now."""
        snap = self.current()
        provider = self._client.provider
        return {
            "provider": self.kind,
            "provider_name": provider.get_metadata().name,
            "provider_status": self._client.get_provider_status().value,
            "provider_owned": self._owned is not None,
            "flags_file": str(self._flags_file) if self._flags_file is not None else None,
            "flags_available": snap.flags_available,
            "enabled": snap.enabled,
            "sample_rate": snap.sample_rate,
            "timeout_ms": snap.timeout_ms,
            "profile_id": snap.profile_id,
            "limits": dict(snap.limits),
            "corridor": self.corridor,
            "flag_keys": list(self._keys.all()),
            "mode": snap.mode.value,
            "mode_capped": snap.mode_capped,
            "targeting_key": self._context.targeting_key,
            "last_change": self._last_change.isoformat() if self._last_change else None,
            "last_error": self._last_error,
        }
