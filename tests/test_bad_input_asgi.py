"""The middleware's ASGI callable driven directly, where no HTTP client can go: a client gone
before or during its body, and a baseline that sends its own 500 and then raises.

In both the baseline's own messages (or its own exception) must be exactly what they are
with the corridor off: the corridor may record what happened, never drop or add a message.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.corridor_harness import Harness, harness, settings
from tests.support.asgi import post_scope
from tests.support.bad_input import VALID, assert_skipped_invalid, crashing_router, llm_calls
from tests.support.bad_input import command_with as _with

pytestmark = pytest.mark.anyio


async def _asgi_disconnect(h: Harness, before: bytes = b"") -> list[dict[str, Any]]:
    """Call the middleware directly with a client that sends ``before`` (more to come) and
    is then gone."""
    sent: list[dict[str, Any]] = []
    incoming: list[dict[str, Any]] = [{"type": "http.disconnect"}]
    if before:
        incoming.insert(0, {"type": "http.request", "body": before, "more_body": True})
    scope = post_scope("/route", server="app.test")

    async def receive() -> dict[str, Any]:
        return incoming.pop(0) if len(incoming) > 1 else incoming[0]

    async def send_(message: Any) -> None:
        sent.append(dict(message))

    try:
        await h.app(scope, receive, send_)
    except Exception as exc:  # the baseline's own reaction to a gone client
        sent.append({"type": "raised", "exc": type(exc).__name__})
    return sent


@pytest.mark.parametrize("before", [b"", VALID[:20], VALID], ids=["none", "half", "whole"])
async def test_client_gone_gets_the_baselines_own_reaction(
    tmp_path: Path, llm: Any, before: bytes
) -> None:
    async with harness(tmp_path) as h:
        h.source.value = settings(enabled=False)
        off = await _asgi_disconnect(h, before)
        assert h.lines() == []
        h.source.value = settings()
        on = await _asgi_disconnect(h, before)
        assert on == off, (on, off)  # nobody is left to read it: the baseline's own reaction
        assert_skipped_invalid(h)
        assert llm_calls(llm) == 0


async def _asgi_post(h: Harness, body: bytes) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []
    scope = post_scope("/route", server="app.test")
    incoming = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict[str, Any]:
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send_(message: Any) -> None:
        sent.append(dict(message))

    try:
        await h.app(scope, receive, send_)
    except Exception as exc:
        sent.append({"type": "raised", "exc": type(exc).__name__})
    return sent


async def test_a_baseline_that_answers_500_and_raises_keeps_its_own_answer(
    tmp_path: Path, llm: Any
) -> None:
    """The baseline's own error answer must reach the client unchanged with the corridor on,
    exactly as with it off: the corridor may record ``baseline_error``, never drop the
    messages the baseline already sent."""
    body = _with(text="add crash to my shopping list")
    async with harness(tmp_path) as h:
        h.app.app = crashing_router()
        h.source.value = settings(enabled=False)
        off = await _asgi_post(h, body)
        assert [m.get("status") for m in off if m["type"] == "http.response.start"] == [500]
        assert h.lines() == []
        h.source.value = settings()
        on = await _asgi_post(h, body)
        assert on == off, (on, off)
        records = h.lines()
        assert [(r["status"], r["reason_code"]) for r in records] == [("skipped", "baseline_error")]
