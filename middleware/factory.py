"""Wiring: everything a host app needs to mount the corridor, built from the environment.

``CorridorStack`` owns the long-lived parts (settings source, LLM client, circuit breaker,
risk log, metrics) and their lifecycle. A host app builds one, wraps its router with
``stack.wrap(app, paths=[...])`` and calls ``start``/``stop`` from its lifespan.

The risk log's ``command_key`` secret is resolved here, because its default home is next to
the risk log (``partial_trust.middleware.hash_key``); a refused key file stops the app at
construction.
While started, the stack keeps raw LLM traffic out of the HTTP libraries' logs
(``partial_trust.middleware.log_privacy``).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, overload

import anyio.to_thread
from prometheus_client import CollectorRegistry
from starlette.types import ASGIApp

from partial_trust import flags, thresholds
from partial_trust.contracts import CommandDTO
from partial_trust.corridors import check_corridor, corridor_mode_cap
from partial_trust.environment import Environment
from partial_trust.flags import ManagedSettingsSource
from partial_trust.middleware import log_privacy
from partial_trust.middleware.acceptance import CandidateT
from partial_trust.middleware.asgi import PartialTrustMiddleware
from partial_trust.middleware.candidate import ShoppingCandidate
from partial_trust.middleware.circuit import CircuitBreaker
from partial_trust.middleware.corridor import CommandT, Corridor, ShoppingCorridor
from partial_trust.middleware.engine import CorridorEngine, call_timeout_ms
from partial_trust.middleware.hash_key import resolve_hash_key
from partial_trust.middleware.llm_client import LLMClient
from partial_trust.middleware.metrics import CorridorMetrics
from partial_trust.middleware.policy import DEFAULT_POLICY_PATH, PolicyRegistry
from partial_trust.middleware.review import ReviewSettings
from partial_trust.middleware.review_metrics import ReviewMetrics
from partial_trust.middleware.review_writer import ReviewWriter
from partial_trust.middleware.risk_log import RiskLog
from partial_trust.middleware.sampling import CommandKeyer
from partial_trust.middleware.shadow_share import LOOP_SHARE_ENV, parse_loop_share

logger = logging.getLogger("partial_trust")

DEFAULT_LLM_BASE_URL = "http://127.0.0.1:8081/v1"


@dataclass
class CorridorStack(Generic[CommandT, CandidateT]):
    """Generic over the corridor's command and candidate; ``from_env()`` without a corridor
    gives the shopping one, ``CorridorStack[CommandDTO, ShoppingCandidate]``."""

    engine: CorridorEngine[CommandT, CandidateT]
    source: ManagedSettingsSource
    llm: LLMClient
    risk_log: RiskLog
    metrics: CorridorMetrics
    circuit: CircuitBreaker
    #: The advisory review store's writer; ``None`` unless ``PARTIAL_TRUST_REVIEW_STORE`` is set.
    review: ReviewWriter | None = None
    _redacting: bool = field(default=False, init=False, repr=False)

    @overload
    @classmethod
    def from_env(
        cls,
        env: Environment | None = None,
        *,
        corridor: None = None,
        registry: CollectorRegistry | None = None,
        source: ManagedSettingsSource | None = None,
    ) -> CorridorStack[CommandDTO, ShoppingCandidate]: ...

    @overload
    @classmethod
    def from_env(
        cls,
        env: Environment | None = None,
        *,
        corridor: Corridor[CommandT, CandidateT],
        registry: CollectorRegistry | None = None,
        source: ManagedSettingsSource | None = None,
    ) -> CorridorStack[CommandT, CandidateT]: ...

    @classmethod
    def from_env(
        cls,
        env: Environment | None = None,
        *,
        corridor: Corridor[CommandT, CandidateT] | None = None,
        registry: CollectorRegistry | None = None,
        source: ManagedSettingsSource | None = None,
    ) -> CorridorStack[CommandT, CandidateT] | CorridorStack[CommandDTO, ShoppingCandidate]:
        """The stack from ``env`` (default: the process environment, read here once: a host
        app's entry point). The risk log's ``command_key`` secret comes from this same
        ``env`` (or the key file next to the risk log), never from a second read."""
        if corridor is None:
            shopping = ShoppingCorridor()
            return CorridorStack.from_env(env, corridor=shopping, registry=registry, source=source)
        env = Environment.from_os() if env is None else env
        # First: a corridor off the allowlist (or with another class) builds nothing at all.
        check_corridor(getattr(corridor, "name", None), getattr(corridor, "risk_class", None))
        loop_share = parse_loop_share(env.get(LOOP_SHARE_ENV))  # a typo stops the start here
        defaults = env.defaults
        policy = PolicyRegistry.load(env.llm.policy_path or DEFAULT_POLICY_PATH)
        metrics = CorridorMetrics(registry)
        if source is None:
            source = flags.build_settings_source(
                env, policy_default=policy.enabled, corridor=corridor.name
            )
        risk_log = RiskLog(defaults.risk_log_path, on_result=metrics.risk_log_result)
        keyer = CommandKeyer(resolve_hash_key(env, defaults.risk_log_path))
        llm = LLMClient(
            env.llm.base_url or DEFAULT_LLM_BASE_URL,
            api_key=env.llm.api_key,
            trust_env=env,
        )
        review_settings = ReviewSettings.from_env(env)
        review = None
        if review_settings is not None:
            review = ReviewWriter(review_settings, on_result=ReviewMetrics(registry).case)
        circuit = CircuitBreaker(
            on_change=lambda state: logger.warning("LLM circuit breaker is now %s", state)
        )
        engine = CorridorEngine(
            corridor,
            settings=source,
            policy=policy,
            llm=llm,
            circuit=circuit,
            risk_log=risk_log,
            metrics=metrics,
            keyer=keyer,
            shadow_loop_share=loop_share,
            review=review,
        )
        return cls(engine, source, llm, risk_log, metrics, circuit, review)

    def wrap(
        self, app: ASGIApp, paths: Iterable[str]
    ) -> PartialTrustMiddleware[CommandT, CandidateT]:
        return PartialTrustMiddleware(app, engine=self.engine, paths=paths)

    async def start(self) -> None:
        if not self._redacting:  # idempotent: one hold per stack, however often it starts
            log_privacy.install()
            self._redacting = True
        self.risk_log.start()
        if self.review is not None:
            self.review.start()  # opens the store on its own thread: never on the loop
        await self.engine.shadow.start()
        await self.source.start()
        corridor = self.engine.corridor.name
        self.source.on_change(lambda settings: self.metrics.set_flags(corridor, settings))

    @contextlib.asynccontextmanager
    async def lifespan(self, app: object) -> AsyncIterator[None]:
        """A Starlette ``lifespan``: ``Starlette(..., lifespan=stack.lifespan)``."""
        await self.start()
        try:
            yield
        finally:
            await self.stop()

    async def stop(self) -> None:
        try:
            # First, while the flags still read as they did: a bounded drain of the queue.
            await self.engine.shadow.stop()
            await self.source.stop()
            await self.llm.aclose()
            await self.risk_log.aclose()
            if self.review is not None:
                await anyio.to_thread.run_sync(self.review.close)
        finally:
            if self._redacting:  # after the LLM client closed: its last traces are covered
                self._redacting = False
                log_privacy.uninstall()

    def status(self) -> dict[str, Any]:
        """The corridor's part of ``GET /health``."""
        settings = self.engine.settings.current()  # the risk class's cap included
        name = self.engine.corridor.name
        cap = corridor_mode_cap(name)
        # where a call is cut now: the timeout flag capped by the profile's timeout_cap_ms
        profile = self.engine.policy.resolve(self.engine.corridor.task, settings.profile_id)
        cut_ms = call_timeout_ms(settings.timeout_ms, profile)
        return {
            "corridor": name,
            "risk_class": self.engine.risk_class.value,
            "mode_cap": {
                "cap": cap[0].value if cap else "canary",
                "capped": settings.mode_capped,
                "why": cap[1] if cap else None,
            },
            "flags": self.source.status(),
            "effective": {
                "enabled": settings.enabled,
                "sample_rate": settings.sample_rate,
                "timeout_ms": settings.timeout_ms,
                "profile_id": settings.profile_id,
                "policy_enabled": settings.policy_enabled,
                "mode": settings.mode.value,
                "flags_available": settings.flags_available,
                "source": settings.source,
            },
            "latency_lines_unreachable": {
                "timeout_ms": cut_ms,
                "profile_cap_ms": None if profile is None else profile.profile.timeout_cap_ms,
                "lines": thresholds.unreachable_latency_lines(cut_ms or None),
                "why": "a call is cut at the timeout (the flag, capped by the profile's "
                "timeout_cap_ms) and counts as an error, so the LLM latency p95 cannot pass "
                "these lines; the timeout-share alert watches them instead",
            },
            "llm_circuit": self.circuit.state,
            "shadow_queue": self.engine.shadow.status(),
            "risk_log": self.risk_log.status(),
            "hash_key": self.engine.keyer.status(),
            "review_store": (
                {"configured": False, "active": False}
                if self.review is None
                else self.review.status()
            ),
        }
