"""Structured output: the candidate's JSON schema in ``response_format``, per profile."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench.corpus.build import TRAIN
from bench.corpus_eval import is_right, load_corpus
from partial_trust.contracts import CommandDTO
from partial_trust.middleware.candidate import (
    CandidateItem,
    CandidateJob,
    CandidatePayload,
    ShoppingCandidate,
    chat_request,
)
from partial_trust.middleware.candidate_examples import EXAMPLES
from partial_trust.middleware.candidate_schema import candidate_schema, response_format
from partial_trust.middleware.corridor import ShoppingCorridor
from partial_trust.middleware.policy import PolicyError, PolicyRegistry, Profile

C = "add_shopping_item"
OPENAI_KEYWORDS = {
    "type", "properties", "required", "additionalProperties", "enum", "items", "minItems",
    "maxItems", "minimum", "maximum",
}  # fmt: skip


def _command(lists: list[str], default: str | None = "l-1") -> CommandDTO:
    return CommandDTO.model_validate(
        {
            "command_id": "c-1",
            "user_id": "u-1",
            "text": "add milk to my list",
            "capabilities": ["start_job"],
            "context": {"default_list_id": default, "lists": lists},
        }
    )


def _objects(schema: dict[str, Any]) -> list[dict[str, Any]]:
    found = [schema] if schema.get("type") == "object" else []
    for value in schema.get("properties", {}).values():
        found += _objects(value)
    if "items" in schema:
        found += _objects(schema["items"])
    return found


def _keywords(schema: object) -> set[str]:
    if not isinstance(schema, dict):
        return set()
    keys = set(schema)
    for key, value in schema.items():
        if key == "properties":
            for sub in value.values():
                keys |= _keywords(sub)
        elif key == "items":
            keys |= _keywords(value)
    return keys


def test_the_schema_has_exactly_the_candidates_fields() -> None:
    schema = candidate_schema(C)
    assert set(schema["properties"]) == set(ShoppingCandidate.model_fields)
    job = schema["properties"]["job"]
    assert set(job["properties"]) == set(CandidateJob.model_fields)
    payload = job["properties"]["payload"]
    assert set(payload["properties"]) == set(CandidatePayload.model_fields)
    item = payload["properties"]["items"]["items"]
    assert set(item["properties"]) == set(CandidateItem.model_fields)
    assert schema["properties"]["intent"]["enum"] == [C]
    assert job["properties"]["job_type"]["enum"] == [C]
    for obj in _objects(schema):  # OpenAI's strict mode: closed objects, all required
        assert obj["additionalProperties"] is False
        assert obj["required"] == list(obj["properties"])


def test_json_schema_form_is_openais_and_the_same_for_every_command() -> None:
    a = response_format("json_schema", C, _command(["l-1", "l-2"]))
    b = response_format("json_schema", C, _command(["x-9"], default=None))
    assert a == b  # a hosted API processes a new schema once: never one per user
    assert a["type"] == "json_schema" and a["json_schema"]["strict"] is True
    assert a["json_schema"]["name"] == "shopping_candidate"
    assert _keywords(a["json_schema"]["schema"]) <= OPENAI_KEYWORDS


def test_json_object_schema_form_bounds_lists_and_names_per_command() -> None:
    rf = response_format("json_object_schema", C, _command(["l-2", "l-1", "l-3"]))
    assert rf["type"] == "json_object"
    payload = rf["schema"]["properties"]["job"]["properties"]["payload"]["properties"]
    assert payload["list_id"]["enum"] == ["l-1", "l-2", "l-3"]  # the default first, once
    assert payload["items"]["items"]["properties"]["name"]["maxLength"] == 64
    assert payload["items"]["maxItems"] == 20
    no_lists = response_format("json_object_schema", C, _command([], default=None))
    assert (
        "enum"
        not in no_lists["schema"]["properties"]["job"]["properties"]["payload"]["properties"][
            "list_id"
        ]
    )


def test_plain_json_object_and_unknown_modes() -> None:
    assert response_format("json_object", C, _command(["l-1"])) == {"type": "json_object"}
    with pytest.raises(ValueError, match="unknown response_format"):
        response_format("grammar", C, _command(["l-1"]))


def test_profiles_choose_the_form_and_refuse_an_unknown_one(tmp_path: Path) -> None:
    profile = Profile(
        model="m", temperature=0.0, max_tokens=8, confidence_threshold=0.5, timeout_cap_ms=9
    )
    assert profile.response_format == "json_schema" and profile.few_shot is False
    corridor = ShoppingCorridor()
    command = _command(["l-1", "l-2"])
    assert corridor.build_request(command, profile)["response_format"]["type"] == "json_schema"
    local = profile.model_copy(update={"response_format": "json_object_schema", "few_shot": True})
    request = corridor.build_request(command, local)
    assert request["response_format"]["type"] == "json_object"
    assert "schema" in request["response_format"]
    bad = tmp_path / "policy.yaml"
    bad.write_text(
        "version: 1\nenabled: true\ntasks:\n  t:\n    default_profile: p\n    profiles:\n"
        "      p: {model: m, temperature: 0.0, max_tokens: 8, confidence_threshold: 0.5,"
        " timeout_cap_ms: 9, response_format: grammar}\n"
    )
    with pytest.raises(PolicyError, match=r"response_format"):
        PolicyRegistry.load(bad)


def test_the_shipped_local_profile_fits_a_cpu_model() -> None:
    resolved = PolicyRegistry.load().resolve("partial_trust_shopping", "smollm2-local")
    assert resolved is not None
    profile = resolved.profile
    assert profile.response_format == "json_object_schema" and profile.few_shot
    assert profile.timeout_cap_ms >= 5_000  # seconds on 2 CPU cores, not the hosted 500 ms


def test_few_shot_examples_come_before_the_command_and_only_from_training() -> None:
    command = _command(["l-1", "l-2"])
    plain = chat_request(command, model="m", temperature=0.0, max_tokens=8)
    shot = chat_request(command, model="m", temperature=0.0, max_tokens=8, few_shot=True)
    assert len(plain["messages"]) == 2
    assert len(shot["messages"]) == 2 + 2 * len(EXAMPLES)
    assert shot["messages"][0] == plain["messages"][0]
    assert shot["messages"][-1] == plain["messages"][-1]  # llm-sim reads the last user turn
    roles = [m["role"] for m in shot["messages"][1:-1]]
    assert roles == ["user", "assistant"] * len(EXAMPLES)
    corpus = {e["id"]: e for e in load_corpus()}
    for (corpus_id, text, default, lists, *_), answer in zip(
        EXAMPLES, shot["messages"][2:-1:2], strict=True
    ):
        entry = corpus[corpus_id]
        assert entry["split"] == TRAIN, corpus_id  # never the held-back half
        assert entry["command"]["text"] == text
        assert entry["command"]["context"] == {"default_list_id": default, "lists": list(lists)}
        candidate = json.loads(answer["content"])
        ShoppingCandidate.model_validate(candidate)
        assert is_right(entry["expected"], candidate), corpus_id
