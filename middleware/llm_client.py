"""The HTTP client that asks an OpenAI-compatible endpoint for the corridor's candidate.

Why it looks like this:

* One overall deadline (``asyncio.timeout_at``, from the request's arrival when the caller
  passes it) covers connect, send, headers and the whole body.
  httpx's own timeouts are per phase, so a server that answers headers quickly and then drips
  the body would otherwise hold a request far past its budget.
* The body is streamed and capped: a misbehaving model cannot make us buffer megabytes.
* Every failure becomes a ``CandidateError`` (``completion``) with a closed ``Reason``; the
  engine turns that into an ``error`` outcome and serves the baseline. Details are fixed
  strings, never response content or request text (privacy: they end up in logs).
* One pool of keep-alive connections per client (``llm_pool.OriginPool``): httpcore's
  HTTP/1.1 without httpx's per-call overhead, which was most of a sampled request's cost.
"""

from __future__ import annotations

import asyncio
import functools
import json
import math
import ssl
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Any, Final, Self

import httpcore
import httpx
from opentelemetry.propagate import inject

from partial_trust.environment import Environment
from partial_trust.middleware import log_privacy
from partial_trust.middleware.completion import (
    CANDIDATE_ERROR_REASONS,
    CandidateError,
    parse_completion,
)
from partial_trust.middleware.llm_framing import AmbiguousFraming, ambiguous_framing
from partial_trust.middleware.llm_pool import ConnectionLimitError, OriginPool
from partial_trust.outcome import Reason

__all__ = [
    "CANDIDATE_ERROR_REASONS",
    "CandidateError",
    "LLMClient",
    "parse_completion",
    "proxy_configured",
]


# The HTTP libraries under this client log raw traffic at DEBUG (status lines, headers, the
# bytes of a bad answer): redacted for as long as the process may use this client, also when
# the library is used without ``CorridorStack`` (which holds its own reference).
log_privacy.install()

#: What a keep-alive connection closed under us looks like to httpcore.
_STALE = (httpcore.RemoteProtocolError, httpcore.ReadError, httpcore.WriteError)


class _StaleConnection(Exception):
    """A reused connection failed before any answer: the request can go again, once."""


