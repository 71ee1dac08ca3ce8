"""The chat-completion envelope and the candidate errors, without any HTTP."""

from __future__ import annotations

import json
from typing import Any

import pytest

from partial_trust.middleware.completion import CandidateError, parse_completion
from partial_trust.outcome import Reason

CANDIDATE: dict[str, Any] = {"intent": "add_shopping_item", "job": {"job_type": "x"}}


def completion(content: Any, **extra: Any) -> bytes:
    choice = {"index": 0, "message": {"role": "assistant", "content": content}}
    return json.dumps({"id": "x", "choices": [choice], **extra}).encode()


def test_candidate_error_only_carries_llm_reasons() -> None:
    with pytest.raises(ValueError):
        CandidateError(Reason.CIRCUIT_OPEN)
    assert str(CandidateError(Reason.LLM_HTTP_ERROR, "status 503")) == "llm_http_error: status 503"


def test_parse_completion_accepts_extra_envelope_fields() -> None:
    body = completion(json.dumps(CANDIDATE), system_fingerprint="fp", usage={"total_tokens": 1})
    assert parse_completion(body) == CANDIDATE


def test_only_the_first_choice_counts() -> None:
    body = json.dumps(
        {"choices": [{"message": {"content": json.dumps(CANDIDATE)}}, {"message": {}}]}
    ).encode()
    with pytest.raises(CandidateError) as info:  # every choice must be well-formed
        parse_completion(body)
    assert info.value.detail == "not a chat completion"
    body = json.dumps(
        {
            "choices": [
                {"message": {"content": json.dumps(CANDIDATE)}},
                {"message": {"content": "x"}},
            ]
        }
    ).encode()
    assert parse_completion(body) == CANDIDATE


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b"\xff", "not utf-8"),
        (b"SECRET", "not json"),
        (completion('{"confidence": Infinity}'), "content not json"),
        (completion("[1]"), "content not an object"),
        (json.dumps({"choices": "SECRET"}).encode(), "not a chat completion"),
    ],
)
def test_failures_are_named_without_content(body: bytes, detail: str) -> None:
    with pytest.raises(CandidateError) as info:
        parse_completion(body)
    assert (info.value.reason, info.value.detail) == (Reason.LLM_INVALID_RESPONSE, detail)
    assert "SECRET" not in str(info.value)
