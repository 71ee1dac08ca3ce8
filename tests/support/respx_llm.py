"""The LLM endpoint as respx doubles it for the client's unit tests (``test_llm_client*``):
its URL, a request whose text must never show up in an error, and chat completions.

The ``mock`` fixture that installs the double is the conftest's.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

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
