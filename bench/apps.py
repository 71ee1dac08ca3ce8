"""Reference apps for the uvicorn and load benches, as uvicorn factories (``--factory``).

Every app serves the reference router's own endpoint on two paths, ``/route`` (the path the
corridor owns) and ``/other`` (the same handler on a path it does not own), so every case
runs the same baseline code and only the wrapping differs:

- ``bare``: the Starlette router alone, the denominator of every ratio;
- ``corridor``: the router wrapped by the corridor, built by ``CorridorStack.from_env`` from
  the environment like ``partial-trust serve`` (the bench sets the runbook's variables), with
  ``/metrics`` and ``/health``; ``BENCH_CIRCUIT_BREAKER=off`` takes the circuit breaker out
  (see below);
- ``exporter``: the router with ``starlette-exporter``'s ``PrometheusMiddleware``;
- ``otel``: the router with ``opentelemetry-instrumentation-asgi``'s middleware over an SDK
  tracer provider and a batch span processor (as a production app would run it) whose
  exporter drops the spans;
- ``reference_no_breaker``: ``partial-trust serve``'s own app with the circuit breaker taken
  out, for the load bench: with the breaker the first five timeouts open it and every later
  request answers ``error/circuit_open`` at once, so a hanging LLM would no longer exercise
  the deadline at all.

    .venv/bin/python -m uvicorn bench.apps:bare --factory --port 8000
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp

from partial_trust.apps.reference.app import route_endpoint

CORRIDOR_PATH = "/route"
FOREIGN_PATH = "/other"


def _routes() -> list[Route]:
    return [
        Route(CORRIDOR_PATH, route_endpoint, methods=["POST"]),
        Route(FOREIGN_PATH, route_endpoint, methods=["POST"]),
    ]


def bare() -> ASGIApp:
    return Starlette(routes=_routes())


def corridor() -> ASGIApp:
    from partial_trust.middleware.factory import CorridorStack
    from partial_trust.middleware.metrics import metrics_endpoint

    stack = CorridorStack.from_env()
    if os.environ.get("BENCH_CIRCUIT_BREAKER", "on") == "off":
        stack.engine.circuit = None

    async def health(request: Request) -> JSONResponse:
        return JSONResponse(stack.status())  # what a bench reads of the shadow queue

    routes = [
        *_routes(),
        Route("/metrics", metrics_endpoint(), methods=["GET"]),
        Route("/health", health, methods=["GET"]),
    ]
    return stack.wrap(Starlette(routes=routes, lifespan=stack.lifespan), paths=[CORRIDOR_PATH])


def exporter() -> ASGIApp:
    from starlette_exporter import PrometheusMiddleware

    return Starlette(routes=_routes(), middleware=[Middleware(PrometheusMiddleware)])


class _DropSpans:
    """A span exporter that keeps nothing: the SDK's whole cost, no memory growth."""

    def export(self, spans: Sequence[Any]) -> Any:
        from opentelemetry.sdk.trace.export import SpanExportResult

        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True


def otel() -> ASGIApp:
    from opentelemetry import trace
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(_DropSpans()))  # type: ignore[arg-type]  # a duck-typed exporter: the SDK is imported only when this app runs
    trace.set_tracer_provider(provider)
    return OpenTelemetryMiddleware(Starlette(routes=_routes()))


def reference_no_breaker() -> ASGIApp:
    from partial_trust.apps.reference.app import create_served_app

    app = create_served_app()
    engine = getattr(app, "engine", None)
    if engine is None or not hasattr(engine, "circuit"):
        raise RuntimeError("the reference app no longer exposes engine.circuit")
    engine.circuit = None
    return app
