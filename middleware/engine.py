"""The corridor's decisions, free of ASGI: admit → ask the LLM → judge → one ``Outcome``.

Data flows one way. ``admit`` turns the request body and the current settings into either a
skip ``Outcome`` or an ``Admission``; ``ask`` gets a candidate under one deadline (in a task,
beside the baseline); ``candidate_by`` waits for it no later than the request's deadline;
``decide`` judges it against the baseline; ``emit`` hands the single ``Outcome`` to every sink. The
engine holds configuration and shared clients only; per-request state lives in the values
passed between these steps.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import sys
import time
import traceback
from dataclasses import dataclass
from typing import Any, Final, Generic

from opentelemetry.trace import Span

from partial_trust.config import EffectiveSettings, SettingsSource
from partial_trust.corridors import check_corridor, corridor_mode_cap
from partial_trust.middleware import tracing
from partial_trust.middleware.acceptance import CandidateT
from partial_trust.middleware.arrival import ArrivalClock
from partial_trust.middleware.circuit import CircuitBreaker
from partial_trust.middleware.completion import CandidateError
from partial_trust.middleware.corridor import CommandT, Corridor
from partial_trust.middleware.llm_client import LLMClient
from partial_trust.middleware.metrics import CorridorMetrics
from partial_trust.middleware.policy import PolicyRegistry, ResolvedProfile
from partial_trust.middleware.review import ReviewSink, hand_over
from partial_trust.middleware.risk_log import RiskLog
from partial_trust.middleware.sampling import CommandKeyer, is_sampled
from partial_trust.middleware.shadow import ShadowQueue
from partial_trust.middleware.shadow_share import DEFAULT_LOOP_SHARE, LoopShare
from partial_trust.mode import Mode, stricter_mode
from partial_trust.outcome import Outcome, Reason, Status

logger = logging.getLogger("partial_trust.engine")


@dataclass(frozen=True, slots=True)
class Admission(Generic[CommandT]):
    """A command the LLM will be asked about, with everything the later steps need."""

    settings: EffectiveSettings
    command: CommandT
    command_key: str
    profile: ResolvedProfile

    @property
    def timeout_s(self) -> float:
        return call_timeout_ms(self.settings.timeout_ms, self.profile) / 1000.0

    @property
    def shadow(self) -> bool:
        return self.settings.mode is Mode.SHADOW


def call_timeout_ms(timeout_ms: int, profile: ResolvedProfile | None) -> int:
    """Where an LLM call is cut: the timeout flag, capped by the profile's ``timeout_cap_ms``
    (no profile resolved: the flag alone). ``/health``'s unreachable latency lines use it."""
    return timeout_ms if profile is None else min(timeout_ms, profile.profile.timeout_cap_ms)


class CappedSettings:
    """A source whose mode cannot pass the risk class's cap (``admin``: shadow). Sources
    built by ``flags.build_settings_source`` cap already; this holds for any other. One
    capped value per snapshot (cached by identity): no per-request allocation."""

    def __init__(self, inner: SettingsSource, cap: tuple[Mode, str]) -> None:
        self.inner = inner
        self._cap = cap
        self._cache: tuple[EffectiveSettings, EffectiveSettings] | None = None

    def current(self) -> EffectiveSettings:
        now = self.inner.current()
        cached = self._cache
        if cached is not None and cached[0] is now:
            return cached[1]
        capped = now
        mode, why = self._cap
        if stricter_mode(now.mode, mode) is not now.mode:
            limits = tuple((k, why if k == "mode" else v) for k, v in now.limits)
            capped = dataclasses.replace(now, mode=mode, mode_capped=True, limits=limits)
        self._cache = (now, capped)
        return capped


def outcome_mode(settings: EffectiveSettings) -> Mode:
    """The mode an outcome records: ``shadow`` or ``canary`` (``off`` records nothing)."""
    return Mode.SHADOW if settings.mode is Mode.SHADOW else Mode.CANARY


@dataclass(frozen=True, slots=True)
class CandidateResult:
    raw: object = None
    error: Reason | None = None
    latency_ms: float | None = None


