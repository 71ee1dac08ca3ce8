"""Corridor spans: one per outcome (none for not_sampled), exact attributes, LLM child span.

The library uses the global tracer provider, which OpenTelemetry lets a process set only
once. So this module installs an SDK provider with an in-memory exporter the first time it
is needed, or, if another test module already installed an SDK provider, adds the exporter
to that one, and every test starts from a cleared exporter.
"""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry import trace
from opentelemetry.propagate import inject
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from partial_trust.middleware import tracing
from partial_trust.outcome import SAMPLED_STATUSES, STATUS_REASONS, Outcome, Reason, Status
from tests.support.otel import EXPORTER, install_span_exporter

C = "add_shopping_item"
_EXPORTER = EXPORTER
_install_once = install_span_exporter


@pytest.fixture
def spans() -> InMemorySpanExporter:
    _install_once()
    _EXPORTER.clear()
    return _EXPORTER


def outcome(status: Status, reason: Reason, **kw: object) -> Outcome:
    fields: dict[str, object] = {}
    if status in SAMPLED_STATUSES and reason is not Reason.CIRCUIT_OPEN:
        fields.update(latency_ms=350.0, baseline_latency_ms=2.5)
    if status in (Status.ACCEPTED_LLM, Status.FALLBACK_DETERMINISTIC):
        fields.update(intent_match=True, entity_key_match=False, confidence=0.9, items_llm=2)
    fields.update(kw)
    sampled = status in SAMPLED_STATUSES
    return Outcome(C, status, reason, sampled, 0.25, "p1", "k" * 16, **fields)  # type: ignore[arg-type]  # mixed optional fields; Outcome checks them


def expected_attributes(o: Outcome) -> dict[str, object]:
    attrs: dict[str, object] = {
        "partial_trust.corridor": C,
        "partial_trust.status": o.status.value,
        "partial_trust.reason": o.reason.value,
        "partial_trust.sampled": o.sampled,
        "partial_trust.sample_rate": 0.25,
        "partial_trust.mode": "canary",
    }
    if o.latency_ms is not None:
        attrs["partial_trust.latency_ms"] = 350.0
        attrs["partial_trust.baseline_latency_ms"] = 2.5
    if o.intent_match is not None:
        attrs["partial_trust.intent_match"] = True
        attrs["partial_trust.entity_key_match"] = False
        attrs["partial_trust.confidence"] = 0.9
        attrs["partial_trust.items_llm"] = 2
    return attrs


def by_name(exporter: InMemorySpanExporter) -> dict[str, ReadableSpan]:
    finished = exporter.get_finished_spans()
    named = {s.name: s for s in finished}
    assert len(named) == len(finished), "one span per name expected"
    return named


@pytest.mark.parametrize(("status", "reason"), STATUS_REASONS, ids=lambda v: str(v))
def test_every_status_reason_gives_the_right_span(
    spans: InMemorySpanExporter, status: Status, reason: Reason
) -> None:
    o = outcome(status, reason)
    if status is Status.SKIPPED:
        tracing.record_outcome(o)
        named = by_name(spans)
        if reason is Reason.NOT_SAMPLED:
            assert named == {}  # no span of its own, and no active span to annotate
            return
        assert set(named) == {"partial_trust.corridor"}
    else:
        span = tracing.start_corridor_span()
        with tracing.llm_call_span(span, model="gpt-test", timeout_ms=200):
            pass
        tracing.finish_corridor_span(span, o)
        named = by_name(spans)
        assert set(named) == {"partial_trust.corridor", "partial_trust.llm"}
        llm, corridor = named["partial_trust.llm"], named["partial_trust.corridor"]
        assert llm.parent is not None and corridor.context is not None
        assert llm.parent.span_id == corridor.context.span_id
        assert llm.context is not None and llm.context.trace_id == corridor.context.trace_id
        assert dict(llm.attributes or {}) == {
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": "gpt-test",
            "partial_trust.timeout_ms": 200,
        }
        assert llm.status.status_code is StatusCode.UNSET
    corridor = named["partial_trust.corridor"]
    assert dict(corridor.attributes or {}) == expected_attributes(o)
    if status is Status.ERROR:
        assert corridor.status.status_code is StatusCode.ERROR
        assert corridor.status.description == reason.value
    else:
        assert corridor.status.status_code is StatusCode.UNSET


