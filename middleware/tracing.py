"""OpenTelemetry spans for corridor outcomes, through the global tracer provider.

Why this shape:

* The library only uses ``opentelemetry-api`` and the *global* provider: the host app (or
  ``partial-trust serve``) decides whether and where spans go. With no provider installed,
  every call here is a cheap no-op.
* A full SDK span costs about 13 µs, the whole not-sampled budget, so ``skipped/not_sampled``
  gets no span of its own: ``annotate_current_span`` only adds the attributes to the request
  span that is already active (~1 µs), if there is a recording one.
* Attributes come only from the ``Outcome``: enums, the configured corridor name, numbers and
  booleans. Never text, item names or ids, and exception messages are not recorded (only
  the exception's class name).

How the engine uses it (sampled request)::

    span = tracing.start_corridor_span()          # before the LLM call
    with tracing.llm_call_span(span, model=m, timeout_ms=t):
        raw = await llm.complete(...)             # child span is current: traceparent injected
    ...
    tracing.finish_corridor_span(span, outcome)   # attributes, status, end

and for an outcome without a pre-started span, ``record_outcome(outcome)`` (which defers to
``annotate_current_span`` for ``not_sampled``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, Span, SpanContext, SpanKind, StatusCode

from partial_trust.outcome import Outcome, Reason, Status

CORRIDOR_SPAN = "partial_trust.corridor"
LLM_SPAN = "partial_trust.llm"

#: A ProxyTracer until the host installs a provider, then the real one: safe at import time.
_tracer = trace.get_tracer("partial_trust_corridor")

AttrValue = str | bool | int | float

_OPTIONAL: tuple[tuple[str, str], ...] = (
    ("latency_ms", "partial_trust.latency_ms"),
    ("baseline_latency_ms", "partial_trust.baseline_latency_ms"),
    ("confidence", "partial_trust.confidence"),
    ("intent_match", "partial_trust.intent_match"),
    ("entity_key_match", "partial_trust.entity_key_match"),
    ("items_baseline", "partial_trust.items_baseline"),
    ("items_llm", "partial_trust.items_llm"),
    ("agreement", "partial_trust.agreement"),
)


_BaseKey = tuple[str, str, str, bool, float, str]
#: The six always-present attributes per (corridor, status, reason, sampled, rate, mode): building
#: them costs ~1 µs, a lookup ~0.2 µs. Bounded: cleared if flag churn ever fills it.
_base_cache: dict[_BaseKey, Mapping[str, AttrValue]] = {}


def _base_attributes(outcome: Outcome) -> Mapping[str, AttrValue]:
    key = (
        outcome.corridor, outcome.status, outcome.reason, outcome.sampled, outcome.sample_rate,
        outcome.mode,
    )  # fmt: skip
    attrs = _base_cache.get(key)
    if attrs is None:
        if len(_base_cache) >= 1024:
            _base_cache.clear()
        attrs = _base_cache[key] = {
            "partial_trust.corridor": str(outcome.corridor),
            "partial_trust.status": Status(outcome.status).value,
            "partial_trust.reason": Reason(outcome.reason).value,
            "partial_trust.sampled": bool(outcome.sampled),
            "partial_trust.sample_rate": float(outcome.sample_rate),
            "partial_trust.mode": str(outcome.mode.value),
        }
    return attrs


def outcome_attributes(outcome: Outcome) -> dict[str, AttrValue]:
    """The span attributes of one outcome: enums, corridor name, numbers and booleans only."""
    attrs = dict(_base_attributes(outcome))
    for field, key in _OPTIONAL:
        value = getattr(outcome, field)
        if value is not None:
            attrs[key] = value
    if outcome.mode_capped:
        attrs["partial_trust.mode_capped"] = True
    return attrs


def start_corridor_span() -> Span:
    """Start ``partial_trust.corridor`` under the current context (the request span, if any).

    Not made current: pass it to ``llm_call_span`` and end it with ``finish_corridor_span``.
    """
    return _tracer.start_span(CORRIDOR_SPAN, kind=SpanKind.INTERNAL)


#: The link's one attribute: what the linked span is to a shadow span.
SHADOWED_REQUEST = {"partial_trust.link": "shadowed_request"}
_ROOT = Context()


def request_span_context() -> SpanContext | None:
    """The current (request) span's context if it is a real one, for ``start_shadow_span``.
    On the request path: one context lookup, no allocation when no provider is installed."""
    context = trace.get_current_span().get_span_context()
    return context if context.is_valid else None


def start_shadow_span(origin: SpanContext | None) -> Span:
    """``partial_trust.corridor`` for a shadow job, started in the background worker.

    The request it shadows has answered and its span has ended, so it cannot be the parent
    (a child outliving its parent breaks trace views and tail samplers); the shadow span is
    a root of its own trace and carries an OTel span link to the request's span, so the
    trace of a request leads to its shadow verdict and back.
    """
    links = [Link(origin, SHADOWED_REQUEST)] if origin is not None else None
    return _tracer.start_span(CORRIDOR_SPAN, context=_ROOT, kind=SpanKind.INTERNAL, links=links)


@contextmanager
def llm_call_span(parent: Span | None, *, model: str, timeout_ms: int) -> Iterator[Span]:
    """Child span ``partial_trust.llm`` around the LLM call, current inside the ``with``.

    Being current is what lets the LLM client inject W3C ``traceparent`` into its request.
    ``parent=None`` parents it on the current context instead. A raised exception (a
    timeout's ``CancelledError`` included) marks the span ERROR with only its class name
    (or its ``Reason``), never its message.
    """
    if parent is not None and not parent.get_span_context().is_valid:
        # No tracer provider (the corridor span is the API's no-op one): making a no-op
        # child current costs a few µs per sampled request and changes nothing.
        yield parent
        return
    context = trace.set_span_in_context(parent) if parent is not None else None
    span = _tracer.start_span(
        LLM_SPAN,
        context=context,
        kind=SpanKind.CLIENT,
        attributes={
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": model,
            "partial_trust.timeout_ms": timeout_ms,
        },
    )
    with trace.use_span(
        span, end_on_exit=True, record_exception=False, set_status_on_exception=False
    ):
        try:
            yield span
        except BaseException as exc:
            reason = getattr(exc, "reason", None)  # CandidateError carries a Reason
            name = reason.value if isinstance(reason, Reason) else type(exc).__name__
            span.set_attribute("error.type", name)
            span.set_status(StatusCode.ERROR, name)
            raise


def _apply(span: Span, outcome: Outcome) -> None:
    span.set_attributes(outcome_attributes(outcome))
    if outcome.status == Status.ERROR:
        span.set_status(StatusCode.ERROR, Reason(outcome.reason).value)


def finish_corridor_span(span: Span, outcome: Outcome) -> None:
    """Put the outcome on the span started by ``start_corridor_span`` and end it."""
    try:
        if span.is_recording():
            _apply(span, outcome)
    finally:
        span.end()


def record_outcome(outcome: Outcome) -> None:
    """An outcome with no pre-started span (a skip): one span, started and ended at once.

    ``skipped/not_sampled`` never gets a span of its own (budget): it is annotated instead.
    """
    if outcome.reason == Reason.NOT_SAMPLED:
        annotate_current_span(outcome)
        return
    span = _tracer.start_span(CORRIDOR_SPAN, kind=SpanKind.INTERNAL)
    finish_corridor_span(span, outcome)


def annotate_current_span(outcome: Outcome) -> None:
    """Add the five outcome attributes to the active span, if it records. Never creates a span.

    Status is left alone: the active span is the host's request span, not ours.
    """
    span = trace.get_current_span()
    if span.is_recording():
        span.set_attributes(_base_attributes(outcome))
