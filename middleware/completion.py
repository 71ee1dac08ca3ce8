"""What an OpenAI-compatible chat completion must look like, and how its failures are named.

Only the path to the content is checked (OpenAI and its imitators add fields freely); the
content must be one JSON object. Every failure is a ``CandidateError`` with a closed
``Reason`` and a fixed detail phrase, never response content (it ends up in logs).
"""

from __future__ import annotations

from typing import Any, Final

import orjson
from pydantic import BaseModel, ConfigDict, ValidationError

from partial_trust.outcome import Reason

CANDIDATE_ERROR_REASONS: Final = frozenset(
    {
        Reason.LLM_TIMEOUT,
        Reason.LLM_HTTP_ERROR,
        Reason.LLM_INVALID_RESPONSE,
        Reason.LLM_UNAVAILABLE,
    }
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


def parse_completion(body: bytes) -> dict[str, Any]:
    """The JSON object in ``choices[0].message.content``, or ``LLM_INVALID_RESPONSE``.

    Decoded by orjson (RFC 8259 strict: no NaN or Infinity, no number that overflows a
    double, no lone surrogate, nesting capped at 1024), ~10x cheaper than the stdlib's
    decoder on a sampled request; ``json`` would read ``1e999`` as infinity."""
    invalid = Reason.LLM_INVALID_RESPONSE
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise CandidateError(invalid, "not utf-8") from None
    try:
        raw = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise CandidateError(invalid, "not json") from None
    try:
        envelope = _Envelope.model_validate(raw, strict=True)
    except ValidationError:
        raise CandidateError(invalid, "not a chat completion") from None
    if not envelope.choices:
        raise CandidateError(invalid, "no choices")
    try:
        content = orjson.loads(envelope.choices[0].message.content)
    except orjson.JSONDecodeError:
        raise CandidateError(invalid, "content not json") from None
    if not isinstance(content, dict):
        raise CandidateError(invalid, "content not an object")
    return content
