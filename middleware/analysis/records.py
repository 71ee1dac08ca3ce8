"""What a valid risk-log line is: one strict pydantic model, and one regex that implies it.

A line that does not validate is *foreign*: counted, never part of a rate. Valid means the
DESIGN's fields and nothing else, each of its type and in range: a known status with one of
that status' reasons, an RFC 3339 timestamp with an offset that is a real instant (no
``9999-99-99T99``), finite numbers (``latency_ms`` >= 0 and below ``LATENCY_CAP_MS``,
``sample_rate`` and ``confidence`` in [0, 1]), small non-negative item counts, booleans or
null for the match fields, short printable identifiers. ``schema`` must be ours or absent:
the original application wrote the same fields without it.

Speed: validating with pydantic costs a few µs a line; the analyzer's budget is ~1 µs. So
``LINE`` matches the writer's exact shape in C, and it is built so that every line it
matches also validates and yields the same key (it only accepts a subset: ASCII identifiers,
plain decimals, ``Z`` times, no 29 February). Anything else takes the model, so odd input
changes speed, never the answer; ``tests/analysis/test_records.py`` checks the implication.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Annotated, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, ValidationError, model_validator

from middleware.analysis.limits import LATENCY_CAP_MS, MAX_IDENT, MAX_ITEMS, MAX_LINE
from middleware.outcome import STATUS_REASONS

SCHEMA: Final = "partial_trust_risk/v1"
#: status -> its reasons, from the one source of truth (``middleware.outcome``).
REASONS: Final[dict[str, frozenset[str]]] = {
    s.value: frozenset(r.value for st, r in STATUS_REASONS if st == s)
    for s in dict.fromkeys(st for st, _ in STATUS_REASONS)
}
_TIME: Final = re.compile(
    r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,6})?(?:Z|[+-]\d\d:\d\d)", re.ASCII
)
_BOM: Final = b"\xef\xbb\xbf"


def _instant(value: object) -> datetime:
    """RFC 3339 with an offset (the writer's form) -> aware UTC datetime, from 1970 on."""
    if not isinstance(value, str) or not _TIME.fullmatch(value):
        raise ValueError("not an RFC 3339 timestamp with an offset")
    ts = datetime.fromisoformat(value).astimezone(UTC)  # ValueError/OverflowError: invalid
    if ts.year < 1970:
        raise ValueError("timestamp before 1970")
    return ts


def _ident(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > MAX_IDENT or not value.isprintable():
        raise ValueError("not a short printable identifier")
    return value


Instant = Annotated[datetime, PlainValidator(_instant)]
Ident = Annotated[str | None, PlainValidator(_ident)]
Unit = Annotated[float, Field(ge=0, le=1)]
Latency = Annotated[float, Field(ge=0, lt=LATENCY_CAP_MS)]
Items = Annotated[int, Field(ge=0, le=MAX_ITEMS)]


class RiskLine(BaseModel):
    """One risk-log line, as ``middleware.risk_record.record`` writes it."""

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

    @model_validator(mode="after")
    def _known_outcome(self) -> RiskLine:
        if self.reason_code not in REASONS.get(self.status, ()):
            raise ValueError("unknown status or a reason that status never has")
        return self


#: (UTC hour, status, reason, latency token, intent, entity): what a line contributes.
Rec = tuple[bytes, bytes, bytes, bytes, bytes, bytes]
#: The same for a line inside a time window, plus its instant.
TimedRec = tuple[datetime, Rec]


def parse(line: bytes) -> TimedRec | None:
    """The contribution of one line (no newline), or None when it is not a valid record."""
    parsed = parse_line(line)
    return None if parsed is None else parsed[0]


def parse_line(line: bytes) -> tuple[TimedRec, bool] | None:
    """``parse``, plus whether the record is *legacy* (no ``schema``: see ``LegacyLine``)."""
    if len(line) > MAX_LINE:
        return None
    r = _validate(line.removeprefix(_BOM))
    if r is None:
        return None
    lat = b"null" if r.latency_ms is None else repr(r.latency_ms).encode()
    rec = (
        r.timestamp.strftime("%Y-%m-%dT%H").encode(),
        r.status.encode(),
        r.reason_code.encode(),
        lat,
        _flag(r.intent_match),
        _flag(r.entity_key_match),
    )
    return (r.timestamp, rec), isinstance(r, LegacyLine) or "schema_" not in r.model_fields_set


# -- legacy lines: what the original application wrote -------------------------------------
class LegacyLine(BaseModel):
    """A line of the original application's risk log: no ``schema``, and only the runbook's
    fields are sure to be there (the runbook reads ``timestamp``, ``status`` and
    ``reason_code``; the analyzer's figures need ``latency_ms``, ``intent_match`` and
    ``entity_key_match``). Every other DESIGN field may be missing (read as null); types and
    ranges are as strict as ``RiskLine``'s, and an unknown field, or a ``schema`` of any
    value, still makes the line foreign: a line carrying a schema we do not know is another
    writer's, not an old one of ours.
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

    @model_validator(mode="after")
    def _known_outcome(self) -> LegacyLine:
        if self.reason_code not in REASONS.get(self.status, ()):
            raise ValueError("unknown status or a reason that status never has")
        return self


_ERRORS = (ValidationError, ValueError, OverflowError)


def _validate(text: bytes) -> RiskLine | LegacyLine | None:
    """Ours first (the common shape), then the original application's."""
    try:
        return RiskLine.model_validate_json(text)
    except _ERRORS:
        pass
    try:
        return LegacyLine.model_validate_json(text)
    except _ERRORS:
        return None


def _flag(value: bool | None) -> bytes:
    return b"null" if value is None else b"true" if value else b"false"


# -- the fast path: a regex every match of which validates (see the module docstring) -----
def _alt(words: Iterable[str]) -> bytes:
    return b"|".join(re.escape(w.encode()) for w in sorted(words))


_DAY = (  # month-day pairs that exist in every year; 02-29 takes the model
    rb"(?:(?:0[13578]|1[02])-(?:0[1-9]|[12]\d|3[01])"
    rb"|(?:0[469]|11)-(?:0[1-9]|[12]\d|30)|02-(?:0[1-9]|1\d|2[0-8]))"
)
_STAMP = (
    rb"((?:19[7-9]\d|[2-9]\d{3})-" + _DAY + rb"T(?:[01]\d|2[0-3])):[0-5]\d:[0-5]\d(?:\.\d{1,6}+)?+Z"
)
_ID = rb'(?:null|"[\x20\x21\x23-\x5b\x5d-\x7e]{0,%d}+")' % MAX_IDENT
_UNIT = (  # [0, 1]: 0.x, 1.0, or d.ddde-NN as Python writes small floats (1e-05)
    rb"(?:null|0(?:\.\d{1,17}+)?+|[1-9](?:\.\d{1,17}+)?+e-(?:0[1-9]|[1-9]\d{1,2}+)|1(?:\.0{1,17}+)?+)"
)
_MS = rb"(?:null|(?:0|[1-9]\d{0,5}+)(?:\.\d{1,17}+)?+)"  # < 1e6 ms, below LATENCY_CAP_MS
_ITEMS = rb"(?:null|0|[1-9]\d{0,2})"  # <= 999 = MAX_ITEMS
_PAIRS = b"|".join(
    re.escape(s.encode()) + rb'","reason_code":"(?:' + _alt(rs) + rb')"'
    for s, rs in sorted(REASONS.items())
)
_BOOL3 = rb"(true|false|null)"
#: One canonical line. Groups: hour, status, reason_code, latency_ms, intent, entity.
LINE: Final = re.compile(
    rb'^\{"timestamp":"' + _STAMP + rb'","schema":"partial_trust_risk/v1",'
    rb'"corridor":' + _ID + rb',"command_key":' + _ID + rb","
    rb'"status":"(?=(?:' + _PAIRS + rb"))(" + _alt(REASONS) + rb')","reason_code":"([a-z_]{1,64})",'
    rb'"sampled":(?:true|false),"sample_rate":' + _UNIT + rb',"profile_id":' + _ID + rb","
    rb'"latency_ms":(' + _MS + rb'),"baseline_latency_ms":' + _MS + rb","
    rb'"intent_match":' + _BOOL3 + rb',"entity_key_match":' + _BOOL3 + rb","
    rb'"confidence":' + _UNIT + rb',"items_baseline":' + _ITEMS + rb","
    rb'"items_llm":' + _ITEMS + rb"\}$",
    re.MULTILINE,
)
assert math.isfinite(LATENCY_CAP_MS) and LATENCY_CAP_MS > 1e6  # _MS stays below the cap
