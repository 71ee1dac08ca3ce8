"""``CorridorEngine.emit``: one outcome to every sink; the not-sampled fast path included."""

from __future__ import annotations

from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry

from partial_trust.outcome import Reason
from tests.corridor_harness import CORRIDOR, command, harness, settings
from tests.support.otel import EXPORTER, install_span_exporter


@pytest.fixture
def spans() -> InMemorySpanExporter:
    install_span_exporter()
    EXPORTER.clear()
    return EXPORTER


def decisions(registry: CollectorRegistry, reason: str) -> float:
    labels = {"corridor": CORRIDOR, "status": "skipped", "reason": reason}
    return registry.get_sample_value("partial_trust_decisions_total", labels) or 0.0


@pytest.mark.anyio
@pytest.mark.parametrize("reason", [Reason.NOT_SAMPLED, Reason.CORRIDOR_MISMATCH])
async def test_a_skip_is_counted_once_annotated_or_spanned_and_logged_unless_not_sampled(
    tmp_path: Path, spans: InMemorySpanExporter, reason: Reason
) -> None:
    async with harness(tmp_path, settings(sample_rate=0.0)) as h:
        skip = h.engine.skip(h.source.value, reason, "k" * 24)
        with trace.get_tracer("test").start_as_current_span("request"):
            h.engine.emit(skip)
        assert decisions(h.registry, reason.value) == 1.0
        named = {s.name: s for s in spans.get_finished_spans()}
        lines = h.lines()
    request = dict(named["request"].attributes or {})
    if reason is Reason.NOT_SAMPLED:
        assert set(named) == {"request"}  # no span of its own: the request's is annotated
        assert request["partial_trust.reason"] == "not_sampled"
        assert lines == []  # never written
    else:
        assert "partial_trust.reason" not in request
        assert dict(named["partial_trust.corridor"].attributes or {})["partial_trust.reason"] == (
            reason.value
        )
        assert [line["reason_code"] for line in lines] == [reason.value]


@pytest.mark.anyio
async def test_a_failing_metrics_sink_does_not_fail_the_not_sampled_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with harness(tmp_path, settings(sample_rate=0.0)) as h:

        def broken(_: object) -> None:
            raise RuntimeError("registry gone")

        assert h.engine.metrics is not None
        monkeypatch.setattr(h.engine.metrics, "count", broken)
        response = await h.post(command("c-1"))
        assert response.status_code == 200
