"""One chat request for the LLM double, and the calls its tests make through the control API.

Shared by the ``tests/test_llm_sim_*.py`` modules (the ``sim`` fixture in ``tests/conftest.py``
builds its client with ``sim_client``). The request is the DESIGN example command, so a clean
answer can be compared with what the baseline router decides for it.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from partial_trust.apps.llm_sim import Mode
from partial_trust.contracts import CommandContext, CommandDTO
from partial_trust.middleware.candidate import chat_request

LISTS = ["l-1", "l-2"]
COMMAND = CommandDTO(
    command_id="c-1",
    user_id="u-1",
    text="add milk and two eggs to my shopping list",
    capabilities=["start_job"],
    context=CommandContext(default_list_id="l-1", lists=LISTS),
)
REQUEST = chat_request(COMMAND, model="sim-model", temperature=0.0, max_tokens=256)
PATH = "/v1/chat/completions"


def sim_client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sim")


async def force_mode(client: httpx.AsyncClient, mode: Mode, **extra: Any) -> None:
    response = await client.post("/sim/config", json={"force": mode.value, **extra})
    assert response.status_code == 200, response.text


async def answer_content(client: httpx.AsyncClient) -> str:
    response = await client.post(PATH, json=REQUEST)
    assert response.status_code == 200
    content: str = response.json()["choices"][0]["message"]["content"]
    return content


async def answer_candidate(client: httpx.AsyncClient) -> dict[str, Any]:
    candidate: dict[str, Any] = json.loads(await answer_content(client))
    return candidate