def test_not_sampled_annotates_the_active_request_span(spans: InMemorySpanExporter) -> None:
    tracer = trace.get_tracer("test")
    o = outcome(Status.SKIPPED, Reason.NOT_SAMPLED)
    with tracer.start_as_current_span("request"):
        tracing.annotate_current_span(o)
    with tracer.start_as_current_span("request2"):
        tracing.record_outcome(o)  # the engine may route every skip through record_outcome
    named = by_name(spans)
    assert set(named) == {"request", "request2"}
    for span in named.values():
        assert dict(span.attributes or {}) == expected_attributes(o)
        assert span.status.status_code is StatusCode.UNSET


def test_annotate_without_an_active_span_is_a_no_op(spans: InMemorySpanExporter) -> None:
    tracing.annotate_current_span(outcome(Status.SKIPPED, Reason.NOT_SAMPLED))
    assert spans.get_finished_spans() == ()


class FakeCandidateError(Exception):
    def __init__(self, reason: Reason) -> None:
        super().__init__("user said: add milk for alice")
        self.reason = reason


@pytest.mark.parametrize(
    ("exc", "name"),
    [
        (FakeCandidateError(Reason.LLM_TIMEOUT), "llm_timeout"),
        (ValueError("secret item text"), "ValueError"),
    ],
)
def test_llm_span_failure_is_error_without_the_message(
    spans: InMemorySpanExporter, exc: Exception, name: str
) -> None:
    span = tracing.start_corridor_span()
    with pytest.raises(type(exc)), tracing.llm_call_span(span, model="m", timeout_ms=150):
        raise exc
    tracing.finish_corridor_span(span, outcome(Status.ERROR, Reason.LLM_TIMEOUT))
    llm = by_name(spans)["partial_trust.llm"]
    assert llm.status.status_code is StatusCode.ERROR
    assert llm.status.description == name
    assert (llm.attributes or {})["error.type"] == name
    assert llm.events == ()  # no recorded exception: its message could hold user text


def test_llm_span_is_current_inside_so_traceparent_is_injected(
    spans: InMemorySpanExporter,
) -> None:
    span = tracing.start_corridor_span()
    with tracing.llm_call_span(span, model="m", timeout_ms=100) as child:
        assert trace.get_current_span() is child
        headers: dict[str, str] = {}
        inject(headers)
    tracing.finish_corridor_span(span, outcome(Status.ACCEPTED_LLM, Reason.ACCEPTED))
    llm = by_name(spans)["partial_trust.llm"]
    assert llm.context is not None
    assert headers["traceparent"].split("-")[2] == format(llm.context.span_id, "016x")


def test_cancelled_llm_task_still_ends_the_span(spans: InMemorySpanExporter) -> None:
    async def scenario() -> None:
        span = tracing.start_corridor_span()

        async def call() -> None:
            with tracing.llm_call_span(span, model="m", timeout_ms=10):
                await asyncio.sleep(10)

        task = asyncio.create_task(call())
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        tracing.finish_corridor_span(span, outcome(Status.ERROR, Reason.LLM_TIMEOUT))

    asyncio.run(scenario())
    llm = by_name(spans)["partial_trust.llm"]
    assert llm.status.status_code is StatusCode.ERROR
    assert llm.status.description == "CancelledError"


def test_llm_span_without_parent_uses_the_current_span(spans: InMemorySpanExporter) -> None:
    tracer = trace.get_tracer("test")
    with (
        tracer.start_as_current_span("request") as request,
        tracing.llm_call_span(None, model="m", timeout_ms=100),
    ):
        pass
    llm = by_name(spans)["partial_trust.llm"]
    assert llm.parent is not None
    assert llm.parent.span_id == request.get_span_context().span_id


texts = st.text(min_size=4, max_size=30)
floats = st.none() | st.floats(allow_nan=False)


@settings(max_examples=50, deadline=None)
@given(
    st.sampled_from([p for p in STATUS_REASONS if p[1] is not Reason.NOT_SAMPLED]),
    texts,
    texts,
    floats,
    floats,
)
def test_span_attributes_hold_no_input_text(
    pair: tuple[Status, Reason], key: str, profile: str, latency: float | None, conf: float | None
) -> None:
    _install_once()
    _EXPORTER.clear()
    o = Outcome(C, pair[0], pair[1], True, 0.5, profile, key, latency, None, None, None, conf)
    tracing.record_outcome(o)
    (span,) = _EXPORTER.get_finished_spans()
    allowed = {C} | {s.value for s in Status} | {r.value for r in Reason} | {"canary", "shadow"}
    for name, value in (span.attributes or {}).items():
        assert name.startswith("partial_trust.")
        if isinstance(value, str):
            assert value in allowed
        else:
            assert isinstance(value, bool | int | float)
    assert span.status.description in (None, pair[1].value)
