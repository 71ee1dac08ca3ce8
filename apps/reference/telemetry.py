"""``partial-trust serve`` installs the OpenTelemetry SDK from the standard ``OTEL_*`` variables.

Why here: the library (``partial_trust.middleware.tracing``) only ever uses the *global* tracer
provider and
never installs one, so a host app keeps its own. ``serve`` is an application, so it installs
one, in each uvicorn worker (``create_served_app`` runs in every worker process), and only when
``OTEL_TRACES_EXPORTER`` asks for it: unset, nothing is installed and the spans stay the API's
no-op ones, at no cost.

Why hand-wired rather than ``opentelemetry-distro`` / ``opentelemetry-instrument``: their
configurator (``opentelemetry.sdk._configuration``, private) also starts metrics and logs
exporters (``OTEL_METRICS_EXPORTER`` and ``OTEL_LOGS_EXPORTER`` default to ``otlp``; the app's
metrics are Prometheus), the distro defaults the protocol to ``grpc``, and the instrument
wrapper instruments every installed library (httpx, requests, ASGI...), whose spans carry URLs
and headers that no privacy review has seen. Here the SDK's public classes read the same
variables themselves: ``Resource.create()`` (``OTEL_SERVICE_NAME``,
``OTEL_RESOURCE_ATTRIBUTES``), the ``TracerProvider``'s sampler (``OTEL_TRACES_SAMPLER[_ARG]``),
``BatchSpanProcessor`` (``OTEL_BSP_*``) and the OTLP exporters (``OTEL_EXPORTER_OTLP_*``:
endpoint, headers, timeout, compression, certificates). Run under ``opentelemetry-instrument``
anyway, ``serve`` sees a provider already installed and leaves it alone.

Never blocking the loop: a span's end only appends to the ``BatchSpanProcessor``'s bounded
deque (the oldest span is dropped when it is full, with one rate-limited warning); the export
runs in the processor's own thread, bounded by ``OTEL_EXPORTER_OTLP_TIMEOUT``. Shutdown flushes
in a daemon thread waited for at most ``SHUTDOWN_TIMEOUT_S``, off the loop, so a collector
that hangs cannot hold a restart.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import sys
import threading
import time
from importlib import metadata
from typing import TYPE_CHECKING

import anyio.to_thread
from opentelemetry import trace
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from partial_trust.apps.reference.telemetry_env import (
    TracingConfigError,
    TracingPlan,
    check_env,
    otlp_exporter_class,
)
from partial_trust.environment import Environment

if TYPE_CHECKING:  # the SDK is imported only when an exporter is asked for (start-up cost)
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

__all__ = [
    "DEFAULT_SERVICE_NAME",
    "SHUTDOWN_TIMEOUT_S",
    "Tracing",
    "TracingConfigError",
    "build_provider",
    "install_tracing",
]

log = logging.getLogger("partial_trust.telemetry")

DEFAULT_SERVICE_NAME = "partial-trust"
#: At most this long for the last spans to leave at shutdown (the SDK's own default is 30 s).
SHUTDOWN_TIMEOUT_S = 5.0


def build_resource() -> Resource:
    """``Resource.create()`` (which reads ``OTEL_SERVICE_NAME`` and ``OTEL_RESOURCE_ATTRIBUTES``),
    with ``service.name`` = ``partial-trust`` and the package version when neither says."""
    from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, Resource

    resource = Resource.create()
    defaults: dict[str, str] = {}
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        defaults[SERVICE_NAME] = DEFAULT_SERVICE_NAME
    if SERVICE_VERSION not in resource.attributes:
        with contextlib.suppress(metadata.PackageNotFoundError):
            defaults[SERVICE_VERSION] = metadata.version("partial-trust-corridor")
    return resource.merge(Resource(defaults)) if defaults else resource


def _exporter(name: str, plan: TracingPlan) -> SpanExporter:
    from opentelemetry.sdk.trace.export import ConsoleSpanExporter

    if name == "console":
        return ConsoleSpanExporter(out=sys.stdout)  # today's stdout, not the one at import
    exporter: SpanExporter = otlp_exporter_class(plan.protocol)()
    return exporter


def build_provider(plan: TracingPlan) -> TracerProvider:
    """A provider with one ``BatchSpanProcessor`` per exporter; not made global here.

    ``shutdown_on_exit=False``: the SDK's own atexit hook would wait up to 30 s for a
    collector that hangs; ``Tracing.shutdown`` bounds it instead.
    """
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=build_resource(), shutdown_on_exit=False)
    for name in plan.exporters:
        provider.add_span_processor(BatchSpanProcessor(_exporter(name, plan)))
    return provider


class Tracing:
    """The SDK ``serve`` installed (or nothing), and its bounded flush at shutdown."""

    def __init__(self, provider: TracerProvider | None) -> None:
        self.provider = provider
        self._lock = threading.Lock()
        self._done: threading.Event | None = None
        self._deadline = 0.0

    def wrap(self, app: ASGIApp) -> ASGIApp:
        """``app`` itself when nothing is installed (no cost); else flushed at lifespan end."""
        return app if self.provider is None else FlushOnShutdown(app, self)

    def shutdown(self, timeout_s: float = SHUTDOWN_TIMEOUT_S) -> bool:
        """Flush and stop the exporters; True if done within ``timeout_s``. Idempotent.

        The SDK's ``shutdown()`` takes no timeout (a hanging export holds it up to
        ``OTEL_EXPORTER_OTLP_TIMEOUT`` and its retries), so it runs in a daemon thread that
        is waited for at most ``timeout_s`` and otherwise left to die with the process.
        """
        provider = self.provider
        if provider is None:
            return True
        with self._lock:
            done = self._done
            first = done is None
            if done is None:
                done = self._done = threading.Event()
                self._deadline = time.monotonic() + timeout_s
                threading.Thread(
                    target=_shutdown_then_set,
                    args=(provider, done),
                    name="partial-trust-otel-shutdown",
                    daemon=True,
                ).start()
            # a second call (atexit after the lifespan) waits no longer than the first allowed
            wait_s = max(0.0, min(timeout_s, self._deadline - time.monotonic()))
        finished = done.wait(wait_s)
        if not finished and first:
            log.warning("traces: exporter did not flush within %.1f s; spans dropped", timeout_s)
        return finished

    async def ashutdown(self, timeout_s: float = SHUTDOWN_TIMEOUT_S) -> bool:
        """``shutdown`` off the event loop."""
        return await anyio.to_thread.run_sync(self.shutdown, timeout_s)


def _shutdown_then_set(provider: TracerProvider, done: threading.Event) -> None:
    try:
        provider.shutdown()
    finally:
        done.set()


class FlushOnShutdown:
    """Pure ASGI: passes everything through; flushes the spans before the lifespan's
    ``shutdown.complete`` (or ``.failed``) reaches the server, so the last ones still leave."""

    def __init__(self, app: ASGIApp, tracing: Tracing) -> None:
        self.app = app
        self.tracing = tracing

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return

        async def send_after_flush(message: Message) -> None:
            if message["type"] in {"lifespan.shutdown.complete", "lifespan.shutdown.failed"}:
                await self.tracing.ashutdown()
            await send(message)

        await self.app(scope, receive, send_after_flush)


def install_tracing(env: Environment) -> Tracing:
    """Install the SDK as the global tracer provider when ``OTEL_TRACES_EXPORTER`` asks.

    ``env`` decides the exporters and protocol; the SDK's own classes read the other
    ``OTEL_*`` variables from the process environment. Raises
    ``TracingConfigError`` (one line) for a wrong value or a missing exporter package.
    """
    plan = check_env(env)
    if not plan.enabled:
        return Tracing(None)
    if not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        log.info("traces: a tracer provider is already installed; OTEL_TRACES_EXPORTER left to it")
        return Tracing(None)
    provider = build_provider(plan)
    trace.set_tracer_provider(provider)
    tracing = Tracing(provider)
    atexit.register(tracing.shutdown)  # no lifespan (or a crash in it): still bounded
    service = provider.resource.attributes.get("service.name")
    log.info("traces: exporting to %s as service %s", plan.describe(), service)
    return tracing
