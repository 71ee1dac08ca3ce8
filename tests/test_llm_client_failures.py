"""How each way an LLM call can fail becomes one ``CandidateError`` reason (``llm_client``):
HTTP errors, transport errors, timeouts and a body dripping past the deadline, answers that
are not a usable chat completion, oversized answers, the caller cancelling.

The reason is all that leaves the client: the error text never carries the request's or the
upstream's words (``reason_of`` checks every time). respx doubles the endpoint; the last two
tests use a real loopback socket, so that refused connection and stalled body are real ones.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator

import httpx
import pytest
import respx

from partial_trust.middleware.llm_client import CandidateError, LLMClient
from partial_trust.outcome import Reason
from tests.support.respx_llm import CANDIDATE, REQUEST, URL, completion, ok, respx_client


class SlowStream(httpx.AsyncByteStream):
    """Headers go out at once; the body arrives in ``chunks`` after ``delay_s`` each."""

    def __init__(self, chunks: list[bytes], delay_s: float) -> None:
        self.chunks = chunks
        self.delay_s = delay_s
        self.closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            await asyncio.sleep(self.delay_s)
            yield chunk

    async def aclose(self) -> None:
        self.closed = True


async def reason_of(client: LLMClient, timeout_s: float = 1.0) -> CandidateError:
    with pytest.raises(CandidateError) as info:
        await client.complete(REQUEST, timeout_s=timeout_s)
    assert "SECRET" not in str(info.value)
    return info.value


# --- each failure, its reason --------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("status", [500, 503, 429, 400, 302])
async def test_http_error_status(mock: respx.MockRouter, status: int) -> None:
    mock.post(URL).mock(return_value=httpx.Response(status, text="SECRET upstream said"))
    async with respx_client() as client:
        error = await reason_of(client)
    assert error.reason is Reason.LLM_HTTP_ERROR
    assert error.detail == f"status {status}"


@pytest.mark.anyio
@pytest.mark.parametrize(
    "exc", [httpx.ConnectError("refused"), httpx.RemoteProtocolError("x"), httpx.ReadError("x")]
)
async def test_transport_errors_are_unavailable(mock: respx.MockRouter, exc: Exception) -> None:
    mock.post(URL).mock(side_effect=exc)
    async with respx_client() as client:
        error = await reason_of(client)
    assert error.reason is Reason.LLM_UNAVAILABLE
    assert error.detail == type(exc).__name__


@pytest.mark.anyio
@pytest.mark.parametrize("exc", [httpx.ReadTimeout("slow"), httpx.ConnectTimeout("slow")])
async def test_httpx_timeouts_are_timeouts(mock: respx.MockRouter, exc: Exception) -> None:
    mock.post(URL).mock(side_effect=exc)
    async with respx_client() as client:
        error = await reason_of(client)
    assert error.reason is Reason.LLM_TIMEOUT


@pytest.mark.anyio
async def test_slow_headers_hit_the_deadline(mock: respx.MockRouter) -> None:
    async def hang(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(10)
        return ok()

    mock.post(URL).mock(side_effect=hang)
    async with respx_client() as client:
        started = time.perf_counter()
        error = await reason_of(client, timeout_s=0.1)
        elapsed = time.perf_counter() - started
    assert error.reason is Reason.LLM_TIMEOUT
    assert elapsed < 0.1 + 0.1


@pytest.mark.anyio
async def test_body_dripping_past_the_deadline_is_a_timeout(mock: respx.MockRouter) -> None:
    body = json.dumps(completion(json.dumps(CANDIDATE))).encode()
    # Each chunk alone is well inside httpx's per-read timeout; only the total is late.
    stream = SlowStream([body[i : i + 8] for i in range(0, len(body), 8)], delay_s=0.03)
    mock.post(URL).mock(side_effect=lambda request: httpx.Response(200, stream=stream))
    async with respx_client() as client:
        started = time.perf_counter()
        error = await reason_of(client, timeout_s=0.2)
        elapsed = time.perf_counter() - started
    assert error.reason is Reason.LLM_TIMEOUT
    assert 0.19 <= elapsed < 0.2 + 0.1
    assert stream.closed


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("response", "detail"),
    [
        (httpx.Response(200, text="SECRET <html>"), "not json"),
        (httpx.Response(200, content=b'{"choices": "\xff\xfe"}'), "not utf-8"),
        (httpx.Response(200, json={"SECRET": 1}), "not a chat completion"),
        (httpx.Response(200, json={"choices": []}), "no choices"),
        (httpx.Response(200, json={"choices": [{"message": {}}]}), "not a chat completion"),
        (httpx.Response(200, json=completion(None)), "not a chat completion"),
        (httpx.Response(200, json=completion({"intent": "x"})), "not a chat completion"),
        (httpx.Response(200, json=[completion("{}")]), "not a chat completion"),
        (ok("SECRET sure! here is your list"), "content not json"),
        (ok('{"confidence": NaN}'), "content not json"),
        (httpx.Response(200, content=b"[" * 100_000), "not json"),
        (ok("[" * 100_000), "content not json"),
        (ok('["SECRET"]'), "content not an object"),
        (ok('"SECRET"'), "content not an object"),
        (ok("42"), "content not an object"),
    ],
)
async def test_invalid_responses(
    mock: respx.MockRouter, response: httpx.Response, detail: str
) -> None:
    mock.post(URL).mock(return_value=response)
    async with respx_client() as client:
        error = await reason_of(client)
    assert error.reason is Reason.LLM_INVALID_RESPONSE
    assert error.detail == detail


@pytest.mark.anyio
async def test_oversized_by_content_length(mock: respx.MockRouter) -> None:
    mock.post(URL).mock(return_value=httpx.Response(200, content=b"x" * 2000))
    async with respx_client(max_response_bytes=1000) as client:
        error = await reason_of(client)
    assert (error.reason, error.detail) == (Reason.LLM_INVALID_RESPONSE, "oversized")


@pytest.mark.anyio
async def test_oversized_streamed_body_stops_reading(mock: respx.MockRouter) -> None:
    stream = SlowStream([b"x" * 400] * 1000, delay_s=0)  # no content-length: chunked
    mock.post(URL).mock(side_effect=lambda request: httpx.Response(200, stream=stream))
    async with respx_client(max_response_bytes=1000) as client:
        error = await reason_of(client)
    assert (error.reason, error.detail) == (Reason.LLM_INVALID_RESPONSE, "oversized")
    assert stream.closed


@pytest.mark.anyio
async def test_response_exactly_at_the_limit_is_read(mock: respx.MockRouter) -> None:
    response = ok()
    size = len(response.content)
    mock.post(URL).mock(return_value=response)
    async with respx_client(max_response_bytes=size) as client:
        assert await client.complete(REQUEST, timeout_s=1.0) == CANDIDATE


@pytest.mark.anyio
async def test_caller_cancellation_propagates_and_closes_the_stream(
    mock: respx.MockRouter,
) -> None:
    stream = SlowStream([b"{", b"}"], delay_s=10)
    mock.post(URL).mock(side_effect=lambda request: httpx.Response(200, stream=stream))
    async with respx_client() as client:
        task = asyncio.create_task(client.complete(REQUEST, timeout_s=5.0))
        await asyncio.sleep(0.05)  # headers are in; the body read is pending
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert stream.closed


# --- a real socket on loopback -------------------------------------------------------------------


def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.anyio
async def test_real_connection_refused_is_unavailable() -> None:
    async with LLMClient(f"http://127.0.0.1:{closed_port()}/v1") as client:
        error = await reason_of(client)
    assert error.reason is Reason.LLM_UNAVAILABLE


@pytest.mark.anyio
async def test_real_server_success_then_hanging_body() -> None:
    """Headers at once, then the body never finishes: the deadline still holds."""
    body = json.dumps(completion(json.dumps(CANDIDATE))).encode()
    requests = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal requests
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                await reader.readexactly(length)
                requests += 1
                status = f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n\r\n".encode()
                if requests == 1:
                    writer.write(status + body)
                else:
                    writer.write(status + body[:10])  # and then nothing
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with LLMClient(f"http://127.0.0.1:{port}/v1") as client:
            assert await client.complete(REQUEST, timeout_s=1.0) == CANDIDATE
            started = time.perf_counter()
            error = await reason_of(client, timeout_s=0.15)
            elapsed = time.perf_counter() - started
    finally:
        server.close()
        await server.wait_closed()
    assert error.reason is Reason.LLM_TIMEOUT
    assert elapsed < 0.15 + 0.1
    assert requests == 2
