"""Bad request bodies for the corridor, and the check every bad-input test makes of one.

Each case is sent twice through the same middleware: once with the corridor switched off
(that is the baseline app's own answer) and once switched on. The two answers must be the
same bytes with the same status and headers (``same_response``), and the corridor records
``skipped/invalid_command`` when on and nothing at all when off (``off_then_on``,
``assert_skipped_invalid``). The ``llm`` fixture, a respx double that would answer a good
candidate, is the conftest's. ``crashing_router`` is a baseline with a bug, for the in-process
and the over-HTTP (``tests/integration/test_bad_input_http.py``) tests alike.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from partial_trust.apps.reference.app import route_endpoint
from tests.corridor_harness import Harness, command, settings

VALID = json.dumps(command()).encode()


def nested(depth: int, open_: str, close: str) -> bytes:
    return (open_ * depth + close * depth).encode()


def command_with(**fields: Any) -> bytes:
    """A valid command with ``fields`` replaced or added, as JSON bytes."""
    return json.dumps(command(**fields)).encode()


def command_without(*names: str) -> bytes:
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
    "command-id-int": command_with(command_id=5),
    "command-id-null": command_with(command_id=None),
    "user-id-list": command_with(user_id=["u-1"]),
    "text-int": command_with(text=42),
    "text-object": command_with(text={"en": "add milk"}),
    "capabilities-string": command_with(capabilities="start_job"),
    "capabilities-bool-items": command_with(capabilities=[True]),
    "context-list": command_with(context=["l-1"]),
    "context-lists-ints": command_with(context={"default_list_id": "l-1", "lists": [1, 2]}),
    "context-default-int": command_with(context={"default_list_id": 7, "lists": []}),
    "command-id-empty": command_with(command_id=""),
    "command-id-too-long": command_with(command_id="c" * 129),
    "text-too-long": command_with(text="add milk " * 300),
    "too-many-lists": command_with(
        context={"default_list_id": "l-1", "lists": [f"l-{i}" for i in range(101)]}
    ),
    "too-many-capabilities": command_with(capabilities=["start_job"] * 33),
    # missing fields
    "empty-object": b"{}",
    "missing-command-id": command_without("command_id"),
    "missing-user-id": command_without("user_id"),
    "missing-text": command_without("text"),
    # extra fields
    "extra-top-level": command_with(intent="add_shopping_item"),
    "extra-in-context": command_with(
        context={"default_list_id": "l-1", "lists": ["l-1"], "owner": "x"}
    ),
    "extra-nested-junk": command_with(debug={"a": [1, {"b": None}]}),
    # oversized
    "oversized-1mb-text": command_with(text="x" * 1_000_000),
    "oversized-10mb-text": command_with(text="x" * 10_000_000),
    "oversized-10mb-lists": command_with(
        context={"default_list_id": "l-1", "lists": ["l" * 100] * 100_000}
    ),
    # deeply nested
    "nested-100k-arrays-open": b"[" * 100_000,
    "nested-100k-arrays": nested(100_000, "[", "]"),
    "nested-100k-objects": b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
    "nested-in-context": VALID[:-1] + b', "context": ' + nested(10_000, "[", "]") + b"}",
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
