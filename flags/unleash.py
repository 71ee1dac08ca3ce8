"""The corridor's Unleash provider: the Unleash SDK, watched so that it fails closed.

``openfeature-provider-unleash`` builds its ``UnleashClient`` with a 15 s poll and reports
READY forever after start-up, whatever happens to the server: a kill took up to ~15 s, and an
Unleash that was down, or a wrong token or URL, left the corridor on the environment defaults.
This provider keeps that package's flag evaluation (``FlagEvaluator``) and its client, but:

* polls every ``refresh_interval_s`` (``UNLEASH_REFRESH_INTERVAL``, 0.5 s by default):
  Unleash itself publishes a change to its client API within ~1 s, so a kill reaches the
  corridor in ~1–1.5 s (a 1 s poll measured 1.5–2.0 s). Each fetch carries the ETag, so an
  unchanged poll is a 304 with no body;
* observes every fetch (``FetchObserver``, through the SDK's public ``custom_options`` and
  ``cache``) and emits OpenFeature ERROR / STALE / READY on
  the transitions ``FetchHealth`` judges (see ``partial_trust.flags.unleash_health``); a watcher
  thread
  re-judges every quarter interval, so a fetch that hangs still goes STALE on time, and the
  first good fetch after an outage brings the provider back to READY by itself;
* exposes the reason as ``status_detail`` for ``/health``;
* evaluates a toggle Unleash does not have (archived, deleted, never created) as ``False``,
  never as the caller's default: a ``partial-trust-enabled`` that disappears turns the corridor
  off instead of falling back to ``PARTIAL_TRUST_ENABLED``. The three value flags still fall
  back to the environment defaults (the enable toggle gates them all);
* keeps toggles in memory only: the SDK's default file cache would let a later start with a
  wrong token come up on toggles left on disk by an earlier process.

The fetch is the SDK's own, observed from outside (``partial_trust.flags.unleash_fetch``).
"""

from __future__ import annotations

import logging
import math
import os
import socket
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from openfeature.contrib.provider.unleash.flag_evaluation import FlagEvaluator
from openfeature.evaluation_context import EvaluationContext
from openfeature.event import ProviderEventDetails
from openfeature.exception import ErrorCode, GeneralError, ProviderFatalError
from openfeature.flag_evaluation import FlagResolutionDetails, FlagValueType, Reason
from openfeature.provider import AbstractProvider, Metadata, ProviderStatus
from UnleashClient.clients.unleash_client import UnleashClient
from UnleashClient.events import BaseEvent, UnleashEventType
from UnleashClient.utils import InstanceAllowType

from partial_trust.flags import logthrottle
from partial_trust.flags.unleash_fetch import FetchObserver, ObservedCache
from partial_trust.flags.unleash_health import FetchHealth

logger = logging.getLogger("partial_trust.flags")
SDK_LOGGER = "UnleashClient"  # warns on every poll while it has no toggles: throttled
STALE_AFTER_INTERVALS = 3
#: Never STALE sooner than this (nor a fetch cut before 2 s), however short the poll: one
#: slow answer from a busy Unleash must not turn the corridor off.
STALE_AFTER_MIN_S = 3.0


