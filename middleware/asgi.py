"""``PartialTrustMiddleware``: the corridor as a pure ASGI middleware.

The instance holds configuration only. Everything about one request lives in the call: the
body read once and replayed to the wrapped app, the baseline's response captured, the
candidate task. A path the middleware does not own costs one set lookup.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from typing import Any, Generic

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from partial_trust.config import EffectiveSettings
from partial_trust.middleware import tracing
from partial_trust.middleware.acceptance import CandidateT
from partial_trust.middleware.corridor import MAX_COMMAND_BYTES, CommandT
from partial_trust.middleware.engine import (
    UNWIND_LAG_S,
    Admission,
    CandidateResult,
    CorridorEngine,
    candidate_by,
)
from partial_trust.middleware.shadow import ShadowJob
from partial_trust.mode import Mode
from partial_trust.outcome import Outcome, Reason


class PartialTrustMiddleware(Generic[CommandT, CandidateT]):
    def __init__(
        self, app: ASGIApp, *, engine: CorridorEngine[CommandT, CandidateT], paths: Iterable[str]
    ) -> None:
        self.app = app
        self.engine = engine
        self.paths = frozenset(paths)
        if not self.paths:
            raise ValueError("PartialTrustMiddleware needs at least one router path to wrap")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in self.paths or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        engine = self.engine
        settings = engine.settings.current()
        if not settings.enabled:
            if not settings.flags_available:
                engine.emit(engine.skip(settings, Reason.FLAGS_UNAVAILABLE))
            await self.app(scope, receive, send)
            return

        if settings.mode is Mode.SHADOW:
            await _run_shadow(self.app, engine, settings, scope, receive, send)
            return
        body, complete, replay = await _buffer_body(receive, MAX_COMMAND_BYTES)
        if not complete:
            engine.emit(engine.skip(settings, Reason.INVALID_COMMAND))
            await self.app(scope, replay, send)
            return
        try:
            admitted = engine.admit(settings, body)
        except Exception:
            engine.emit(engine.internal_error(settings, None))
            await self.app(scope, replay, send)
            return
        if isinstance(admitted, Outcome):
            engine.emit(admitted)
            await self.app(scope, replay, send)
            return
        await _run_sampled(self.app, engine, admitted, scope, replay, send)


async def _buffer_body(receive: Receive, limit: int) -> tuple[bytes, bool, Receive]:
    """Read the request body once (at most ``limit`` bytes of it), and a ``receive`` that hands
    the app exactly what the client sent. Returns (body, complete, replay): a body over the
    limit is never buffered whole; its prefix is replayed and the rest streams through."""
    first = await receive()
    if first["type"] == "http.request" and not first.get("more_body", False):
        # Nearly every command arrives in one message: hand that very message back.
        given: list[Message] = [first]

        async def once() -> Message:
            return given.pop() if given else await receive()

        return first.get("body", b""), True, once
    chunks: list[bytes] = []
    size = 0
    pending: Message | None = None
    complete = False
    message = first
    while True:
        if message["type"] != "http.request":
            pending = message  # the client went away: let the app see that
            break
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if not message.get("more_body", False):
            complete = True
            break
        if size > limit:
            break
        message = await receive()
    body = b"".join(chunks)
    prefix: list[Message] = []
    if chunks or pending is None:
        prefix.append({"type": "http.request", "body": body, "more_body": not complete})
    if pending is not None:
        prefix.append(pending)

    async def replay() -> Message:
        return prefix.pop(0) if prefix else await receive()

    return body, complete, replay


async def _run_sampled(
    app: ASGIApp,
    engine: CorridorEngine[CommandT, CandidateT],
    adm: Admission[CommandT],
    scope: Scope,
    receive: Receive,
    send: Send,
) -> None:
    """Baseline and candidate concurrently; the baseline's answer unless the candidate wins."""
    # The deadline starts when the loop picked this request's batch up, not when the LLM task
    # first runs (or this request's own turn came): on a busy loop the task may wait behind
    # many others, and the request's whole wait must stay within the budget (``arrival``).
    deadline = engine.arrival.now(asyncio.get_running_loop()) + adm.timeout_s
    span = tracing.start_corridor_span()
    task = asyncio.create_task(engine.ask(adm, span, deadline + UNWIND_LAG_S))
    asked = time.perf_counter()
    messages: list[Message] = []

    async def capture(message: Message) -> None:
        messages.append(message)

    started = time.perf_counter()
    try:
        await app(scope, receive, capture)
    except BaseException:
        task.cancel()
        engine.emit(engine.skip(adm.settings, Reason.BASELINE_ERROR, adm.command_key), span)
        # Whatever the app answered before raising (Starlette's ServerErrorMiddleware sends
        # its 500 and then re-raises) is its answer: the client must get it unchanged.
        for message in messages:
            await send(message)
        raise
    baseline_ms = (time.perf_counter() - started) * 1000.0

    replacement: bytes | None = None
    try:
        start, body = _split_response(messages)
        baseline = (
            engine.corridor.baseline_decision(body)
            if start is not None and start["status"] == 200
            else None
        )
        if baseline is None:
            task.cancel()
            reason = (
                Reason.BASELINE_ERROR
                if start is None or start["status"] != 200
                else (Reason.CORRIDOR_MISMATCH)
            )
            outcome = engine.skip(adm.settings, reason, adm.command_key)
        else:
            result: CandidateResult = await candidate_by(task, deadline, asked)
            outcome, replacement = engine.decide(adm, result, baseline, baseline_ms)
    except Exception:
        task.cancel()
        outcome, replacement = engine.internal_error(adm.settings, adm), None

    if replacement is None:
        for message in messages:
            await send(message)
    else:
        await _send_replacement(send, messages[0], replacement)
    engine.emit(outcome, span)


