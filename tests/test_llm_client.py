"""The LLM candidate client: respx doubles the endpoint; two tests use a real loopback socket."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import respx
from opentelemetry.sdk.trace import TracerProvider

from middleware.llm_client import CandidateError, LLMClient
from middleware.outcome import Reason

BASE = "http://llm.test/v1"
URL = f"{BASE}/chat/completions"
REQUEST: dict[str, Any] = {"model": "m", "messages": [{"role": "user", "content": "SECRET-TEXT"}]}
CANDIDATE: dict[str, Any] = {
    "intent": "add_shopping_item",
    "job": {"job_type": "add_shopping_item", "payload": {"list_id": "l-1", "items": []}},
}


def completion(content: Any) -> dict[str, Any]:
    return {
        "id": "x",
        "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}}],
        "usage": {"total_tokens": 1},
    }


def ok(content: Any = None) -> httpx.Response:
    return httpx.Response(
        200, json=completion(json.dumps(CANDIDATE) if content is None else content)
    )


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


@pytest.fixture
def mock() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=False) as router:
        yield router


async def reason_of(client: LLMClient, timeout_s: float = 1.0) -> CandidateError:
    with pytest.raises(CandidateError) as info:
        await client.complete(REQUEST, timeout_s=timeout_s)
    assert "SECRET" not in str(info.value)
    return info.value


@pytest.mark.anyio
async def test_success_returns_the_content_object(mock: respx.MockRouter) -> None:
    route = mock.post(URL).mock(return_value=ok())
    async with LLMClient(BASE) as client:
        assert await client.complete(REQUEST, timeout_s=1.0) == CANDIDATE
    sent = route.calls.last.request
    assert json.loads(sent.content) == REQUEST
    assert "authorization" not in sent.headers


@pytest.mark.anyio
async def test_base_url_joins_without_double_slash(mock: respx.MockRouter) -> None:
    route = mock.post(URL).mock(return_value=ok())
    async with LLMClient(BASE + "/") as client:
        await client.complete(REQUEST, timeout_s=1.0)
    assert str(route.calls.last.request.url) == URL


@pytest.mark.anyio
async def test_bearer_token_is_sent(mock: respx.MockRouter) -> None:
    route = mock.post(URL).mock(return_value=ok())
    async with LLMClient(BASE, api_key="sk-test") as client:
        await client.complete(REQUEST, timeout_s=1.0)
    assert route.calls.last.request.headers["authorization"] == "Bearer sk-test"


@pytest.mark.anyio
async def test_traceparent_is_injected_from_the_active_span(mock: respx.MockRouter) -> None:
    route = mock.post(URL).mock(return_value=ok())
    tracer = TracerProvider().get_tracer("test")  # local provider: the global stays untouched
    async with LLMClient(BASE) as client:
        with tracer.start_as_current_span("corridor") as span:
            await client.complete(REQUEST, timeout_s=1.0)
            ctx = span.get_span_context()
    traceparent = route.calls.last.request.headers["traceparent"]
    assert traceparent == f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{ctx.trace_flags:02x}"
    assert ctx.trace_flags.sampled


@pytest.mark.anyio
async def test_no_traceparent_without_a_span(mock: respx.MockRouter) -> None:
    route = mock.post(URL).mock(return_value=ok())
    async with LLMClient(BASE) as client:
        await client.complete(REQUEST, timeout_s=1.0)
    assert "traceparent" not in route.calls.last.request.headers


@pytest.mark.anyio
@pytest.mark.parametrize("status", [500, 503, 429, 400, 302])
async def test_http_error_status(mock: respx.MockRouter, status: int) -> None:
    mock.post(URL).mock(return_value=httpx.Response(status, text="SECRET upstream said"))
    async with LLMClient(BASE) as client:
        error = await reason_of(client)
    assert error.reason is Reason.LLM_HTTP_ERROR
    assert error.detail == f"status {status}"


@pytest.mark.anyio
@pytest.mark.parametrize(
    "exc", [httpx.ConnectError("refused"), httpx.RemoteProtocolError("x"), httpx.ReadError("x")]
)
async def test_transport_errors_are_unavailable(mock: respx.MockRouter, exc: Exception) -> None:
    mock.post(URL).mock(side_effect=exc)
    async with LLMClient(BASE) as client:
        error = await reason_of(client)
    assert error.reason is Reason.LLM_UNAVAILABLE
    assert error.detail == type(exc).__name__


@pytest.mark.anyio
@pytest.mark.parametrize("exc", [httpx.ReadTimeout("slow"), httpx.ConnectTimeout("slow")])
async def test_httpx_timeouts_are_timeouts(mock: respx.MockRouter, exc: Exception) -> None:
    mock.post(URL).mock(side_effect=exc)
    async with LLMClient(BASE) as client:
        error = await reason_of(client)
    assert error.reason is Reason.LLM_TIMEOUT


@pytest.mark.anyio
async def test_slow_headers_hit_the_deadline(mock: respx.MockRouter) -> None:
    async def hang(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(10)
        return ok()

    mock.post(URL).mock(side_effect=hang)
    async with LLMClient(BASE) as client:
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
    async with LLMClient(BASE) as client:
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
    async with LLMClient(BASE) as client:
        error = await reason_of(client)
    assert error.reason is Reason.LLM_INVALID_RESPONSE
    assert error.detail == detail


@pytest.mark.anyio
async def test_oversized_by_content_length(mock: respx.MockRouter) -> None:
    mock.post(URL).mock(return_value=httpx.Response(200, content=b"x" * 2000))
    async with LLMClient(BASE, max_response_bytes=1000) as client:
        error = await reason_of(client)
    assert (error.reason, error.detail) == (Reason.LLM_INVALID_RESPONSE, "oversized")


@pytest.mark.anyio
async def test_oversized_streamed_body_stops_reading(mock: respx.MockRouter) -> None:
    stream = SlowStream([b"x" * 400] * 1000, delay_s=0)  # no content-length: chunked
    mock.post(URL).mock(side_effect=lambda request: httpx.Response(200, stream=stream))
    async with LLMClient(BASE, max_response_bytes=1000) as client:
        error = await reason_of(client)
    assert (error.reason, error.detail) == (Reason.LLM_INVALID_RESPONSE, "oversized")
    assert stream.closed


@pytest.mark.anyio
async def test_response_exactly_at_the_limit_is_read(mock: respx.MockRouter) -> None:
    response = ok()
    size = len(response.content)
    mock.post(URL).mock(return_value=response)
    async with LLMClient(BASE, max_response_bytes=size) as client:
        assert await client.complete(REQUEST, timeout_s=1.0) == CANDIDATE


@pytest.mark.anyio
async def test_caller_cancellation_propagates_and_closes_the_stream(
    mock: respx.MockRouter,
) -> None:
    stream = SlowStream([b"{", b"}"], delay_s=10)
    mock.post(URL).mock(side_effect=lambda request: httpx.Response(200, stream=stream))
    async with LLMClient(BASE) as client:
        task = asyncio.create_task(client.complete(REQUEST, timeout_s=5.0))
        await asyncio.sleep(0.05)  # headers are in; the body read is pending
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert stream.closed


@pytest.mark.anyio
async def test_injected_client_is_used_and_left_open(mock: respx.MockRouter) -> None:
    route = mock.post(URL).mock(return_value=ok())
    async with httpx.AsyncClient() as http:
        client = LLMClient(BASE, client=http)
        await client.complete(REQUEST, timeout_s=1.0)
        await client.aclose()
        assert not http.is_closed
    assert route.called


@pytest.mark.anyio
async def test_closed_client_refuses_new_calls() -> None:
    client = LLMClient(BASE)
    await client.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        await client.complete(REQUEST, timeout_s=1.0)


@pytest.mark.anyio
@pytest.mark.parametrize("timeout_s", [0, -1.0, float("nan"), float("inf")])
async def test_rejects_bad_timeout(timeout_s: float) -> None:
    async with LLMClient(BASE) as client:
        with pytest.raises(ValueError, match="timeout_s"):
            await client.complete(REQUEST, timeout_s=timeout_s)


# --- a real socket on loopback -------------------------------------------------------------


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


# --- proxies ---------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_proxy_in_the_environment_is_honoured_with_trust_env(
    mock: respx.MockRouter, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pool speaks to the origin directly; with a proxy configured and ``trust_env`` the
    call goes through an owned ``httpx.AsyncClient`` (httpx routes it to the proxy)."""
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.test:3128")
    route = mock.post(URL).mock(return_value=ok())
    client = LLMClient(BASE, trust_env=True)
    assert await client.complete(REQUEST, timeout_s=1.0) == CANDIDATE
    http = client._client
    assert isinstance(http, httpx.AsyncClient)
    assert route.called
    await client.aclose()
    assert http.is_closed


@pytest.mark.anyio
async def test_proxy_is_ignored_without_trust_env(
    mock: respx.MockRouter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.test:3128")
    mock.post(URL).mock(return_value=ok())
    async with LLMClient(BASE) as client:
        assert await client.complete(REQUEST, timeout_s=1.0) == CANDIDATE
        assert client._client is None


def test_proxy_configured_reads_either_case() -> None:
    from middleware.llm_client import proxy_configured

    assert not proxy_configured({})
    assert proxy_configured({"https_proxy": "http://p:1"})
    assert proxy_configured({"ALL_PROXY": "socks5://p:1"})
    assert not proxy_configured({"HTTPS_PROXY": ""})
