"""The LLM endpoint as respx doubles it for the client's unit tests (``test_llm_client*``):
its URL, a request whose text must never show up in an error, and chat completions.

The ``mock`` fixture that installs the double is the conftest's.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx

from partial_trust.middleware.llm_client import LLMClient

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


@asynccontextmanager
async def respx_client(base_url: str = BASE, **kwargs: Any) -> AsyncIterator[LLMClient]:
    """An ``LLMClient`` whose calls respx can see: respx patches httpx/httpcore, which the
    default transport (``llm_httptools``) does not use, so the unit tests inject an
    ``httpx.AsyncClient`` (``HttpxTransport``). The default transport is tested on real
    sockets instead (``test_llm_transport*``, ``test_llm_h11``, ``test_llm_pool*``)."""
    async with httpx.AsyncClient() as http, LLMClient(base_url, client=http, **kwargs) as client:
        yield client
