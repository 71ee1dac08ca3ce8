"""The double as a Starlette app: chat completions with injected faults, plus a control API.

Nothing here blocks the event loop: latency, hangs and drips are ``asyncio`` waits, so one
hanging request never delays another. A hang waits for the client to disconnect (an event,
not a poll), so thousands of hanging requests in a load test cost no CPU; ``hang_max_s`` is a
safety net for clients that never give up. The latency delay races the same event, so a
request whose caller gave up stops at once instead of sleeping on.

A client that goes away (its deadline closed the connection) is a normal event for a fault
double, not an error: wherever the double notices it (reading the body, the latency delay, a
hang, a drip) it raises ``ClientDisconnect``, which ``_CountDisconnects`` turns into one tick
of ``client_disconnects`` in ``/sim/stats`` instead of a server traceback per call.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route, request_response
from starlette.types import ASGIApp, Receive, Scope, Send

from partial_trust.apps.llm_sim.answers import BadRequest, Router, answer_bytes, parse_command
from partial_trust.apps.llm_sim.config import Mode, SimConfig
from partial_trust.contracts import CommandDTO

FAULT_HEADER = "x-sim-fault"
ERROR_STATUSES = (500, 503)


@dataclass
class SimState:
    """Live config, the seeded draw sequence and the counters behind ``/sim/stats``."""

    config: SimConfig
    route: Router
    rng: random.Random = field(init=False)
    counts: Counter[Mode] = field(default_factory=Counter)
    total: int = 0
    bad_requests: int = 0
    delayed: int = 0
    in_flight: int = 0
    client_disconnects: int = 0

    def __post_init__(self) -> None:
        self.rng = random.Random(self.config.seed)

    def draw(self) -> tuple[Mode, random.Random]:
        """This request's mode and its own detail RNG.

        Exactly two draws per request from the shared RNG, so the sequence of modes depends
        only on the seed and the rates, not on latency settings or which details were used.
        """
        mode = self.config.pick(self.rng.random())
        return mode, random.Random(self.rng.getrandbits(64))

    def reset(self) -> None:
        """Zero the counters and restart the seeded sequence (a drill starts from scratch)."""
        self.counts.clear()
        self.total = self.bad_requests = self.delayed = self.client_disconnects = 0
        self.rng = random.Random(self.config.seed)

    @contextmanager
    def tracking(self) -> Iterator[None]:
        """Count a request as in flight while the double is still working on its answer."""
        self.in_flight += 1
        try:
            yield
        finally:
            self.in_flight -= 1

    def stats(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "by_mode": {mode.value: self.counts[mode] for mode in Mode},
            "bad_requests": self.bad_requests,
            "delayed": self.delayed,
            "in_flight": self.in_flight,
            "client_disconnects": self.client_disconnects,
            "seed": self.config.seed,
        }


def _state(request: Request) -> SimState:
    state: SimState = request.app.state.sim
    return state


def _openai_error(status: int, message: str, kind: str) -> JSONResponse:
    body = {"error": {"message": message, "type": kind, "param": None, "code": None}}
    return JSONResponse(body, status_code=status)


async def _wait_or_disconnect(request: Request, seconds: float) -> None:
    """Wait ``seconds``, or raise ``ClientDisconnect`` as soon as the client goes away.

    The body has been read, so the next ASGI message is ``http.disconnect``; waiting for it is
    an event wait (no poll, no extra task), cancelled when the time is up.
    """
    with anyio.move_on_after(seconds):
        while (await request.receive())["type"] != "http.disconnect":
            pass
        raise ClientDisconnect()


async def _delay(request: Request, state: SimState, config: SimConfig, rng: random.Random) -> None:
    delay_ms = config.latency_ms + rng.uniform(0.0, config.latency_jitter_ms)
    if delay_ms > 0:
        state.delayed += 1
        await _wait_or_disconnect(request, delay_ms / 1000)


async def _hang(request: Request, config: SimConfig) -> Response:
    """Answer nothing until the client disconnects (or ``hang_max_s``, then 504)."""
    await _wait_or_disconnect(request, config.hang_max_s)
    return Response(status_code=504, headers={FAULT_HEADER: Mode.HANG.value})


class _DripResponse(StreamingResponse):
    """Headers at once, then ``drip_chunk_bytes`` every ``drip_interval_ms``.

    Each read returns quickly, so a client with only a per-read timeout never times out:
    only an overall deadline protects it. Starlette stops the stream quietly when the client
    disconnects (ASGI spec < 2.4) or raises ``ClientDisconnect`` (>= 2.4); a stream cut short
    raises it here too, so both count as one client disconnect.
    """

    def __init__(self, payload: bytes, state: SimState, config: SimConfig) -> None:
        self._finished = False
        super().__init__(
            self._chunks(payload, state, config),
            media_type="application/json",
            headers={FAULT_HEADER: Mode.DRIP.value},
        )

    async def _chunks(
        self, payload: bytes, state: SimState, config: SimConfig
    ) -> AsyncIterator[bytes]:
        with state.tracking():
            step = config.drip_chunk_bytes
            for start in range(0, len(payload), step):
                if start:
                    await asyncio.sleep(config.drip_interval_ms / 1000)
                yield payload[start : start + step]
        self._finished = True

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await super().__call__(scope, receive, send)
        if not self._finished:
            raise ClientDisconnect()


class _CountDisconnects:
    """``endpoint`` as an ASGI app where a client going away is counted, not an error.

    The double raises ``ClientDisconnect`` wherever it notices the client is gone (a body cut
    short, a latency delay, a hang, a drip, a send under ASGI spec >= 2.4). Without this the
    server would log each one as "Exception in ASGI application" with a traceback. Nothing is
    sent: there is nobody to send it to.
    """

    def __init__(self, endpoint: Callable[[Request], Awaitable[Response]]) -> None:
        self.app: ASGIApp = request_response(endpoint)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.app(scope, receive, send)
        except ClientDisconnect:
            state: SimState = scope["app"].state.sim
            state.client_disconnects += 1


@dataclass(frozen=True)
class _Call:
    """One chat completion as the double sees it: the config it started with and its draws."""

    body: bytes
    command: CommandDTO
    config: SimConfig
    mode: Mode
    rng: random.Random


async def _answer(request: Request, call: _Call) -> Response:
    state, config, mode, rng = _state(request), call.config, call.mode, call.rng
    if mode is Mode.HANG:
        return await _hang(request, config)
    await _delay(request, state, config, rng)
    if mode is Mode.ERROR:
        status = rng.choice(ERROR_STATUSES)
        response = _openai_error(status, "simulated upstream failure", "server_error")
        response.headers[FAULT_HEADER] = mode.value
        if status == 503:
            response.headers["retry-after"] = "1"
        return response
    payload = answer_bytes(call.body, call.command, mode, config, state.route, rng)
    if mode is Mode.DRIP:
        return _DripResponse(payload, state, config)
    return Response(payload, media_type="application/json", headers={FAULT_HEADER: mode.value})


async def chat_completions(request: Request) -> Response:
    """``POST /v1/chat/completions``: the baseline's decision as a candidate, maybe faulted."""
    state = _state(request)
    body = await request.body()
    state.total += 1
    try:
        command = parse_command(body)
    except BadRequest as exc:
        state.bad_requests += 1
        return _openai_error(400, str(exc), "invalid_request_error")
    config = state.config
    mode, rng = state.draw()
    state.counts[mode] += 1
    with state.tracking():
        return await _answer(request, _Call(body, command, config, mode, rng))


