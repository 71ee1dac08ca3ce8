"""Well-kept HTTP libraries as ``LLMTransport``s, for ``bench_llm_client.py`` to measure
against the default one (``HttptoolsTransport``): aiohttp's ``ClientSession`` and httpcore's
public ``AsyncConnectionPool`` (on its own anyio backend, and on ``llm_transport``'s asyncio
backend through httpcore's public ``network_backend`` hook). Each keeps its library's own
pooling, DNS and keep-alive; only the shape of the call is adapted."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import aiohttp
import httpcore

from partial_trust.middleware.llm_seam import LLMResponse


class AiohttpTransport:
    """One ``aiohttp.ClientSession`` (its connector pools and caches DNS for 10 s)."""

    def __init__(self, limit: int = 200) -> None:
        self._limit = limit
        self._session: aiohttp.ClientSession | None = None

    @asynccontextmanager
    async def post(
        self, url: str, body: bytes, headers: Mapping[str, str], deadline: float
    ) -> AsyncIterator[LLMResponse]:
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self._limit)
            self._session = aiohttp.ClientSession(connector=connector)
        headers = {**headers, "Content-Type": "application/json"}
        async with self._session.post(
            url, data=body, headers=headers, allow_redirects=False
        ) as response:
            declared = response.headers.get("Content-Length", "").strip().encode("latin-1")
            yield LLMResponse(response.status, declared, response.content.iter_any())

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


class HttpcorePoolTransport:
    """httpcore's public ``AsyncConnectionPool``."""

    def __init__(self, network_backend: httpcore.AsyncNetworkBackend | None = None) -> None:
        self._pool = httpcore.AsyncConnectionPool(
            max_connections=200, network_backend=network_backend
        )

    @asynccontextmanager
    async def post(
        self, url: str, body: bytes, headers: Mapping[str, str], deadline: float
    ) -> AsyncIterator[LLMResponse]:
        raw: list[tuple[bytes | str, bytes | str]] = [
            (b"Content-Type", b"application/json"),
            *headers.items(),
        ]
        async with self._pool.stream("POST", url, headers=raw, content=body) as response:
            declared = b""
            for key, value in response.headers:
                if key.lower() == b"content-length":
                    declared = value.strip()
            yield LLMResponse(response.status, declared, response.aiter_stream())

    async def aclose(self) -> None:
        await self._pool.aclose()
