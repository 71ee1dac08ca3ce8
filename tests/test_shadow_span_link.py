"""A shadow verdict's span is linked to the request it shadows (not parented: that request
has answered and its span has ended before the LLM is asked)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace

from partial_trust.middleware import tracing
from tests.corridor_harness import command, completion, good_candidate
from tests.support.otel import EXPORTER, install_span_exporter
from tests.test_shadow import llm, shadow_harness

pytestmark = pytest.mark.anyio
__all__ = ["llm"]  # the respx fixture, shared with the shadow tests


async def test_the_shadow_span_is_a_root_linked_to_the_request_span(
    tmp_path: Path, llm: Any
) -> None:
    install_span_exporter()
    EXPORTER.clear()
    llm.post("/chat/completions").mock(return_value=completion(good_candidate()))
    tracer = trace.get_tracer("test-host")
    async with shadow_harness(tmp_path) as h:
        with tracer.start_as_current_span("host request") as request:
            response = await h.post(command("c-link"))
        assert response.status_code == 200
        await h.engine.shadow.join()
    ended = EXPORTER.get_finished_spans()
    host = next(s for s in ended if s.name == "host request")
    corridor = next(s for s in ended if s.name == tracing.CORRIDOR_SPAN)
    call = next(s for s in ended if s.name == tracing.LLM_SPAN)
    assert host.end_time is not None and corridor.start_time is not None
    assert host.end_time <= corridor.start_time  # the request span ended before shadow began
    assert corridor.parent is None  # a root, never a child outliving its parent
    assert corridor.context.trace_id != request.get_span_context().trace_id
    [link] = corridor.links
    assert link.context.span_id == request.get_span_context().span_id
    assert link.context.trace_id == request.get_span_context().trace_id
    assert dict(link.attributes or {}) == tracing.SHADOWED_REQUEST
    assert corridor.attributes is not None and corridor.attributes["partial_trust.mode"] == "shadow"
    assert call.parent is not None and call.parent.span_id == corridor.context.span_id


async def test_without_a_request_span_there_is_no_link(tmp_path: Path, llm: Any) -> None:
    install_span_exporter()
    EXPORTER.clear()
    llm.post("/chat/completions").mock(return_value=completion(good_candidate()))
    async with shadow_harness(tmp_path) as h:
        await h.post(command("c-nolink"))
        await h.engine.shadow.join()
    corridor = next(s for s in EXPORTER.get_finished_spans() if s.name == tracing.CORRIDOR_SPAN)
    assert corridor.parent is None and not corridor.links