#: Starlette's JSONResponse encoding, so an accepted answer looks like a baseline one; one
#: instance, since ``json.dumps`` with options builds a new encoder on every call.
_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def _encode(decision: dict[str, Any]) -> bytes:
    return _ENCODER.encode(decision).encode("utf-8")


class CorridorEngine(Generic[CommandT, CandidateT]):
    """Generic over the corridor's command and candidate types (type-only: no runtime cost)."""

    def __init__(
        self,
        corridor: Corridor[CommandT, CandidateT],
        *,
        settings: SettingsSource,
        policy: PolicyRegistry,
        llm: LLMClient,
        circuit: CircuitBreaker | None = None,
        risk_log: RiskLog | None = None,
        metrics: CorridorMetrics | None = None,
        keyer: CommandKeyer | None = None,
        shadow_queue_size: int = 64,
        shadow_workers: int = 4,
        shadow_loop_share: float = DEFAULT_LOOP_SHARE,
        review: ReviewSink | None = None,
    ) -> None:
        #: Refused here, before anything is built, unless the allowlist has this name with
        #: this very risk class (``partial_trust.corridors.check_corridor``: ``ValueError``).
        self.risk_class = check_corridor(
            getattr(corridor, "name", None), getattr(corridor, "risk_class", None)
        )
        self.corridor = corridor
        cap = corridor_mode_cap(corridor.name)
        #: Whatever source is passed, the class's cap holds (a host's own source included).
        self.settings: SettingsSource = settings if cap is None else CappedSettings(settings, cap)
        self.policy = policy
        self.llm = llm
        self.circuit = circuit
        self.risk_log = risk_log
        self.metrics = metrics
        self.keyer = keyer or CommandKeyer()
        #: The advisory review store's sink (``None``: not configured for this deployment).
        self.review = review
        self._not_sampled_cache: tuple[EffectiveSettings, Outcome] | None = None
        #: Where a sampled request's deadline starts (``arrival``): its batch's loop turn.
        self.arrival = ArrivalClock()
        #: Shadow mode's background LLM calls (started and stopped with the stack).
        self.shadow: ShadowQueue[CommandT, CandidateT] = ShadowQueue(
            self,
            maxsize=shadow_queue_size,
            workers=shadow_workers,
            loop_share=LoopShare(shadow_loop_share),
        )
        if metrics is not None:
            metrics.preinit(corridor.name)
            if circuit is not None:
                metrics.set_circuit_state(corridor.name, circuit.state_code)

    def skip(
        self, settings: EffectiveSettings, reason: Reason, command_key: str | None = None
    ) -> Outcome:
        return Outcome(
            corridor=self.corridor.name,
            status=Status.SKIPPED,
            reason=reason,
            sampled=False,
            sample_rate=settings.sample_rate,
            profile_id=settings.profile_id,
            command_key=command_key,
            mode=outcome_mode(settings),
            mode_capped=settings.mode_capped,
        )

    def admit(self, settings: EffectiveSettings, body: bytes) -> Admission[CommandT] | Outcome:
        """The checks before any LLM call, in the runbook's order."""
        corridor = self.corridor
        command = corridor.parse(body)
        if command is None:
            return self.skip(settings, Reason.INVALID_COMMAND)
        command_id = corridor.command_id(command)
        if not corridor.matches(command):
            return self.skip(settings, Reason.CORRIDOR_MISMATCH, self.keyer(command_id))
        if not corridor.has_capability(command):
            return self.skip(settings, Reason.CAPABILITY_MISMATCH, self.keyer(command_id))
        profile = self.policy.resolve(corridor.task, settings.profile_id)
        if not settings.policy_enabled or profile is None:
            return self.skip(settings, Reason.POLICY_DISABLED, self.keyer(command_id))
        if not is_sampled(corridor.name, command_id, settings.sample_rate):
            return self._not_sampled(settings)
        return Admission(settings, command, self.keyer(command_id), profile)

    def _not_sampled(self, settings: EffectiveSettings) -> Outcome:
        """``skipped/not_sampled`` is 90-99% of corridor traffic and carries nothing of the
        request (it is never logged, so no command key): one value per settings snapshot
        serves them all, which keeps the hot path inside its microsecond budget."""
        cached = self._not_sampled_cache
        if cached is None or cached[0] is not settings:
            cached = self._not_sampled_cache = (settings, self.skip(settings, Reason.NOT_SAMPLED))
        return cached[1]

    async def ask(
        self,
        adm: Admission[CommandT],
        span: Span | None = None,
        deadline: float | None = None,
    ) -> CandidateResult:
        """One candidate under one deadline; every failure becomes a reason, never a raise.
        ``deadline`` is event-loop time, set when the request arrived (see ``LLMClient``)."""
        circuit, metrics, name = self.circuit, self.metrics, self.corridor.name
        if circuit is not None and not circuit.allow():
            return CandidateResult(error=Reason.CIRCUIT_OPEN)
        request = self.corridor.build_request(adm.command, adm.profile.profile)
        started = time.perf_counter()
        if metrics is not None:
            metrics.llm_in_flight(name, +1)
        try:
            with tracing.llm_call_span(
                span, model=adm.profile.profile.model, timeout_ms=int(adm.timeout_s * 1000)
            ):
                raw = await self.llm.complete(request, timeout_s=adm.timeout_s, deadline=deadline)
        except CandidateError as exc:
            result = CandidateResult(error=exc.reason, latency_ms=_ms_since(started))
        else:
            result = CandidateResult(raw=raw, latency_ms=_ms_since(started))
        finally:
            if metrics is not None:
                metrics.llm_in_flight(name, -1)
        if circuit is not None:
            before = circuit.state_code
            if result.error is None:
                circuit.record_success()
            else:
                circuit.record_failure()
            if metrics is not None and circuit.state_code != before:
                metrics.set_circuit_state(name, circuit.state_code)
        return result

    def decide(
        self,
        adm: Admission[CommandT],
        result: CandidateResult,
        baseline: dict[str, Any],
        baseline_latency_ms: float,
    ) -> tuple[Outcome, bytes | None]:
        """The outcome, and the body to send instead of the baseline's (only if accepted, and
        only in canary: in shadow nothing is ever served)."""
        corridor, settings = self.corridor, adm.settings
        common: dict[str, Any] = {
            "corridor": corridor.name,
            "sampled": True,
            "sample_rate": settings.sample_rate,
            "profile_id": adm.profile.profile_id,
            "command_key": adm.command_key,
            "latency_ms": result.latency_ms,
            "baseline_latency_ms": round(baseline_latency_ms, 3),
            "items_baseline": corridor.baseline_items(baseline),
            "mode": outcome_mode(settings),
            "mode_capped": settings.mode_capped,
        }
        if result.error is not None:
            return Outcome(status=Status.ERROR, reason=result.error, **common), None
        threshold = adm.profile.profile.confidence_threshold
        verdict = corridor.judge(result.raw, adm.command, baseline, threshold)
        status = Status.ACCEPTED_LLM if verdict.accepted else Status.FALLBACK_DETERMINISTIC
        outcome = Outcome(
            status=status,
            reason=verdict.reason,
            intent_match=verdict.intent_match,
            entity_key_match=verdict.entity_key_match,
            confidence=verdict.confidence,
            items_llm=verdict.items_llm,
            agreement=verdict.agreement,
            **common,
        )
        review = self.review
        if review is not None and settings.review_enabled:
            self._keep_for_review(review, adm, outcome, result.raw, baseline)
        if not verdict.accepted or adm.shadow:
            return outcome, None
        body = _encode(corridor.merge(baseline, verdict))
        return outcome, body

    def _keep_for_review(
        self,
        review: ReviewSink,
        adm: Admission[CommandT],
        outcome: Outcome,
        raw: object,
        baseline: Any,
    ) -> None:
        """The raw parts, held in memory for this call only, go to the review sink alone."""
        try:
            hand_over(review, outcome, adm.command, baseline, raw)
        except Exception:
            log_failure("the review sink failed")

    def internal_error(
        self, settings: EffectiveSettings, adm: Admission[CommandT] | None
    ) -> Outcome:
        log_failure("the corridor failed inside; the baseline answer was used")
        return Outcome(
            corridor=self.corridor.name,
            status=Status.ERROR,
            reason=Reason.INTERNAL_ERROR,
            sampled=adm is not None,
            sample_rate=settings.sample_rate,
            profile_id=adm.profile.profile_id if adm else settings.profile_id,
            command_key=adm.command_key if adm else None,
            mode=outcome_mode(settings),
            mode_capped=settings.mode_capped,
        )

    def emit(self, outcome: Outcome, span: Span | None = None) -> None:
        """Hand the one outcome to every sink. A failing sink must not fail the request."""
        try:
            if span is None and outcome.reason is Reason.NOT_SAMPLED:
                # 90-99% of corridor traffic: a count and the host span's attributes, no more
                # (no latency, no candidate, never logged), without walking the other sinks.
                if self.metrics is not None:
                    self.metrics.count(outcome)
                tracing.annotate_current_span(outcome)
                return
            if self.metrics is not None:
                self.metrics.observe(outcome)
            if self.risk_log is not None and outcome.logged:
                self.risk_log.submit(outcome)
            if span is not None:
                tracing.finish_corridor_span(span, outcome)
            elif outcome.reason is Reason.NOT_SAMPLED:
                tracing.annotate_current_span(outcome)
            else:
                tracing.record_outcome(outcome)
        except Exception:
            log_failure("an outcome sink failed")


