"""The risk-log line as one strict pydantic model: ``records``' validator with pydantic.

Split from ``records`` so that module needs only the standard library: without pydantic
(a bare ``python3`` running the runbook's script from a checkout) ``records.validate_plain``
applies the same rules, and a test holds the two to the same answers.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, ValidationError, model_validator

from partial_trust.apps.analysis.limits import LATENCY_CAP_MS, MAX_ITEMS
from partial_trust.apps.analysis.records import REASONS, SCHEMA, Fields, _ident, _instant

Instant = Annotated[datetime, PlainValidator(_instant)]
Ident = Annotated[str | None, PlainValidator(_ident)]
Unit = Annotated[float, Field(ge=0, le=1)]
Latency = Annotated[float, Field(ge=0, lt=LATENCY_CAP_MS)]
Items = Annotated[int, Field(ge=0, le=MAX_ITEMS)]


class RiskLine(BaseModel):
    """One risk-log line, as ``partial_trust.middleware.risk_record.record`` writes it."""

    model_config = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False, frozen=True)

    timestamp: Instant
    schema_: Literal["partial_trust_risk/v1"] = Field(SCHEMA, alias="schema")
    corridor: Ident
    command_key: Ident
    status: str
    reason_code: str
    sampled: bool
    sample_rate: Unit | None
    profile_id: Ident
    latency_ms: Latency | None
    baseline_latency_ms: Latency | None
    intent_match: bool | None
    entity_key_match: bool | None
    confidence: Unit | None
    items_baseline: Items | None
    items_llm: Items | None
    mode: Literal["shadow", "canary"] = "canary"  # absent: a line from before modes
    agreement: bool | None = None
    mode_capped: bool = False  # absent: a line from before risk-class caps

    @model_validator(mode="after")
    def _known_outcome(self) -> RiskLine:
        if self.reason_code not in REASONS.get(self.status, ()):
            raise ValueError("unknown status or a reason that status never has")
        return self


class LegacyLine(BaseModel):
    """A line of the original application's risk log: no ``schema``, and only the runbook's
    fields are sure to be there (``records.LEGACY_REQUIRED``). Every other DESIGN field may be
    missing (read as null); types and ranges are as strict as ``RiskLine``'s, and an unknown
    field, or a ``schema`` of any value, still makes the line foreign: a line carrying a schema
    we do not know is another writer's, not an old one of ours.
    """

    model_config = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False, frozen=True)

    timestamp: Instant
    status: str
    reason_code: str
    sampled: bool | None = None
    latency_ms: Latency | None = None
    intent_match: bool | None = None
    entity_key_match: bool | None = None
    corridor: Ident = None
    command_key: Ident = None
    sample_rate: Unit | None = None
    profile_id: Ident = None
    baseline_latency_ms: Latency | None = None
    confidence: Unit | None = None
    items_baseline: Items | None = None
    items_llm: Items | None = None
    mode: Literal["shadow", "canary"] = "canary"
    agreement: bool | None = None
    mode_capped: bool = False

    @model_validator(mode="after")
    def _known_outcome(self) -> LegacyLine:
        if self.reason_code not in REASONS.get(self.status, ()):
            raise ValueError("unknown status or a reason that status never has")
        return self


_ERRORS = (ValidationError, ValueError, OverflowError)


def validate_model(data: bytes) -> Fields | None:
    """The line's fields when it validates (``data`` without BOM), else None: ours first
    (the common shape), then the original application's."""
    r: RiskLine | LegacyLine
    try:
        r = RiskLine.model_validate_json(data)
        legacy = "schema_" not in r.model_fields_set
    except _ERRORS:
        try:
            r = LegacyLine.model_validate_json(data)
        except _ERRORS:
            return None
        legacy = True
    return (
        r.timestamp,
        r.status,
        r.reason_code,
        r.latency_ms,
        r.intent_match,
        r.entity_key_match,
        legacy,
        r.mode,
        r.agreement,
    )
