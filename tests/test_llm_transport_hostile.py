"""A hostile upstream on a keep-alive connection: one call's answer never reaches another call.

Each request carries its own marker and the honest part of each answer echoes it, so a call
that reads anything but the answer to its own request is seen at once. The faults are the
whole class of "more bytes than the answer": the answer twice in one write, a second copy a
moment later (while the connection idles in the pool), a body longer than its
``Content-Length``, a chunked body followed by an unrequested response, unsolicited bytes
before any request; and the framings that can be read two ways. Every test runs on asyncio
and on uvloop (the loop ``uvicorn[standard]`` picks).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from partial_trust.middleware.llm_client import LLMClient
from partial_trust.outcome import Reason
from tests.support.loopback import Conn, Loopback, failure, response

pytestmark = pytest.mark.parametrize(
    "anyio_backend",
    [
        pytest.param("asyncio", id="asyncio"),
        pytest.param(("asyncio", {"use_uvloop": True}), id="uvloop"),
    ],
)


def _request(marker: str) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": marker}]}


def _answer_for(body: bytes) -> bytes:
    """The completion that answers the request ``body``: its candidate names the marker."""
    marker = json.loads(body)["messages"][0]["content"]
    candidate = {"intent": "add_shopping_item", "job": {"job_type": marker}}
    envelope = {"choices": [{"index": 0, "message": {"content": json.dumps(candidate)}}]}
    return json.dumps(envelope).encode()


def _marker_of(candidate: dict[str, Any]) -> str:
    return str(candidate["job"]["job_type"])


def _chunked(body: bytes) -> bytes:
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
    return head + b"\r\n" + f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"


Fault = Callable[[Conn, bytes], Awaitable[bool]]


async def _twice_in_one_write(conn: Conn, body: bytes) -> bool:
    conn.writer.write(response(_answer_for(body)) * 2)
    return True


async def _second_copy_later(conn: Conn, body: bytes) -> bool:
    answer = response(_answer_for(body))
    conn.writer.write(answer)

    async def again() -> None:
        await asyncio.sleep(0.02)
        if not conn.writer.is_closing():  # the client may have dropped it already
            conn.writer.write(answer)

    task = asyncio.get_running_loop().create_task(again())
    _BACKGROUND.add(task)
    task.add_done_callback(_BACKGROUND.discard)
    return True


async def _body_past_its_length(conn: Conn, body: bytes) -> bool:
    answer = _answer_for(body)
    extra = response(answer)  # what follows the framed body is a whole second response
    conn.writer.write(response(answer)[: -len(answer)] + answer + extra)
    return True


async def _chunked_then_another(conn: Conn, body: bytes) -> bool:
    conn.writer.write(_chunked(_answer_for(body)) + response(_answer_for(body)))
    return True


async def _split_second_copy(conn: Conn, body: bytes) -> bool:
    copy = response(_answer_for(body))
    conn.writer.write(copy + copy[:20])  # half a response with the answer...
    await conn.writer.drain()
    await asyncio.sleep(0.01)
    conn.writer.write(copy[20:])  # ...and the rest while the connection idles
    return True


_BACKGROUND: set[asyncio.Task[None]] = set()
FAULTS: dict[str, Fault] = {
    "twice-in-one-write": _twice_in_one_write,
    "second-copy-later": _second_copy_later,
    "body-past-its-length": _body_past_its_length,
    "chunked-then-another": _chunked_then_another,
    "split-second-copy": _split_second_copy,
}


@pytest.mark.anyio
@pytest.mark.parametrize("fault", sorted(FAULTS))
async def test_each_call_reads_only_the_answer_to_its_own_request(fault: str) -> None:
    """Four users call in turn and at once; nobody ever gets another request's answer."""
    async with Loopback(FAULTS[fault]) as server, LLMClient(server.url) as client:
        for round_ in range(6):
            markers = [f"user-{user}-round-{round_}" for user in range(4)]
            if round_ % 2:  # at once: four connections in flight
                results = await asyncio.gather(
                    *(client.complete(_request(m), timeout_s=2.0) for m in markers),
                    return_exceptions=True,
                )
            else:  # one after the other: each could reuse the connection the last one left
                results = []
                for marker in markers:
                    try:
                        results.append(await client.complete(_request(marker), timeout_s=2.0))
                    except Exception as exc:
                        results.append(exc)
                    await asyncio.sleep(0.03)  # the late copy lands while the connection idles
            for marker, result in zip(markers, results, strict=True):
                if isinstance(result, BaseException):
                    raise AssertionError(f"{fault}: {marker} failed: {result!r}")
                assert _marker_of(result) == marker, f"{fault}: {marker} got another's answer"
        # A connection that carried stray bytes is never reused, and once an upstream has
        # sent any, the pool stops reusing its connections at all: a copy that is still on
        # its way can then never land in the next request's exchange.
        reused = [conn.requests for conn in server.conns if conn.requests > 1]
        if fault == "second-copy-later":
            assert len(reused) <= 4, f"{fault}: {reused}"  # before the first copy landed
        else:
            assert not reused, f"{fault}: {reused}"
        assert client.origin_pool().quarantined, fault


AMBIGUOUS: dict[str, bytes] = {
    "two-equal-lengths": b"Content-Length: {n}\r\nContent-Length: {n}\r\n",
    "two-lengths": b"Content-Length: {n}\r\nContent-Length: 2\r\n",
    "length-list": b"Content-Length: {n}, {n}\r\n",
    "length-and-chunked": b"Content-Length: {n}\r\nTransfer-Encoding: chunked\r\n",
    "gzip-then-chunked": b"Transfer-Encoding: gzip, chunked\r\n",
    "signed-length": b"Content-Length: +{n}\r\n",
}


@pytest.mark.anyio
@pytest.mark.parametrize("framing", sorted(AMBIGUOUS))
async def test_ambiguous_framing_is_refused_and_the_connection_closed(framing: str) -> None:
    async def answer(conn: Conn, body: bytes) -> bool:
        payload = _answer_for(body)
        headers = AMBIGUOUS[framing].replace(b"{n}", str(len(payload)).encode())
        head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" + headers + b"\r\n"
        if b"chunked" in headers:
            payload = f"{len(payload):x}\r\n".encode() + payload + b"\r\n0\r\n\r\n"
        conn.writer.write(head + payload)
        return True

    async with Loopback(answer) as server, LLMClient(server.url) as client:
        for _ in range(3):
            error = await failure(client, timeout_s=2.0)
            assert error.reason in (Reason.LLM_INVALID_RESPONSE, Reason.LLM_UNAVAILABLE)
        assert client.origin_pool().idle_count == 0
        assert all(conn.requests <= 1 for conn in server.conns)
