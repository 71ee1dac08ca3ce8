"""One OpenTelemetry SDK provider for the whole test session.

The library uses the global tracer provider, and OpenTelemetry lets a process set that only
once, so every test module that inspects spans shares this one in-memory exporter.
"""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

EXPORTER = InMemorySpanExporter()
_installed: list[bool] = []


def install_span_exporter() -> InMemorySpanExporter:
    if not _installed:
        current = trace.get_tracer_provider()
        if isinstance(current, TracerProvider):
            current.add_span_processor(SimpleSpanProcessor(EXPORTER))
        else:
            provider = TracerProvider()
            provider.add_span_processor(SimpleSpanProcessor(EXPORTER))
            trace.set_tracer_provider(provider)
        _installed.append(True)
    return EXPORTER