class UnleashFlagProvider(AbstractProvider):
    """OpenFeature provider over an ``UnleashClient`` that reports its own staleness."""

    def __init__(
        self, url: str, app_name: str, api_token: str, refresh_interval_s: float = 0.5
    ) -> None:
        self.app_name = app_name
        self.refresh_interval_s = refresh_interval_s
        stale_after_s = max(STALE_AFTER_INTERVALS * refresh_interval_s, STALE_AFTER_MIN_S)
        self.health = FetchHealth(stale_after_s)
        timeout_s = min(max(math.ceil(2 * refresh_interval_s), 2), 10)  # the SDK takes whole s
        self.fetches = FetchObserver(self.health, self._judge, timeout_s)
        self.client = UnleashClient(
            url=url,
            app_name=app_name,
            instance_id=f"{socket.gethostname()}-{os.getpid()}",
            # The SDK annotates int, but hands the value to APScheduler's IntervalTrigger,
            # which takes fractional seconds.
            refresh_interval=refresh_interval_s,  # type: ignore[arg-type]  # float seconds: see above
            request_timeout=timeout_s,
            request_retries=0,
            custom_headers={"Authorization": api_token},
            custom_options=self.fetches.request_options(),
            cache=ObservedCache(self.fetches),
            multiple_instance_mode=InstanceAllowType.SILENTLY_ALLOW,  # one per start(); fine
            event_callback=self._on_unleash_event,
            sdk_flavor="partial-trust",
        )
        self._evaluator = FlagEvaluator(self)
        self._lock = threading.RLock()
        self._reported: tuple[ProviderStatus, str | None] | None = None
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None
        self._throttle: logthrottle.ThrottleFilter | None = None

    # --- lifecycle (the SDK calls initialize on its own thread) -------------------------
    def initialize(self, evaluation_context: EvaluationContext | None = None) -> None:
        self._throttle = logthrottle.install(SDK_LOGGER)
        try:
            self.client.initialize_client()  # registers, fetches once, schedules the polls
        except Exception as exc:
            self.health.failed(f"start-up failed ({type(exc).__name__})")
            raise ProviderFatalError(f"Unleash client did not start: {type(exc).__name__}") from exc
        self.health.settle(timeout_s=2.0)
        with self._lock:
            self._reported = self.health.assess()
        self._watcher = threading.Thread(target=self._watch, name="unleash-health", daemon=True)
        self._watcher.start()
        status, reason = self._reported
        if status is not ProviderStatus.READY:
            raise GeneralError(reason)  # the SDK marks us ERROR; a good fetch makes us READY

    def shutdown(self) -> None:
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join(timeout=5)
        self.client.destroy()
        if self._throttle is not None:
            logthrottle.remove(self._throttle, SDK_LOGGER)
            self._throttle = None

    @property
    def status_detail(self) -> str | None:
        """Why the provider is not READY (``None`` when it is): shown on ``/health``."""
        return self.health.assess()[1]

    # --- judging and telling OpenFeature ------------------------------------------------
    def _watch(self) -> None:
        tick = self.refresh_interval_s / 4
        while not self._stop.wait(tick):
            self._judge()

    def _judge(self) -> None:
        """Emit READY / ERROR / STALE when the judgement changes (fetch or watcher thread)."""
        with self._lock:
            if self._reported is None or self._stop.is_set():
                return  # before initialize() reported, the SDK owns the first status
            now = self.health.assess()
            if now == self._reported:
                return
            previous, self._reported = self._reported, now
            status, reason = now
            if status is ProviderStatus.READY:
                logger.info("Unleash fetches succeed again (was: %s)", previous[1])
                self.emit_provider_ready(ProviderEventDetails())
            elif status is ProviderStatus.STALE:
                self.emit_provider_stale(ProviderEventDetails(message=reason))
            else:
                self.emit_provider_error(
                    ProviderEventDetails(message=reason, error_code=ErrorCode.GENERAL)
                )

    def _on_unleash_event(self, event: BaseEvent) -> None:
        """New toggles are in the SDK's engine (its event thread): count the fetch as good
        only now, so READY never precedes them, and have the snapshot rebuilt at once."""
        if event.event_type is not UnleashEventType.FETCHED:
            return
        self.health.succeeded()
        with self._lock:
            was_ready = self._ready()
            self._judge()  # a recovery emits READY itself, which rebuilds the snapshot
            if was_ready and self._ready():
                self.emit_provider_configuration_changed(ProviderEventDetails())

    def _ready(self) -> bool:
        return self._reported is not None and self._reported[0] is ProviderStatus.READY

    # --- evaluation ---------------------------------------------------------------------
    def get_metadata(self) -> Metadata:
        return Metadata(name="Unleash (partial-trust)")

    def _build_unleash_context(
        self, evaluation_context: EvaluationContext | None = None
    ) -> dict[str, Any] | None:
        """As ``openfeature-provider-unleash`` does: targeting key → ``userId``, then attrs."""
        if not evaluation_context:
            return None
        context: dict[str, Any] = {}
        if evaluation_context.targeting_key:
            context["userId"] = evaluation_context.targeting_key
        context.update(evaluation_context.attributes)
        return context

    def resolve_boolean_details(
        self,
        flag_key: str,
        default_value: bool,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[bool]:
        """Unleash's own answer, with no fallback: a toggle it does not have is off."""
        context = self._build_unleash_context(evaluation_context)
        enabled = bool(self.client.is_enabled(flag_key, context=context))
        # An Unleash toggle that is off (or gone) *serves* False: OpenFeature's DISABLED would
        # read as "nothing served" and hand the decision to the environment's default.
        reason = Reason.TARGETING_MATCH if enabled else Reason.STATIC
        return FlagResolutionDetails(value=enabled, reason=reason)

    def resolve_string_details(
        self, flag_key: str, default_value: str, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[str]:
        return self._evaluator.resolve_string_details(flag_key, default_value, evaluation_context)

    def resolve_integer_details(
        self, flag_key: str, default_value: int, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[int]:
        return self._evaluator.resolve_integer_details(flag_key, default_value, evaluation_context)

    def resolve_float_details(
        self,
        flag_key: str,
        default_value: float,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[float]:
        return self._evaluator.resolve_float_details(flag_key, default_value, evaluation_context)

    def resolve_object_details(
        self,
        flag_key: str,
        default_value: Sequence[FlagValueType] | Mapping[str, FlagValueType],
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[Sequence[FlagValueType] | Mapping[str, FlagValueType]]:
        return self._evaluator.resolve_object_details(flag_key, default_value, evaluation_context)
