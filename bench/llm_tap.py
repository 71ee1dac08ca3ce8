"""A recording pass-through between ``partial-trust serve`` and the real LLM server.

The risk log holds no content, by design, so it cannot say *what* the model answered; the
bench needs that to measure the model against the labels (and the served answer is the
baseline's whenever the candidate was refused). The tap forwards every chat completion
unchanged and keeps, per command (text and lists, from the request's last user message),
the candidate object the model wrote, its HTTP status and the upstream latency. It runs in a
thread of the bench process on 127.0.0.1; it adds well under a millisecond to calls that take
seconds.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from dataclasses import dataclass
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bench.llm_server import free_port


def command_key(text: str, default_list_id: str | None, lists: list[str]) -> str:
    return json.dumps([text, default_list_id, lists], ensure_ascii=False)


@dataclass
class Tapped:
    status: int
    candidate: Any  # the JSON in choices[0].message.content, or None if there was none
    latency_ms: float


class LLMTap:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.records: dict[str, Tapped] = {}
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self._in_flight = 0
        app = Starlette(routes=[Route("/v1/chat/completions", self._forward, methods=["POST"])])
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan="off",
            loop="asyncio",
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="llm-tap", daemon=True)

    async def _forward(self, request: Request) -> Response:
        body = await request.body()
        self._in_flight += 1
        try:
            # A client per call: each call takes seconds, and nothing is left open when the
            # tap stops (``serve`` gives up on slow calls; the tap still waits for them).
            async with httpx.AsyncClient(timeout=300.0) as client:
                started = time.perf_counter()
                upstream = await client.post(
                    f"{self.upstream}/chat/completions",
                    content=body,
                    headers={"content-type": "application/json"},
                )
        finally:
            self._in_flight -= 1
        latency_ms = (time.perf_counter() - started) * 1000
        try:
            sent = json.loads(body)["messages"][-1]["content"]
            user = json.loads(sent)
            key = command_key(user["text"], user["default_list_id"], user["lists"])
        except (ValueError, KeyError, TypeError, IndexError):
            key = "<unreadable request>"
        candidate: Any = None
        with contextlib.suppress(ValueError, KeyError, TypeError, IndexError):
            candidate = json.loads(upstream.json()["choices"][0]["message"]["content"])
        self.records[key] = Tapped(upstream.status_code, candidate, latency_ms)
        return Response(upstream.content, upstream.status_code, media_type="application/json")

    def __enter__(self) -> LLMTap:
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the LLM tap did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        # Calls ``serve`` abandoned at its deadline still run on the LLM server: wait for
        # them (bounded), so their answers are recorded and no connection is left open.
        deadline = time.monotonic() + 120
        while self._in_flight and time.monotonic() < deadline:
            time.sleep(0.1)
        self._server.should_exit = True
        self._thread.join(timeout=20)
