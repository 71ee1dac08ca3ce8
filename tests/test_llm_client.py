"""The LLM candidate client (``llm_client``), with respx doubling the endpoint: what a call
sends (the request as given, the bearer token, the caller's trace context), how the client
is opened and closed, and when it goes through a proxy.

The request path talks to the model directly (``HttptoolsTransport``, which respx cannot see:
these tests inject an ``httpx.AsyncClient``, ``respx_client``); the ``httpx.AsyncClient`` path
exists only for an injected client or a proxy the environment asks for, so both are pinned.
How each failure maps to a reason: ``test_llm_client_failures.py``.
"""

from __future__ import annotations

import json

import httpx
import pytest
import respx
from opentelemetry.sdk.trace import TracerProvider

from partial_trust.environment import Environment
from partial_trust.middleware.llm_client import LLMClient
from partial_trust.middleware.llm_httptools import HttptoolsTransport
from partial_trust.middleware.llm_seam import HttpxTransport
from tests.support.loopback import CANDIDATE as LOOPBACK_CANDIDATE
from tests.support.loopback import REQUEST as LOOPBACK_REQUEST
from tests.support.loopback import Loopback
from tests.support.respx_llm import BASE, CANDIDATE, REQUEST, URL, ok, respx_client

# --- what a call sends ---------------------------------------------------------------------------


@pytest.mark.anyio
async def test_success_returns_the_content_object(mock: respx.MockRouter) -> None:
    route = mock.post(URL).mock(return_value=ok())
    async with respx_client() as client:
        assert await client.complete(REQUEST, timeout_s=1.0) == CANDIDATE
    sent = route.calls.last.request
    assert json.loads(sent.content) == REQUEST
    assert "authorization" not in sent.headers


@pytest.mark.anyio
async def test_base_url_joins_without_double_slash(mock: respx.MockRouter) -> None:
    route = mock.post(URL).mock(return_value=ok())
    async with respx_client(BASE + "/") as client:
        await client.complete(REQUEST, timeout_s=1.0)
    assert str(route.calls.last.request.url) == URL


@pytest.mark.anyio
async def test_bearer_token_is_sent(mock: respx.MockRouter) -> None:
    route = mock.post(URL).mock(return_value=ok())
    async with respx_client(api_key="sk-test") as client:
        await client.complete(REQUEST, timeout_s=1.0)
    assert route.calls.last.request.headers["authorization"] == "Bearer sk-test"


@pytest.mark.anyio
async def test_traceparent_is_injected_from_the_active_span(mock: respx.MockRouter) -> None:
    route = mock.post(URL).mock(return_value=ok())
    tracer = TracerProvider().get_tracer("test")  # local provider: the global stays untouched
    async with respx_client() as client:
        with tracer.start_as_current_span("corridor") as span:
            await client.complete(REQUEST, timeout_s=1.0)
            ctx = span.get_span_context()
    traceparent = route.calls.last.request.headers["traceparent"]
    assert traceparent == f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{ctx.trace_flags:02x}"
    assert ctx.trace_flags.sampled


@pytest.mark.anyio
async def test_no_traceparent_without_a_span(mock: respx.MockRouter) -> None:
    route = mock.post(URL).mock(return_value=ok())
    async with respx_client() as client:
        await client.complete(REQUEST, timeout_s=1.0)
    assert "traceparent" not in route.calls.last.request.headers


# --- opening and closing -------------------------------------------------------------------------


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
    async with respx_client() as client:
        with pytest.raises(ValueError, match="timeout_s"):
            await client.complete(REQUEST, timeout_s=timeout_s)


# --- proxies -------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_proxy_in_the_environment_is_honoured_with_trust_env(
    mock: respx.MockRouter, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pool speaks to the origin directly; with a proxy configured and ``trust_env`` the
    call goes through an owned ``httpx.AsyncClient`` (httpx routes it to the proxy)."""
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.test:3128")  # httpx routes by the process's
    route = mock.post(URL).mock(return_value=ok())
    client = LLMClient(BASE, trust_env=Environment.from_os())
    assert await client.complete(REQUEST, timeout_s=1.0) == CANDIDATE
    assert isinstance(client.transport, HttpxTransport)
    http = client.transport.client
    assert isinstance(http, httpx.AsyncClient)
    assert route.called
    await client.aclose()
    assert http.is_closed


@pytest.mark.anyio
async def test_proxy_is_ignored_without_trust_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without ``trust_env`` the default transport speaks to the origin itself: a proxy in
    the process's environment (one that does not exist) changes nothing."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.setenv(name, "http://proxy.test:3128")
    async with Loopback() as server, LLMClient(server.url) as client:
        assert await client.complete(LOOPBACK_REQUEST, timeout_s=2.0) == LOOPBACK_CANDIDATE
        assert isinstance(client.transport, HttptoolsTransport)
    assert len(server.requests) == 1


def test_proxy_configured_reads_either_case() -> None:
    from partial_trust.middleware.llm_client import proxy_configured

    assert not proxy_configured(Environment.from_mapping({}))
    assert proxy_configured(Environment.from_mapping({"https_proxy": "http://p:1"}))
    assert proxy_configured(Environment.from_mapping({"ALL_PROXY": "socks5://p:1"}))
    assert not proxy_configured(Environment.from_mapping({"HTTPS_PROXY": ""}))