async def health(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def get_stats(request: Request) -> Response:
    return JSONResponse(_state(request).stats())


async def get_config(request: Request) -> Response:
    return JSONResponse(_state(request).config.model_dump(mode="json"))


async def post_config(request: Request) -> Response:
    """Merge a partial config into the live one; the whole result is validated, else 422.

    Requests already running keep the config they started with. A ``seed`` in the body
    restarts the draw sequence, so a drill can replay a run exactly.
    """
    state = _state(request)
    try:
        update = json.loads(await request.body())
    except ValueError:
        return JSONResponse({"detail": "body is not JSON"}, status_code=422)
    if not isinstance(update, dict):
        return JSONResponse({"detail": "body must be a JSON object"}, status_code=422)
    merged = {**state.config.model_dump(mode="json"), **update}
    try:
        config = SimConfig.model_validate_json(json.dumps(merged))
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_context=False)
        return JSONResponse({"detail": errors}, status_code=422)
    reseed = "seed" in update
    state.config = config
    if reseed:
        state.rng = random.Random(config.seed)
    return JSONResponse(config.model_dump(mode="json"))


async def post_reset(request: Request) -> Response:
    state = _state(request)
    state.reset()
    return JSONResponse(state.stats())


def _baseline_route() -> Router:
    # Imported on use: the double's only dependency on the reference app.
    from partial_trust.middleware.baseline import route

    return route


def create_app(config: SimConfig | None = None, *, route: Router | None = None) -> Starlette:
    """The double as an ASGI app (mount it under ``httpx.ASGITransport`` or run it in uvicorn).

    ``route`` defaults to the reference baseline router; pass another for unit tests.
    """
    chat = _CountDisconnects(chat_completions)
    routes = [
        Route("/v1/chat/completions", chat, methods=["POST"]),
        Route("/chat/completions", chat, methods=["POST"]),
        Route("/health", health, methods=["GET"]),
        Route("/sim/stats", get_stats, methods=["GET"]),
        Route("/sim/config", get_config, methods=["GET"]),
        Route("/sim/config", post_config, methods=["POST"]),
        Route("/sim/reset", post_reset, methods=["POST"]),
    ]
    app = Starlette(routes=routes)
    app.state.sim = SimState(config or SimConfig(), route or _baseline_route())
    return app
