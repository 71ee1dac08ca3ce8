"""The SDK ``serve`` installs: its resource, exporters, a span end that never waits for the
collector, a bounded flush at shutdown, and nothing at all when ``OTEL_TRACES_EXPORTER`` is unset.

The global tracer provider can be set once per process (``tests/support/otel.py`` owns it), so
these tests build providers without making them global; the real ``serve`` path is
``tests/integration/test_otlp_export.py``.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from starlette.types import Message, Receive, Scope, Send

from partial_trust.apps.reference.telemetry import (
    DEFAULT_SERVICE_NAME,
    Tracing,
    build_provider,
    build_resource,
    install_tracing,
)
from partial_trust.apps.reference.telemetry_env import TracingPlan
from partial_trust.environment import Environment
from tests.support.otel import install_span_exporter
from tests.support.otlp_receiver import OTLPReceiver, otlp_receiver

CLEAN = ("OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES", "OTEL_TRACES_SAMPLER")
DRAIN_S = 10.0


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in CLEAN:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(autouse=True)
def _no_exporter_outlives_its_test() -> Iterator[None]:
    """Every exporter or shutdown thread a test starts has ended when it returns: one left
    retrying against a closed receiver draws backoff jitter from the global ``random`` module
    for up to ``OTEL_EXPORTER_OTLP_TIMEOUT``, and the next Hypothesis test fails on that."""
    before = set(threading.enumerate())
    yield
    started = [t for t in threading.enumerate() if t not in before and t.name.startswith(
        ("Otel", "partial-trust-otel"))]  # fmt: skip
    for thread in started:
        thread.join(DRAIN_S)
    assert not [t.name for t in started if t.is_alive()]


def drain(receiver: OTLPReceiver) -> None:
    """The hanging receiver answers again, and the shutdown left running finishes on it."""
    receiver.release()
    for thread in threading.enumerate():
        if thread.name == "partial-trust-otel-shutdown":
            thread.join(DRAIN_S)


def test_service_name_defaults_to_partial_trust() -> None:
    attrs = build_resource().attributes
    assert attrs["service.name"] == DEFAULT_SERVICE_NAME
    assert attrs["telemetry.sdk.name"] == "opentelemetry"


def test_service_name_and_attributes_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "service.name=from-attrs,team=sre")
    assert build_resource().attributes["service.name"] == "from-attrs"
    monkeypatch.setenv("OTEL_SERVICE_NAME", "from-name")
    attrs = build_resource().attributes
    assert attrs["service.name"] == "from-name" and attrs["team"] == "sre"


def test_console_exporter_prints_the_spans(capsys: pytest.CaptureFixture[str]) -> None:
    provider = build_provider(TracingPlan(("console",)))
    provider.get_tracer("t").start_span("partial_trust.corridor").end()
    assert Tracing(provider).shutdown(5.0)
    out = capsys.readouterr().out
    span = json.loads(out[out.index("{") :])
    assert span["name"] == "partial_trust.corridor"
    assert span["resource"]["attributes"]["service.name"] == DEFAULT_SERVICE_NAME


def test_sampler_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "always_off")
    provider = build_provider(TracingPlan(("console",)))
    assert not provider.get_tracer("t").start_span("x").is_recording()
    Tracing(provider).shutdown(5.0)


def test_span_end_never_waits_for_a_hanging_collector(monkeypatch: pytest.MonkeyPatch) -> None:
    """Queue of 8, collector that never answers: 5,000 spans end at once (the oldest are
    dropped), and the flush at shutdown gives up on time."""
    monkeypatch.setenv("OTEL_BSP_MAX_QUEUE_SIZE", "8")
    monkeypatch.setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "4")
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "10")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "60")
    with otlp_receiver(hang=True) as receiver:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
        provider = build_provider(TracingPlan(("otlp",)))
        tracer = provider.get_tracer("t")
        tracer.start_span("first").end()
        deadline = time.monotonic() + 10
        while receiver.posts == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert receiver.posts == 1  # the exporter thread is now stuck on the receiver
        slowest = 0.0
        for _ in range(5000):
            t0 = time.perf_counter()
            tracer.start_span("partial_trust.corridor").end()
            slowest = max(slowest, time.perf_counter() - t0)
        assert slowest < 0.25, slowest  # a deque append; generous for a busy machine
        t0 = time.monotonic()
        assert Tracing(provider).shutdown(0.5) is False
        assert time.monotonic() - t0 < 3.0
        assert receiver.posts == 1
        drain(receiver)


def test_a_second_shutdown_does_not_wait_again() -> None:
    with otlp_receiver(hang=True) as receiver, pytest.MonkeyPatch.context() as mp:
        mp.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
        mp.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "60")
        provider = build_provider(TracingPlan(("otlp",)))
        provider.get_tracer("t").start_span("x").end()
        tracing = Tracing(provider)
        assert tracing.shutdown(0.3) is False
        t0 = time.monotonic()
        assert tracing.shutdown(5.0) is False  # the atexit call after the lifespan's
        assert time.monotonic() - t0 < 0.2
        drain(receiver)


def _lifespan_app(events: list[str]) -> Any:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            events.append("http")
            return
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return

    return app


def test_lifespan_shutdown_flushes_before_it_completes() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=600_000))
    provider.get_tracer("t").start_span("partial_trust.corridor").end()
    events: list[str] = []
    app = Tracing(provider).wrap(_lifespan_app(events))

    async def run() -> list[tuple[str, int]]:
        seen: list[tuple[str, int]] = []
        inbox = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]

        async def receive() -> Message:
            return inbox.pop(0)

        async def send(message: Message) -> None:
            seen.append((message["type"], len(exporter.get_finished_spans())))

        await app({"type": "http"}, receive, send)
        await app({"type": "lifespan"}, receive, send)
        return seen

    seen = asyncio.run(run())
    assert events == ["http"]
    assert seen == [("lifespan.startup.complete", 0), ("lifespan.shutdown.complete", 1)]


def test_unset_installs_nothing_and_costs_nothing() -> None:
    before = trace.get_tracer_provider()
    tracing = install_tracing(Environment.from_mapping({}))
    assert tracing.provider is None and trace.get_tracer_provider() is before
    app = _lifespan_app([])
    assert tracing.wrap(app) is app and tracing.shutdown() is True


def test_a_provider_already_installed_is_left_alone() -> None:
    """Under ``opentelemetry-instrument`` (or a host app) the existing provider is kept."""
    install_span_exporter()
    before = trace.get_tracer_provider()
    tracing = install_tracing(Environment.from_mapping({"OTEL_TRACES_EXPORTER": "console"}))
    assert tracing.provider is None and trace.get_tracer_provider() is before


def test_unset_never_imports_the_sdk() -> None:
    """No exporter, no start-up cost either: the SDK (and requests, protobuf) stay unloaded."""
    code = (
        "import sys; from partial_trust.apps.reference.telemetry import install_tracing; "
        "from partial_trust.environment import Environment; "
        "install_tracing(Environment.from_mapping({})); "
        "print(sorted(m for m in ('opentelemetry.sdk.trace', 'requests') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
