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
* How the bytes travel is an ``LLMTransport``'s (``llm_seam``): by default keep-alive
  connections to the one origin with llhttp's parser (``llm_httptools.HttptoolsTransport``;
  ``llm_h11.H11Transport`` drives h11 over the same pool), through
  an ``httpx.AsyncClient`` for a proxy or an injected client (``HttpxTransport``). The client
  keeps only the deadline, the size cap and the mapping of failures to reasons.
"""

from __future__ import annotations

import asyncio
import math
import ssl
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Any, Self

import httpcore
import httpx
import orjson
from opentelemetry.propagate import inject
from opentelemetry.trace import get_current_span

from partial_trust.environment import Environment
from partial_trust.middleware import log_privacy
from partial_trust.middleware.completion import (
    CANDIDATE_ERROR_REASONS,
    CandidateError,
    parse_completion,
)
from partial_trust.middleware.llm_framing import AmbiguousFraming
from partial_trust.middleware.llm_httptools import HttptoolsTransport
from partial_trust.middleware.llm_keepalive import KeepAliveTransport
from partial_trust.middleware.llm_pool import ConnectionLimitError
from partial_trust.middleware.llm_seam import HttpxTransport, LLMTransport
from partial_trust.outcome import Reason

__all__ = [
    "CANDIDATE_ERROR_REASONS",
    "CandidateError",
    "LLMClient",
    "LLMTransport",
    "parse_completion",
    "proxy_configured",
]


# The HTTP libraries under this client log raw traffic at DEBUG (status lines, headers, the
# bytes of a bad answer): redacted for as long as the process may use this client, also when
# the library is used without ``CorridorStack`` (which holds its own reference).
log_privacy.install()


class LLMClient:
    """Calls ``POST {base_url}/chat/completions`` and returns the candidate object.

    The transport, first match: ``transport`` as given; ``client`` (an in-process ASGI
    transport, a test double, a proxy setup) through ``HttpxTransport``; with ``trust_env``
    an ``Environment`` that sets a proxy (``HTTPS_PROXY``, ``HTTP_PROXY``, ``ALL_PROXY``), an
    ``httpx.AsyncClient`` made and owned here that honours it; else ``HttptoolsTransport``,
    which speaks to the origin directly. A given ``transport`` or ``client`` stays the
    caller's: ``aclose`` leaves it open.
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
        transport: LLMTransport | None = None,
    ) -> None:
        if max_response_bytes < 1:
            raise ValueError(f"max_response_bytes must be >= 1, got {max_response_bytes}")
        if max_connections < 1:
            raise ValueError(f"max_connections must be >= 1, got {max_connections}")
        self.url = base_url.rstrip("/") + "/chat/completions"
        parsed = httpx.URL(self.url)
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise ValueError(f"the LLM base URL must be an http(s) URL, got {base_url!r}")
        self._api_key = api_key
        self._max_bytes = max_response_bytes
        self._owns_transport = transport is None and client is None
        if transport is None:
            if client is not None:
                transport = HttpxTransport(client)
            elif trust_env is not None and proxy_configured(trust_env):
                transport = HttpxTransport()
            else:
                transport = HttptoolsTransport(
                    self.url,
                    max_connections=max_connections,
                    ssl_context=ssl_context,
                    network_backend=network_backend,
                )
        self.transport: LLMTransport = transport
        self._closed = False

    def origin_pool(self) -> KeepAliveTransport[Any]:
        """The pooled transport's connections (for tests and diagnostics): ``in_use``,
        ``idle_count``, ``quarantined``, ``idle_connections()``."""
        if isinstance(self.transport, KeepAliveTransport):
            return self.transport
        raise TypeError("this client's transport is not a pooled one")

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
        if self._owns_transport:
            await self.transport.aclose()

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
        if get_current_span().get_span_context().is_valid:  # ~7 µs saved when nothing traces
            inject(headers)  # W3C traceparent from the current span
        content = _json_bytes(request)
        try:
            async with asyncio.timeout_at(deadline):
                async with self.transport.post(self.url, content, headers, deadline) as answer:
                    body = await self._read(answer.status, answer.content_length, answer.chunks)
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


def _json_bytes(request: dict[str, Any]) -> bytes:
    """Compact UTF-8 JSON, as ``json.dumps(..., ensure_ascii=False, separators=(",", ":"))``
    writes it, by orjson: the shipped request's nested schema cost the stdlib encoder ~29 µs
    a call, orjson ~2. (orjson writes a NaN as ``null``; the shipped request's only float is
    the profile's temperature, which the policy file's validation bounds to 0..2.)"""
    return orjson.dumps(request)


def proxy_configured(env: Environment) -> bool:
    """Whether the environment asks for an HTTP proxy (the variables httpx honours)."""
    return env.proxy_configured