#: Seconds by which an LLM call's own deadline trails its request's (see ``candidate_by``).
UNWIND_LAG_S: Final = 0.002

#: LLM calls whose request has answered without them, until they have unwound.
_UNWINDING: set[asyncio.Task[CandidateResult]] = set()


async def candidate_by(
    task: asyncio.Task[CandidateResult], deadline: float, asked: float
) -> CandidateResult:
    """The candidate of ``task`` (from ``ask``), or ``llm_timeout`` at ``deadline``.

    The request answers at its deadline without waiting for the call to unwind: the call's
    own deadline trails it by ``UNWIND_LAG_S``, so the call ends itself just after (and
    ``ask`` records it on the breaker). When many deadlines fall in the same millisecond,
    every answer goes out before any of the unwinding, instead of each answer waiting for
    the unwinding of the calls ahead of it. ``asked`` is ``perf_counter`` at the ask.
    """
    if not task.done():
        # A future woken by whichever comes first: ~4 µs, where timeout_at + shield is ~7.
        loop = asyncio.get_running_loop()
        woken: asyncio.Future[None] = loop.create_future()

        def wake(_: object = None) -> None:
            if not woken.done():
                woken.set_result(None)

        timer = loop.call_at(deadline, wake)
        task.add_done_callback(wake)
        try:
            await woken
        except asyncio.CancelledError:
            task.cancel()  # the request itself was cancelled: so is its call
            raise
        finally:
            timer.cancel()
            task.remove_done_callback(wake)
    if task.done():
        return task.result()
    _UNWINDING.add(task)  # the loop holds tasks weakly; this one must finish its cleanup
    task.add_done_callback(_unwound)
    return CandidateResult(error=Reason.LLM_TIMEOUT, latency_ms=_ms_since(asked))


def _unwound(task: asyncio.Task[CandidateResult]) -> None:
    _UNWINDING.discard(task)
    if not task.cancelled() and (exc := task.exception()) is not None:
        # Retrieved here, or asyncio would log it with its message, which may quote the
        # command; the type is enough to find it.
        logger.error(
            "an LLM call failed inside after its request answered (%s)", type(exc).__name__
        )


def log_failure(message: str) -> None:
    """Log the exception being handled by its type and stack, never its message: a message
    may quote the command (``KeyError('milk')``), and the log must hold no user data."""
    exc_type, _, tb = sys.exc_info()
    name = exc_type.__name__ if exc_type is not None else "unknown"
    stack = "".join(traceback.format_tb(tb)) if tb is not None else ""
    logger.error("%s (%s)\n%s", message, name, stack.rstrip())


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000.0, 3)