async def _run_shadow(
    app: ASGIApp,
    engine: CorridorEngine[CommandT, CandidateT],
    settings: EffectiveSettings,
    scope: Scope,
    receive: Receive,
    send: Send,
) -> None:
    """The baseline straight to the client (each message as the app sends it, a copy kept);
    only once it has answered is the command admitted (parsed, checked, sampled) and, if
    sampled, the LLM call queued for the background (``shadow.ShadowQueue``). Before the
    answer, shadow only buffers the body and copies the messages: no added wait. The
    admission is spent from shadow's share of the loop, and skipped (counted) while that is
    spent (``ShadowQueue.admitting``)."""
    body, complete, replay = await _buffer_body(receive, MAX_COMMAND_BYTES)
    command = body if complete else None
    messages: list[Message] = []

    async def tee(message: Message) -> None:
        messages.append(message)
        await send(message)

    started = time.perf_counter()
    try:
        await app(scope, replay, tee)
    except BaseException:
        _shadow_after(engine, settings, command, None, 0.0)
        raise
    answered = time.perf_counter()
    shadow = engine.shadow
    if shadow.admitting():
        _shadow_after(engine, settings, command, messages, (answered - started) * 1000.0)
        # Admission never suspends, so its wall time is its loop time: perf_counter, not the
        # thread-CPU clock (a system call) ``Metered`` needs across a job's suspensions.
        shadow.loop_share.spend(time.perf_counter() - answered)


def _shadow_after(
    engine: CorridorEngine[CommandT, CandidateT],
    settings: EffectiveSettings,
    body: bytes | None,
    messages: list[Message] | None,
    baseline_ms: float,
) -> None:
    """Shadow's part of a request, after its answer went out. ``body`` ``None``: over the size
    limit or cut short; ``messages`` ``None``: the app raised."""
    if body is None:
        engine.emit(engine.skip(settings, Reason.INVALID_COMMAND))
        return
    adm: Admission[CommandT] | None = None
    try:
        admitted = engine.admit(settings, body)
        if isinstance(admitted, Outcome):
            engine.emit(admitted)
            return
        adm = admitted
        if messages is None:
            engine.emit(engine.skip(settings, Reason.BASELINE_ERROR, adm.command_key))
            return
        if (cause := engine.shadow.refusal()) is not None:
            engine.shadow.drop(cause)  # before reading the baseline: the job could not run
            return
        start, answer = _split_response(messages)
        ok = start is not None and start["status"] == 200
        baseline = engine.corridor.baseline_decision(answer) if ok else None
        if baseline is None:
            reason = Reason.CORRIDOR_MISMATCH if ok else Reason.BASELINE_ERROR
            engine.emit(engine.skip(settings, reason, adm.command_key))
        else:
            origin = tracing.request_span_context()
            engine.shadow.submit(ShadowJob(adm, baseline, baseline_ms, origin))
    except Exception:
        engine.emit(engine.internal_error(settings, adm))


def _split_response(messages: list[Message]) -> tuple[Message | None, bytes]:
    """The start message and the whole body, or ``None`` for anything but a plain body."""
    if not messages or messages[0]["type"] != "http.response.start":
        return None, b""
    parts: list[bytes] = []
    for message in messages[1:]:
        if message["type"] != "http.response.body":
            return None, b""
        parts.append(message.get("body", b""))
    return messages[0], b"".join(parts)


async def _send_replacement(send: Send, start: Message, body: bytes) -> None:
    headers: list[Any] = [
        (k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"
    ]
    headers.append((b"content-length", str(len(body)).encode()))
    await send({**start, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})
