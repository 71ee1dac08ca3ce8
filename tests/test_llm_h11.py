"""The keep-alive transports over ``llm_keepalive`` (``HttptoolsTransport``, llhttp, the
default; ``H11Transport``, h11) against hostile upstreams, framings, stale connections, limits
and TLS on a real loopback server: one call's answer never reaches another call, and every
failure maps to a reason. Every test runs with both wire protocols, on asyncio and on uvloop.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from pathlib import Path
from typing import Any

import httpcore
import pytest
from opentelemetry.sdk.trace import TracerProvider

from partial_trust.middleware.llm_client import LLMClient
from partial_trust.middleware.llm_h11 import H11Transport
from partial_trust.middleware.llm_httptools import HttptoolsTransport
from partial_trust.middleware.llm_keepalive import KeepAliveTransport
from partial_trust.outcome import Reason
from tests.support.instant_llm import InstantBackend, InstantStream, http_response
from tests.support.loopback import (
    BODY,
    CANDIDATE,
    REQUEST,
    Conn,
    Loopback,
    answer_when_in_flight,
    failure,
    response,
    sees_eof,
)
from tests.support.tls import server_context
from tests.test_llm_transport_hostile import AMBIGUOUS, FAULTS, _answer_for, _marker_of, _request

pytestmark = pytest.mark.parametrize(
    "anyio_backend",
    [
        pytest.param("asyncio", id="asyncio"),
        pytest.param(("asyncio", {"use_uvloop": True}), id="uvloop"),
    ],
)


Wire = type[KeepAliveTransport[Any]]


@pytest.fixture(params=[HttptoolsTransport, H11Transport], ids=["llhttp", "h11"])
def wire(request: pytest.FixtureRequest) -> Wire:
    cls: Wire = request.param
    return cls


def _client(wire: Wire, url: str, **kwargs: object) -> tuple[LLMClient, KeepAliveTransport[Any]]:
    # the tests pass the transport's own keyword arguments, typed there
    transport = wire(url + "/chat/completions", **kwargs)  # type: ignore[arg-type]  # see above
    return LLMClient(url, transport=transport), transport


@pytest.mark.anyio
@pytest.mark.parametrize("fault", sorted(FAULTS))
async def test_each_call_reads_only_its_own_answer(fault: str, wire: Wire) -> None:
    async with Loopback(FAULTS[fault]) as server:
        client, transport = _client(wire, server.url)
        for round_ in range(6):
            markers = [f"user-{user}-round-{round_}" for user in range(4)]
            if round_ % 2:
                results = await asyncio.gather(
                    *(client.complete(_request(m), timeout_s=2.0) for m in markers),
                    return_exceptions=True,
                )
            else:
                results = []
                for marker in markers:
                    try:
                        results.append(await client.complete(_request(marker), timeout_s=2.0))
                    except Exception as exc:
                        results.append(exc)
                    await asyncio.sleep(0.03)
            for marker, result in zip(markers, results, strict=True):
                if isinstance(result, BaseException):
                    raise AssertionError(f"{fault}: {marker} failed: {result!r}")
                assert _marker_of(result) == marker, f"{fault}: {marker} got another's answer"
        reused = [conn.requests for conn in server.conns if conn.requests > 1]
        if fault == "second-copy-later":
            assert len(reused) <= 4, f"{fault}: {reused}"
        else:
            assert not reused, f"{fault}: {reused}"
        assert transport.quarantined, fault
        await transport.aclose()


@pytest.mark.anyio
@pytest.mark.parametrize("framing", sorted(AMBIGUOUS))
async def test_ambiguous_framing_is_refused(framing: str, wire: Wire) -> None:
    async def answer(conn: Conn, body: bytes) -> bool:
        payload = _answer_for(body)
        headers = AMBIGUOUS[framing].replace(b"{n}", str(len(payload)).encode())
        head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" + headers + b"\r\n"
        if b"chunked" in headers:
            payload = f"{len(payload):x}\r\n".encode() + payload + b"\r\n0\r\n\r\n"
        conn.writer.write(head + payload)
        return True

    async with Loopback(answer) as server:
        client, transport = _client(wire, server.url)
        for _ in range(3):
            error = await failure(client, timeout_s=2.0)
            assert error.reason in (Reason.LLM_INVALID_RESPONSE, Reason.LLM_UNAVAILABLE)
        assert (transport.idle_count, transport.in_use) == (0, 0)
        assert all(conn.requests <= 1 for conn in server.conns)
        await transport.aclose()


@pytest.mark.anyio
async def test_keep_alive_chunked_trailers_1xx_and_204(wire: Wire) -> None:
    body = _answer_for(b'{"messages":[{"content":"m"}]}')
    answers = [
        b"HTTP/1.1 100 Continue\r\n\r\n" + response(body),
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        + f"{len(body):x}\r\n".encode()
        + body
        + b"\r\n0\r\nX-Trailer: 1\r\n\r\n",
        b"HTTP/1.1 204 No Content\r\n\r\n",
        response(body),
    ]

    async def respond(conn: Conn, _: bytes) -> bool:
        conn.writer.write(answers[conn.requests - 1])
        return True

    async with Loopback(respond) as server:
        client, transport = _client(wire, server.url)
        request = {"model": "m", "messages": [{"role": "user", "content": "m"}]}
        assert _marker_of(await client.complete(request, timeout_s=2.0)) == "m"
        assert _marker_of(await client.complete(request, timeout_s=2.0)) == "m"
        error = await failure(client, timeout_s=2.0)  # 204: not a completion
        assert error.reason is Reason.LLM_INVALID_RESPONSE
        assert _marker_of(await client.complete(request, timeout_s=2.0)) == "m"
        assert len(server.conns) == 1 and server.conns[0].requests == 4
        await transport.aclose()
        assert await sees_eof(server.conns[0])


@pytest.mark.anyio
async def test_a_connection_closed_idle_is_retried_once_on_a_fresh_one(wire: Wire) -> None:
    async def once(conn: Conn, body: bytes) -> bool:
        conn.writer.write(response())
        return False  # the server closes after every answer, without saying so

    async with Loopback(once) as server:
        client, transport = _client(wire, server.url)
        for _ in range(3):
            assert await client.complete(REQUEST, timeout_s=2.0) == CANDIDATE
            await asyncio.sleep(0.02)
        assert len(server.conns) == 3 and all(c.requests == 1 for c in server.conns)
        await transport.aclose()


@pytest.mark.anyio
async def test_limits_deadline_and_refused_connect(wire: Wire) -> None:
    async with Loopback(answer_when_in_flight(3)) as server:
        client, transport = _client(wire, server.url, max_connections=2)
        results = await asyncio.gather(
            *(client.complete(REQUEST, timeout_s=0.3) for _ in range(3)), return_exceptions=True
        )
        reasons = sorted(str(getattr(r, "reason", "ok")) for r in results)
        assert reasons.count(str(Reason.LLM_UNAVAILABLE)) == 1, reasons
        assert reasons.count(str(Reason.LLM_TIMEOUT)) == 2, reasons
        assert (transport.in_use, transport.idle_count) == (0, 0)
        await transport.aclose()
    client, transport = _client(wire, server.url)  # the server is gone: connect refused
    error = await failure(client)
    assert (error.reason, error.detail) == (Reason.LLM_UNAVAILABLE, "ConnectError")


@pytest.mark.anyio
async def test_tls_trusted_keeps_alive_and_untrusted_fails(
    certificate: tuple[Path, Path], wire: Wire
) -> None:
    trusting = ssl.create_default_context(cafile=str(certificate[0]))
    async with Loopback(ssl_context=server_context(certificate)) as server:
        client, transport = _client(wire, server.url, ssl_context=trusting)
        for _ in range(3):
            assert await client.complete(REQUEST, timeout_s=2.0) == CANDIDATE
        assert transport.idle_count == 1 and len(server.conns) == 1
        await transport.aclose()
        client, transport = _client(wire, server.url, ssl_context=ssl.create_default_context())
        error = await failure(client)
        assert (error.reason, error.detail) == (Reason.LLM_UNAVAILABLE, "ConnectError")
        assert (transport.idle_count, transport.in_use) == (0, 0)


@pytest.mark.anyio
async def test_the_default_client_sends_the_request_as_given_with_its_headers() -> None:
    """Host, JSON content type and length, the bearer token, the caller's trace context and
    a transport caller's own ``x-`` header, on the wire; the body byte for byte."""
    tracer = TracerProvider().get_tracer("test")  # local provider: the global stays untouched
    async with Loopback() as server, LLMClient(server.url, api_key="sk-test") as client:
        assert isinstance(client.transport, HttptoolsTransport)
        with tracer.start_as_current_span("corridor") as span:
            assert await client.complete(REQUEST, timeout_s=2.0) == CANDIDATE
            ctx = span.get_span_context()
        loop = asyncio.get_running_loop()
        async with client.transport.post(
            client.url, b"{}", {"x-extra": "1"}, loop.time() + 2.0
        ) as answer:
            assert answer.status == 200
            assert b"".join([chunk async for chunk in answer.chunks])
    first, second = (_fields(head) for head in server.heads)
    assert first["host"] == f"127.0.0.1:{server.port}"
    assert first["content-type"] == "application/json"
    assert first["authorization"] == "Bearer sk-test"
    traceparent = f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{ctx.trace_flags:02x}"
    assert first["traceparent"] == traceparent
    assert json.loads(server.requests[0][1]) == REQUEST
    assert int(first["content-length"]) == len(server.requests[0][1])
    assert server.heads[0].startswith(b"POST /v1/chat/completions HTTP/1.1\r\n")
    assert second["x-extra"] == "1" and server.requests[1][1] == b"{}"
    assert server.conns[0].requests == 2  # one keep-alive connection


def _fields(head: bytes) -> dict[str, str]:
    lines = head.decode("latin-1").split("\r\n")[1:]
    return {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines if x)}


class _TwiceBackend(InstantBackend):
    """A backend other than ours (no ``settle``): its stream answers every request twice in
    one read, so the extra answer reaches h11 itself, as its ``trailing_data``."""

    async def connect_tcp(self, *args: Any, **kwargs: Any) -> httpcore.AsyncNetworkStream:
        self.connects += 1
        return InstantStream(http_response(BODY) * 2)


@pytest.mark.anyio
async def test_another_backends_extra_answer_is_never_read_by_the_next_call(wire: Wire) -> None:
    backend = _TwiceBackend(BODY)
    client, transport = _client(wire, "http://llm.test/v1", network_backend=backend)
    for _ in range(3):
        assert await client.complete(REQUEST, timeout_s=2.0) == CANDIDATE
    assert backend.connects == 3  # never reused: each call on a fresh connection
    assert transport.quarantined and transport.idle_count == 0