class LLMClient:
    """Calls ``POST {base_url}/chat/completions`` and returns the candidate object.

    By default the call goes through an ``OriginPool`` (httpcore's HTTP/1.1 on asyncio,
    created on first use inside the running loop; see ``llm_transport`` for why not a full
    ``httpx.AsyncClient``). An injected ``client`` (an in-process ASGI transport, a test
    double, a proxy setup) is used instead and stays the caller's: ``aclose`` leaves it open.
    With ``trust_env`` an ``Environment`` that sets a proxy (``HTTPS_PROXY``,
    ``HTTP_PROXY``, ``ALL_PROXY``), the client makes and owns an ``httpx.AsyncClient`` that
    honours it, since the pool speaks to the origin directly.
    """

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        max_response_bytes: int = 256_000,
        client: httpx.AsyncClient | None = None,
        max_connections: int = 200,
        network_backend: httpcore.AsyncNetworkBackend | None = None,
        ssl_context: ssl.SSLContext | None = None,
        trust_env: Environment | None = None,
    ) -> None:
        if max_response_bytes < 1:
            raise ValueError(f"max_response_bytes must be >= 1, got {max_response_bytes}")
        if max_connections < 1:
            raise ValueError(f"max_connections must be >= 1, got {max_connections}")
        self.url = base_url.rstrip("/") + "/chat/completions"
        parsed = httpx.URL(self.url)
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise ValueError(f"the LLM base URL must be an http(s) URL, got {base_url!r}")
        self._host: bytes = parsed.netloc  # the Host header: host[:port] as written
        self._api_key = api_key
        self._max_bytes = max_response_bytes
        self._client = client
        self._owns_client = client is None and trust_env is not None and proxy_configured(trust_env)
        self._max_connections = max_connections
        self._backend = network_backend
        self._ssl = ssl_context
        self._pool: OriginPool | None = None
        self._closed = False

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        self._closed = True
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.aclose()
        if self._owns_client and self._client is not None:
            client, self._client = self._client, None
            await client.aclose()

    def _origin_pool(self) -> OriginPool:
        if self._closed:
            raise RuntimeError("LLMClient is closed")
        if self._pool is None:
            self._pool = OriginPool(
                self.url,
                max_connections=self._max_connections,
                max_idle=min(100, self._max_connections),
                ssl_context=self._ssl or _default_ssl_context(),
                network_backend=self._backend,
            )
        return self._pool

    async def complete(
        self, request: dict[str, Any], *, timeout_s: float, deadline: float | None = None
    ) -> dict[str, Any]:
        """The parsed candidate, or ``CandidateError``. Caller cancellation propagates.

        ``deadline`` (event-loop time) anchors the timeout where the caller's clock started,
        e.g. when the request arrived: time spent queued on a busy loop before this call ran
        counts against it, so a sampled request never waits ``timeout_s`` *plus* the queue.
        """
        if not (timeout_s > 0 and math.isfinite(timeout_s)):
            raise ValueError(f"timeout_s must be a finite number > 0, got {timeout_s!r}")
        if deadline is None:
            deadline = asyncio.get_running_loop().time() + timeout_s
        if self._closed:
            raise RuntimeError("LLMClient is closed")
        headers = {"Accept": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        inject(headers)  # W3C traceparent from the current span, if any
        content = _json_bytes(request)
        if self._owns_client and self._client is None:
            self._client = httpx.AsyncClient(trust_env=True, follow_redirects=False)
        try:
            async with asyncio.timeout_at(deadline):
                if self._client is not None:
                    body = await self._post_httpx(self._client, content, headers, timeout_s)
                else:
                    body = await self._post(self._origin_pool(), content, headers)
        except CandidateError:
            raise
        except (TimeoutError, httpx.TimeoutException, httpcore.TimeoutException):
            # TimeoutError is our own deadline (asyncio.timeout_at); caller cancellation stays
            # a CancelledError and is not caught here.
            raise CandidateError(Reason.LLM_TIMEOUT, "deadline") from None
        except httpx.DecodingError:
            raise CandidateError(Reason.LLM_INVALID_RESPONSE, "bad content encoding") from None
        except AmbiguousFraming:
            raise CandidateError(Reason.LLM_INVALID_RESPONSE, "ambiguous framing") from None
        except ConnectionLimitError:
            raise CandidateError(Reason.LLM_UNAVAILABLE, "connection limit") from None
        except (
            httpx.TransportError,
            httpcore.NetworkError,
            httpcore.ProtocolError,
            OSError,
        ) as exc:
            raise CandidateError(Reason.LLM_UNAVAILABLE, type(exc).__name__) from None
        return parse_completion(body)

    async def _post(self, pool: OriginPool, content: bytes, headers: dict[str, str]) -> bytes:
        raw_headers = [
            (b"Host", self._host),
            (b"Content-Type", b"application/json"),
            (b"Content-Length", str(len(content)).encode("ascii")),
            *((k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()),
        ]
        request = httpcore.Request(b"POST", pool.url, headers=raw_headers, content=content)
        try:
            return await self._exchange(pool, request)
        except _StaleConnection:
            pass
        # A reused keep-alive connection closed before any answer: almost always the server
        # closing it idle (uvicorn does after 5 s) as we sent. One retry on a fresh
        # connection, as urllib3 and browsers do; a completion has no side effect but its
        # cost, and a fresh connection that fails the same way is not retried.
        return await self._exchange(pool, request, fresh=True)

    async def _exchange(
        self, pool: OriginPool, request: httpcore.Request, *, fresh: bool = False
    ) -> bytes:
        conn = pool.acquire(fresh=fresh)
        reused = conn.is_idle()  # a new connection is not idle until it has connected
        reusable = answered = False
        try:
            response = await conn.handle_async_request(request)
            answered = True
            try:
                declared = _header(response.headers, b"content-length")
                body = await self._read(response.status, declared, response.aiter_stream())
            finally:
                await response.aclose()
            # Reused only when nothing but this answer crossed it (see clean_after_answer).
            reusable = pool.answered(conn, response.extensions.get("network_stream"))
            return body
        except _STALE as exc:
            if reused and not answered:  # never true on a fresh connection
                raise _StaleConnection from exc
            raise
        finally:
            # A failed, cancelled or refused exchange never goes back to the pool.
            pool.release(conn, reusable=reusable)

    async def _post_httpx(
        self,
        client: httpx.AsyncClient,
        content: bytes,
        headers: dict[str, str],
        timeout_s: float,
    ) -> bytes:
        # Leaving the ``async with`` (normally, on error or on cancellation) closes the
        # response, so an unread or half-read body never leaks a pooled connection.
        headers = {**headers, "Content-Type": "application/json"}
        async with client.stream(
            "POST", self.url, content=content, headers=headers, timeout=httpx.Timeout(timeout_s)
        ) as response:
            if ambiguous_framing(response.headers.raw):
                raise CandidateError(Reason.LLM_INVALID_RESPONSE, "ambiguous framing")
            declared = response.headers.get("content-length", "").encode("latin-1")
            return await self._read(response.status_code, declared, response.aiter_bytes())

    async def _read(self, status: int, declared: bytes, chunks: AsyncIterator[bytes]) -> bytes:
        """The body of a 2xx answer, never more than ``max_response_bytes`` of it."""
        if not 200 <= status < 300:
            raise CandidateError(Reason.LLM_HTTP_ERROR, f"status {status}")
        if declared.isdigit() and int(declared) > self._max_bytes:
            raise CandidateError(Reason.LLM_INVALID_RESPONSE, "oversized")
        body = bytearray()
        async for chunk in chunks:
            body += chunk
            if len(body) > self._max_bytes:
                raise CandidateError(Reason.LLM_INVALID_RESPONSE, "oversized")
        return bytes(body)


#: One encoder for every call: ``json.dumps`` with any option builds a new one each time.
_ENCODER: Final = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _json_bytes(request: dict[str, Any]) -> bytes:
    return _ENCODER.encode(request).encode("utf-8")


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> bytes:
    for key, value in headers:
        if key.lower() == name:
            return value.strip()
    return b""


def proxy_configured(env: Environment) -> bool:
    """Whether the environment asks for an HTTP proxy (the variables httpx honours)."""
    return env.proxy_configured


@functools.cache
def _default_ssl_context() -> ssl.SSLContext:
    """httpx's default verification (certifi's CA bundle), loaded once per process: loading
    it costs ~40 ms, which must not land on the first sampled request's deadline."""
    return httpx.create_ssl_context()
