"""Bad request bodies, in process: the baseline's own answer, untouched, with the corridor skipped.

Every case is sent twice through the same middleware: once with the corridor switched off
(that is the baseline app's own answer) and once switched on. The two answers must be the
same bytes with the same status and headers, a 4xx for anything that is not a command (never
a 5xx), no LLM call is made, and the corridor records ``skipped/invalid_command`` when on and
nothing at all when off.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from middleware.corridor import MAX_COMMAND_BYTES
from middleware.reference.app import route_endpoint
from tests.corridor_harness import (
    LLM_URL,
    Harness,
    command,
    completion,
    good_candidate,
    harness,
    settings,
)
from tests.support.asgi import post_scope

pytestmark = pytest.mark.anyio

VALID = json.dumps(command()).encode()


def _nested(depth: int, open_: str, close: str) -> bytes:
    return (open_ * depth + close * depth).encode()


def _with(**fields: Any) -> bytes:
    return json.dumps(command(**fields)).encode()


def _without(*names: str) -> bytes:
    body = command()
    for name in names:
        body.pop(name)
    return json.dumps(body).encode()


# name -> raw request body; every one of these is not a CommandDTO.
BAD_BODIES: dict[str, bytes] = {
    # empty and malformed JSON
    "empty": b"",
    "whitespace-only": b" \n\t ",
    "unterminated-object": b'{"command_id": "c-1",',
    "not-json-braces": b"{not json",
    "two-objects": VALID + VALID,
    "trailing-garbage": VALID + b" trailing",
    "single-quotes": VALID.replace(b'"', b"'"),
    "trailing-comma": VALID[:-1] + b",}",
    "nan-literal": VALID[:-1] + b', "x": NaN}',
    "bom-prefixed": b"\xef\xbb\xbf" + VALID,
    # not JSON at all
    "plain-text": b"add milk and two eggs to my shopping list",
    "form-encoded": b"command_id=c-1&user_id=u-1&text=add+milk+to+my+shopping+list",
    "xml": b"<command><command_id>c-1</command_id></command>",
    "binary": bytes(range(256)),
    # JSON, but not an object
    "null": b"null",
    "array": b"[]",
    "array-of-command": b"[" + VALID + b"]",
    "number": b"42",
    "huge-number": b"1e999999",
    "string": b'"add milk to my shopping list"',
    "true": b"true",
    # wrong types (strict models: no coercion)
    "command-id-int": _with(command_id=5),
    "command-id-null": _with(command_id=None),
    "user-id-list": _with(user_id=["u-1"]),
    "text-int": _with(text=42),
    "text-object": _with(text={"en": "add milk"}),
    "capabilities-string": _with(capabilities="start_job"),
    "capabilities-bool-items": _with(capabilities=[True]),
    "context-list": _with(context=["l-1"]),
    "context-lists-ints": _with(context={"default_list_id": "l-1", "lists": [1, 2]}),
    "context-default-int": _with(context={"default_list_id": 7, "lists": []}),
    "command-id-empty": _with(command_id=""),
    "command-id-too-long": _with(command_id="c" * 129),
    "text-too-long": _with(text="add milk " * 300),
    "too-many-lists": _with(
        context={"default_list_id": "l-1", "lists": [f"l-{i}" for i in range(101)]}
    ),
    "too-many-capabilities": _with(capabilities=["start_job"] * 33),
    # missing fields
    "empty-object": b"{}",
    "missing-command-id": _without("command_id"),
    "missing-user-id": _without("user_id"),
    "missing-text": _without("text"),
    # extra fields
    "extra-top-level": _with(intent="add_shopping_item"),
    "extra-in-context": _with(context={"default_list_id": "l-1", "lists": ["l-1"], "owner": "x"}),
    "extra-nested-junk": _with(debug={"a": [1, {"b": None}]}),
    # oversized
    "oversized-1mb-text": _with(text="x" * 1_000_000),
    "oversized-10mb-text": _with(text="x" * 10_000_000),
    "oversized-10mb-lists": _with(
        context={"default_list_id": "l-1", "lists": ["l" * 100] * 100_000}
    ),
    # deeply nested
    "nested-100k-arrays-open": b"[" * 100_000,
    "nested-100k-arrays": _nested(100_000, "[", "]"),
    "nested-100k-objects": b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
    "nested-in-context": VALID[:-1] + b', "context": ' + _nested(10_000, "[", "]") + b"}",
    "nested-in-text": VALID.replace(b'"add milk', b"[" * 5_000 + b'"add milk'),
    # invalid UTF-8 and other encodings
    "invalid-utf8-ff": b'{"command_id": "\xff\xfe", "user_id": "u-1", "text": "x"}',
    "invalid-utf8-in-text": VALID.replace(b"milk", b"mi\xc3k"),
    "overlong-utf8-slash": VALID.replace(b"milk", b"mi\xc0\xafk"),
    "truncated-utf8": VALID[:-3] + b"\xe2\x82",
    "utf16-json": json.dumps(command()).encode("utf-16"),
    "lone-surrogate-escape": VALID.replace(b"milk", b"mi\\ud800lk"),
    "nul-bytes": b"\x00" * 1024,
}


@pytest.fixture
def llm() -> Iterator[Any]:
    with respx.mock(base_url=LLM_URL, assert_all_called=False) as mock:
        mock.post("/chat/completions").mock(return_value=completion(good_candidate()))
        yield mock


def llm_calls(mock: Any) -> int:
    return int(mock.calls.call_count)


async def send(
    h: Harness, content: Any, headers: dict[str, str] | None = None, path: str = "/route"
) -> httpx.Response:
    hdrs = {"content-type": "application/json"} if headers is None else headers
    return await h.client.post(path, content=content, headers=hdrs)


def same_response(on: httpx.Response, off: httpx.Response) -> None:
    assert on.status_code == off.status_code
    assert on.content == off.content
    assert on.headers.get("content-type") == off.headers.get("content-type")
    assert on.headers.get("content-length") == off.headers.get("content-length")


async def off_then_on(
    h: Harness, content: Any, headers: dict[str, str] | None = None
) -> tuple[httpx.Response, httpx.Response]:
    """The baseline's own answer (corridor off: no line may be written), then the corridor's."""
    h.source.value = settings(enabled=False)
    off = await send(h, content() if callable(content) else content, headers)
    assert h.lines() == [], "a disabled corridor writes no risk-log line"
    h.source.value = settings()
    on = await send(h, content() if callable(content) else content, headers)
    return off, on


def assert_skipped_invalid(h: Harness) -> None:
    records = h.lines()
    assert [(r["status"], r["reason_code"], r["sampled"]) for r in records] == [
        ("skipped", "invalid_command", False)
    ]
    assert records[0]["latency_ms"] is None and records[0]["intent_match"] is None
    assert h.decisions("skipped", "invalid_command") == 1


@pytest.mark.parametrize("name", list(BAD_BODIES))
async def test_bad_body_gets_the_baselines_own_4xx(tmp_path: Path, llm: Any, name: str) -> None:
    body = BAD_BODIES[name]
    async with harness(tmp_path) as h:
        off, on = await off_then_on(h, body)
        assert 400 <= off.status_code < 500, (off.status_code, off.content[:200])
        same_response(on, off)
        assert off.json()["error"] == "invalid_command"
        assert_skipped_invalid(h)
        assert llm_calls(llm) == 0


@pytest.mark.parametrize("name", ["oversized-1mb-text", "nested-100k-arrays", "empty"])
async def test_bad_body_on_an_unwrapped_path_is_the_same_answer(
    tmp_path: Path, llm: Any, name: str
) -> None:
    """The same router endpoint mounted where the middleware does not look answers alike."""
    body = BAD_BODIES[name]
    async with harness(tmp_path) as h:
        wrapped = await send(h, body)
        bare = await send(h, body, path="/other")
        same_response(wrapped, bare)
        assert_skipped_invalid(h)
        assert llm_calls(llm) == 0


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=xyz",
        "application/json; charset=latin-1",
        "application/octet-stream",
        None,
    ],
)
async def test_wrong_content_type_with_a_bad_body(
    tmp_path: Path, llm: Any, content_type: str | None
) -> None:
    headers = {} if content_type is None else {"content-type": content_type}
    async with harness(tmp_path) as h:
        off, on = await off_then_on(h, b"command_id=c-1&text=add+milk", headers)
        assert off.status_code == 422
        same_response(on, off)
        assert_skipped_invalid(h)
        assert llm_calls(llm) == 0


@pytest.mark.parametrize("content_type", ["text/plain", "application/xml", None])
async def test_wrong_content_type_with_a_valid_command_is_judged_like_json(
    tmp_path: Path, llm: Any, content_type: str | None
) -> None:
    """The reference router ignores the content type, and so does the corridor: both see the
    same command, so the answer is the one a JSON request gets (here an accepted candidate)."""
    headers = {} if content_type is None else {"content-type": content_type}
    async with harness(tmp_path) as h:
        as_json = await send(h, VALID)
        other = await send(h, VALID, headers)
        assert other.status_code == 200 and other.content == as_json.content
        assert other.json()["job"]["payload"]["list_id"] == "l-2"
        assert [r["reason_code"] for r in h.lines()] == ["accepted", "accepted"]


def _chunks(body: bytes, size: int) -> Any:
    async def gen() -> AsyncIterator[bytes]:
        for i in range(0, len(body), size):
            yield body[i : i + size]

    return gen


@pytest.mark.parametrize(
    ("name", "size"),
    [
        ("unterminated-object", 1),
        ("nested-100k-arrays", 4096),
        ("oversized-1mb-text", 65_536),
        ("invalid-utf8-in-text", 7),
        ("empty-object", 1),
    ],
)
async def test_chunked_bad_body(tmp_path: Path, llm: Any, name: str, size: int) -> None:
    async with harness(tmp_path) as h:
        off, on = await off_then_on(h, _chunks(BAD_BODIES[name], size))
        assert 400 <= off.status_code < 500
        same_response(on, off)
        assert_skipped_invalid(h)
        assert llm_calls(llm) == 0


async def test_chunked_valid_command_is_read_whole(tmp_path: Path, llm: Any) -> None:
    """One byte per chunk: the corridor sees the whole command and the baseline still gets it."""
    llm.post("/chat/completions").mock(return_value=completion(good_candidate(confidence=0.1)))
    async with harness(tmp_path) as h:
        off, on = await off_then_on(h, _chunks(VALID, 1))
        assert off.status_code == 200
        same_response(on, off)
        assert [(r["status"], r["reason_code"]) for r in h.lines()] == [
            ("fallback_deterministic", "low_confidence")
        ]
        assert llm_calls(llm) == 1


async def test_whitespace_padded_command_over_the_corridor_cap(tmp_path: Path, llm: Any) -> None:
    """A valid command padded past the corridor's size cap: the baseline still answers it
    (200), the corridor stays out of it (no LLM call) and passes the bytes through."""
    body = VALID + b" " * (MAX_COMMAND_BYTES + 1)
    async with harness(tmp_path) as h:
        off, on = await off_then_on(h, body)
        assert off.status_code == 200
        same_response(on, off)
        records = h.lines()
        assert len(records) == 1 and records[0]["status"] == "skipped"
        assert llm_calls(llm) == 0


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
async def test_other_methods_pass_untouched(tmp_path: Path, llm: Any, method: str) -> None:
    async with harness(tmp_path) as h:
        h.source.value = settings(enabled=False)
        off = await h.client.request(method, "/route", content=b"{not json")
        h.source.value = settings()
        on = await h.client.request(method, "/route", content=b"{not json")
        assert off.status_code == 405
        same_response(on, off)
        assert h.lines() == [] and llm_calls(llm) == 0


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


def crashing_router() -> Starlette:
    """A baseline that crashes on one input, with its own JSON 500 handler (Starlette's
    ``ServerErrorMiddleware`` sends the handler's response, then re-raises for the server)."""

    async def endpoint(request: Request) -> JSONResponse:
        body = await request.json()
        if "crash" in body.get("text", ""):
            raise RuntimeError("baseline bug")
        return await route_endpoint(request)

    async def on_error(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"error": "baseline_failed"}, status_code=500)

    return Starlette(
        routes=[Route("/route", endpoint, methods=["POST"])],
        exception_handlers={Exception: on_error},
    )


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
