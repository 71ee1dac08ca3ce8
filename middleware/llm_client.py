"""The HTTP client that asks an OpenAI-compatible endpoint for the corridor's candidate.

Why it looks like this:

* One overall deadline (``asyncio.timeout``) covers connect, send, headers and the whole body.
  httpx's own timeouts are per phase, so a server that answers headers quickly and then drips
  the body would otherwise hold a request far past its budget.
* The body is streamed and capped: a misbehaving model cannot make us buffer megabytes.
* Every failure becomes a ``CandidateError`` with a closed ``Reason``; the engine turns that
  into an ``error`` outcome and serves the baseline. Details are fixed strings, never response
  content or request text (privacy: they end up in logs).
* One shared ``httpx.AsyncClient`` per process, for connection pooling.
"""

from __future__ import annotations

import asyncio
import json
import math
from types import TracebackType
from typing import Any, Final, Self

import httpx
from opentelemetry.propagate import inject
from pydantic import BaseModel, ConfigDict, ValidationError

from middleware.outcome import Reason

CANDIDATE_ERROR_REASONS: Final = frozenset(
    {
        Reason.LLM_TIMEOUT,
        Reason.LLM_HTTP_ERROR,
        Reason.LLM_INVALID_RESPONSE,
        Reason.LLM_UNAVAILABLE,
    }
)

#: Enough for ~100 concurrent sampled requests without queueing on the pool.
DEFAULT_LIMITS: Final = httpx.Limits(
    max_connections=200, max_keepalive_connections=100, keepalive_expiry=30.0
)


class CandidateError(Exception):
    """The LLM gave no usable candidate. ``detail`` is a short fixed phrase, never content."""

    def __init__(self, reason: Reason, detail: str | None = None) -> None:
        if reason not in CANDIDATE_ERROR_REASONS:
            raise ValueError(f"{reason!r} is not an LLM candidate error reason")
        self.reason = reason
        self.detail = detail
        super().__init__(reason.value if detail is None else f"{reason.value}: {detail}")


# The envelope: only the path to the content is checked; OpenAI adds fields freely.
class _Message(BaseModel):
    model_config = ConfigDict(extra="ignore")
    content: str


class _Choice(BaseModel):
    model_config = ConfigDict(extra="ignore")
    message: _Message


class _Envelope(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)
    choices: list[_Choice]


def _reject_constant(name: str) -> Any:
    # NaN / Infinity are not JSON; a candidate carrying them is invalid, not a float.
    raise ValueError(name)


def parse_completion(body: bytes) -> dict[str, Any]:
    """The JSON object in ``choices[0].message.content``, or ``LLM_INVALID_RESPONSE``."""
    invalid = Reason.LLM_INVALID_RESPONSE
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise CandidateError(invalid, "not utf-8") from None
    try:
        raw = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting
        raise CandidateError(invalid, "not json") from None
    try:
        envelope = _Envelope.model_validate(raw, strict=True)
    except ValidationError:
        raise CandidateError(invalid, "not a chat completion") from None
    if not envelope.choices:
        raise CandidateError(invalid, "no choices")
    try:
        content = json.loads(envelope.choices[0].message.content, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        raise CandidateError(invalid, "content not json") from None
    if not isinstance(content, dict):
        raise CandidateError(invalid, "content not an object")
    return content


class LLMClient:
    """Calls ``POST {base_url}/chat/completions`` and returns the candidate object.

    An injected ``client`` stays the caller's (``aclose`` leaves it open); otherwise one
    pooled client is created on first use, inside the running event loop.
    """

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        max_response_bytes: int = 256_000,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        if max_response_bytes < 1:
            raise ValueError(f"max_response_bytes must be >= 1, got {max_response_bytes}")
        self.url = base_url.rstrip("/") + "/chat/completions"
        self._api_key = api_key
        self._max_bytes = max_response_bytes
        self._client = client
        self._owns_client = client is None
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
        if self._owns_client and self._client is not None:
            client, self._client = self._client, None
            await client.aclose()

    def _http(self) -> httpx.AsyncClient:
        if self._closed:
            raise RuntimeError("LLMClient is closed")
        if self._client is None:
            self._client = httpx.AsyncClient(limits=DEFAULT_LIMITS, follow_redirects=False)
        return self._client

    async def complete(self, request: dict[str, Any], *, timeout_s: float) -> dict[str, Any]:
        """The parsed candidate, or ``CandidateError``. Caller cancellation propagates."""
        if not (timeout_s > 0 and math.isfinite(timeout_s)):
            raise ValueError(f"timeout_s must be a finite number > 0, got {timeout_s!r}")
        headers = {"Accept": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        inject(headers)  # W3C traceparent from the current span, if any
        client = self._http()
        try:
            async with asyncio.timeout(timeout_s):
                body = await self._post(client, request, headers, timeout_s)
        except CandidateError:
            raise
        except (TimeoutError, httpx.TimeoutException):
            # TimeoutError is our own deadline (asyncio.timeout); caller cancellation stays
            # a CancelledError and is not caught here.
            raise CandidateError(Reason.LLM_TIMEOUT, "deadline") from None
        except httpx.DecodingError:
            raise CandidateError(Reason.LLM_INVALID_RESPONSE, "bad content encoding") from None
        except (httpx.TransportError, OSError) as exc:
            raise CandidateError(Reason.LLM_UNAVAILABLE, type(exc).__name__) from None
        return parse_completion(body)

    async def _post(
        self,
        client: httpx.AsyncClient,
        request: dict[str, Any],
        headers: dict[str, str],
        timeout_s: float,
    ) -> bytes:
        # Leaving the ``async with`` (normally, on error or on cancellation) closes the
        # response, so an unread or half-read body never leaks a pooled connection.
        async with client.stream(
            "POST", self.url, json=request, headers=headers, timeout=httpx.Timeout(timeout_s)
        ) as response:
            if not 200 <= response.status_code < 300:
                raise CandidateError(Reason.LLM_HTTP_ERROR, f"status {response.status_code}")
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > self._max_bytes:
                raise CandidateError(Reason.LLM_INVALID_RESPONSE, "oversized")
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > self._max_bytes:
                    raise CandidateError(Reason.LLM_INVALID_RESPONSE, "oversized")
            return bytes(body)
