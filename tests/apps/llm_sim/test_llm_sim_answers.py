"""What the LLM double answers: the clean candidate, a bad request, and every content fault.

The clean answer must be the baseline router's decision in candidate form, so a corridor fed by
the double routes like the baseline; each content fault (malformed, wrong intent, extra fields,
foreign list, low or no confidence, injection) must break the candidate in exactly its own way,
because each is what one of the corridor's checks exists to catch.
"""

from __future__ import annotations

import json

import httpx
import pytest
from pydantic import ValidationError

from partial_trust.apps.llm_sim import Mode
from partial_trust.apps.llm_sim.answers import INJECTIONS, WRONG_INTENTS
from partial_trust.middleware.baseline import route
from partial_trust.middleware.candidate import ShoppingCandidate, chat_request
from tests.support.llm_sim import (
    COMMAND,
    LISTS,
    PATH,
    REQUEST,
    answer_candidate,
    answer_content,
    force_mode,
)

# --- the clean answer ------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("path", ["/v1/chat/completions", "/chat/completions"])
async def test_clean_answer_is_the_baseline_decision_as_a_candidate(
    sim: httpx.AsyncClient, path: str
) -> None:
    response = await sim.post(path, json=REQUEST)
    assert response.status_code == 200
    assert response.headers["x-sim-fault"] == "none"
    body = response.json()
    assert body["object"] == "chat.completion"
    assert body["model"] == "sim-model"
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["choices"][0]["message"]["role"] == "assistant"
    assert body["usage"]["total_tokens"] > 0
    candidate = ShoppingCandidate.model_validate_json(body["choices"][0]["message"]["content"])
    decision = route(COMMAND)
    assert decision.job is not None
    assert candidate.intent == decision.intent == "add_shopping_item"
    assert candidate.job.job_type == decision.job.job_type
    assert candidate.job.payload.model_dump() == decision.job.payload
    assert candidate.confidence == 0.9


@pytest.mark.anyio
async def test_a_command_outside_the_corridor_keeps_the_candidate_shape(
    sim: httpx.AsyncClient,
) -> None:
    timer = COMMAND.model_copy(update={"text": "set a timer for 5 minutes"})
    request = chat_request(timer, model="m", temperature=0.0, max_tokens=64)
    response = await sim.post(PATH, json=request)
    content = response.json()["choices"][0]["message"]["content"]
    candidate = ShoppingCandidate.model_validate_json(content)
    assert candidate.intent == route(timer).intent == "set_timer"
    assert candidate.job.payload.items == []


@pytest.mark.anyio
async def test_bad_request_is_400_and_counted(sim: httpx.AsyncClient) -> None:
    response = await sim.post(PATH, json={"model": "m", "messages": [{"role": "user"}]})
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"
    stats = (await sim.get("/sim/stats")).json()
    assert (stats["total"], stats["bad_requests"], sum(stats["by_mode"].values())) == (1, 1, 0)


# --- content faults --------------------------------------------------------------------------


@pytest.mark.anyio
async def test_malformed_content_never_parses(sim: httpx.AsyncClient) -> None:
    await force_mode(sim, Mode.MALFORMED)
    seen = set()
    for _ in range(15):
        content = await answer_content(sim)
        seen.add(content[:3])
        with pytest.raises(ValueError):
            json.loads(content)
    assert len(seen) == 3  # truncated, prose and fenced all occur


@pytest.mark.anyio
async def test_wrong_intent(sim: httpx.AsyncClient) -> None:
    await force_mode(sim, Mode.WRONG_INTENT)
    candidate = await answer_candidate(sim)
    assert candidate["intent"] != route(COMMAND).intent
    assert candidate["intent"] in WRONG_INTENTS


@pytest.mark.anyio
async def test_extra_fields_fail_the_strict_schema(sim: httpx.AsyncClient) -> None:
    await force_mode(sim, Mode.EXTRA_FIELDS)
    candidate = await answer_candidate(sim)
    assert set(candidate) - {"intent", "job", "confidence"} == {"reasoning"}
    with pytest.raises(ValidationError):
        ShoppingCandidate.model_validate(candidate)


@pytest.mark.anyio
async def test_foreign_list(sim: httpx.AsyncClient) -> None:
    await force_mode(sim, Mode.FOREIGN_LIST)
    candidate = await answer_candidate(sim)
    assert candidate["job"]["payload"]["list_id"] not in LISTS


@pytest.mark.anyio
async def test_low_confidence_follows_the_config(sim: httpx.AsyncClient) -> None:
    await force_mode(sim, Mode.LOW_CONFIDENCE)
    assert (await answer_candidate(sim))["confidence"] == 0.2
    await sim.post("/sim/config", json={"low_confidence": 0.35})
    assert (await answer_candidate(sim))["confidence"] == 0.35


@pytest.mark.anyio
async def test_no_confidence(sim: httpx.AsyncClient) -> None:
    await force_mode(sim, Mode.NO_CONFIDENCE)
    candidate = await answer_candidate(sim)
    assert "confidence" not in candidate
    ShoppingCandidate.model_validate(candidate)  # still schema-valid: confidence is optional


@pytest.mark.anyio
async def test_injection_in_item_names(sim: httpx.AsyncClient) -> None:
    await force_mode(sim, Mode.INJECTION)
    names = {(await answer_candidate(sim))["job"]["payload"]["items"][0]["name"] for _ in range(20)}
    assert names <= set(INJECTIONS) and len(names) > 1
    assert any(any(ord(ch) < 32 for ch in name) for name in names)
