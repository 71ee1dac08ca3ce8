"""The reference app: a deterministic RouterV2-style router with the corridor mounted.

``/route`` is the baseline endpoint (it never knows the corridor exists); the middleware wraps
it. ``/health`` and ``/metrics`` are what the runbook's checks and Prometheus read; ``/flags`` is
the flag console (kill switch, stage presets, audit log, Alertmanager auto-rollback).
"""

from __future__ import annotations

import gc
from typing import Any

from prometheus_client import CollectorRegistry
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route
from starlette.types import ASGIApp

from partial_trust.apps.console import create_console_app_from_env, hosts
from partial_trust.apps.reference.telemetry import install_tracing
from partial_trust.contracts import CommandDTO
from partial_trust.environment import Environment
from partial_trust.flags import ManagedSettingsSource
from partial_trust.middleware.baseline import route as baseline_route
from partial_trust.middleware.factory import CorridorStack
from partial_trust.middleware.metrics import metrics_endpoint

ROUTER_PATH = "/route"


async def route_endpoint(request: Request) -> JSONResponse:
    body = await request.body()
    try:
        command = CommandDTO.model_validate_json(body)
    except ValidationError as exc:
        # Field locations and messages only: the offending input is the client's own data.
        errors = [{"loc": list(e["loc"]), "msg": e["msg"]} for e in exc.errors()]
        return JSONResponse({"error": "invalid_command", "detail": errors}, status_code=422)
    return JSONResponse(baseline_route(command).model_dump(mode="json"))


def console_app(env: Environment) -> ASGIApp:
    """The flag console for ``/flags``, behind its ``Host`` allow-list
    (``partial_trust.apps.console.hosts``:
    loopback names, the address ``serve`` binds to, ``PARTIAL_TRUST_CONSOLE_ALLOWED_HOSTS``).
    Only the mount is wrapped: ``/route``, ``/health`` and ``/metrics`` never pass the check."""
    return hosts.guard(create_console_app_from_env(env), bind_host=env.bind_host, env=env)


def create_app(
    env: Environment | None = None,
    *,
    registry: CollectorRegistry | None = None,
    source: ManagedSettingsSource | None = None,
) -> ASGIApp:
    env = Environment.from_os() if env is None else env  # an entry point: read once, here
    stack = CorridorStack.from_env(env, registry=registry, source=source)

    async def health(request: Request) -> JSONResponse:
        body: dict[str, Any] = {"status": "ok", "partial_trust": stack.status()}
        return JSONResponse(body)

    router = Starlette(
        routes=[
            Route(ROUTER_PATH, route_endpoint, methods=["POST"]),
            Route("/health", health, methods=["GET"]),
            Route("/metrics", metrics_endpoint(registry, env=env), methods=["GET"]),
            Mount("/flags", app=console_app(env)),
        ],
        lifespan=stack.lifespan,
    )
    router.state.stack = stack
    return stack.wrap(router, paths=[ROUTER_PATH])


def create_served_app(env: Environment | None = None) -> ASGIApp:
    """``partial-trust serve``'s factory: ``create_app``, then ``gc.freeze()``.

    Freezing moves everything made so far (the imports and the app: ~56,000 objects) out of
    the cyclic collector's reach. A full collection of that heap took ~15 ms here and, under
    the hanging-LLM load, came every ~2,000 requests as a 15-45 ms pause of the event loop
    for every request in flight; after the freeze it scans only what the app made since.
    The objects stay alive as before. Done here, in the process ``serve`` owns, not in the
    middleware: a host app decides its own collector policy.
    """
    env = Environment.from_os() if env is None else env  # a worker's entry point
    tracing = install_tracing(env)  # OTEL_* -> the SDK, in this worker; unset: nothing
    app = tracing.wrap(create_app(env))
    gc.collect()  # what is already garbage is freed, not frozen
    gc.freeze()
    return app
