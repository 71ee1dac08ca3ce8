"""One seam for the LLM call: ``LLMTransport``, ``LLMResponse`` and ``HttpxTransport``.

Why a seam: ``LLMClient`` owns what the corridor needs of the call (one deadline, a size cap
on the answer, every failure mapped to a closed ``Reason``); how the bytes travel is a
transport's business. ``llm_httptools.HttptoolsTransport`` is the default (llhttp's parser on
our asyncio stream, with a LIFO pool; ``llm_h11.H11Transport`` drives h11 over the same pool);
``HttpxTransport`` wraps an ``httpx.AsyncClient``, for a proxy from the environment or a
client the caller injects. A transport raises httpcore's or httpx's exceptions, ``OSError``,
``AmbiguousFraming`` or ``ConnectionLimitError``; ``LLMClient`` maps them. (httpcore's own
HTTP/1.1 connection in a LIFO pool of ours, the default before llhttp's, was removed on
2026-12-07: it cost about twice the default's CPU per call, ``bench/bench_llm_client.py``.)
"""

from __future__ import annotations

import asyncio
import functools
import ssl
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Protocol

import httpcore
import httpx

from partial_trust.middleware.llm_framing import AmbiguousFraming, ambiguous_framing

#: What a keep-alive connection closed under us looks like (httpcore's exception classes,
#: which the keep-alive transports raise).
STALE = (httpcore.RemoteProtocolError, httpcore.ReadError, httpcore.WriteError)


@dataclass(frozen=True, slots=True)
class LLMResponse:
    """An answer whose body has not been read yet: ``chunks`` streams it."""

    status: int
    content_length: bytes  # as declared (stripped), b"" when absent
    chunks: AsyncIterator[bytes]


class LLMTransport(Protocol):
    """How one POST reaches the LLM. Leaving ``post``'s context (normally, on error or on
    cancellation) releases the connection; one whose body was not read to its end is never
    reused. ``deadline`` is the event-loop time the whole call must end by (the client
    enforces it too; a transport may hand it to its library)."""

    def post(
        self, url: str, body: bytes, headers: Mapping[str, str], deadline: float
    ) -> AbstractAsyncContextManager[LLMResponse]: ...

    async def aclose(self) -> None: ...


class HttpxTransport:
    """An ``httpx.AsyncClient``: one the caller injected (it stays theirs: ``aclose`` leaves
    it open), or one made here that honours the environment's proxy (``trust_env``)."""

    def __init__(self, client: httpx.AsyncClient | None = None) -> None:
        self._client = client
        self._owned = client is None

    @asynccontextmanager
    async def post(
        self, url: str, body: bytes, headers: Mapping[str, str], deadline: float
    ) -> AsyncIterator[LLMResponse]:
        if self._client is None:
            self._client = httpx.AsyncClient(trust_env=True, follow_redirects=False)
        left = max(deadline - asyncio.get_running_loop().time(), 0.001)
        headers = {**headers, "Content-Type": "application/json"}
        async with self._client.stream(
            "POST", url, content=body, headers=headers, timeout=httpx.Timeout(left)
        ) as response:
            if ambiguous_framing(response.headers.raw):
                raise AmbiguousFraming("ambiguous framing headers")
            declared = response.headers.get("content-length", "").strip().encode("latin-1")
            yield LLMResponse(response.status_code, declared, response.aiter_bytes())

    @property
    def client(self) -> httpx.AsyncClient | None:
        """The client in use (None until an owned one is first needed)."""
        return self._client

    async def aclose(self) -> None:
        if self._owned and self._client is not None:
            client, self._client = self._client, None
            await client.aclose()


@functools.cache
def default_ssl_context() -> ssl.SSLContext:
    """httpx's default verification (certifi's CA bundle), loaded once per process: loading
    it costs ~40 ms, which must not land on the first sampled request's deadline."""
    return httpx.create_ssl_context()
