"""One risk-log line (``partial_trust.middleware.risk_record``): the DESIGN's fields, their types,
nothing else.

The privacy boundary of the file: whatever lands in an ``Outcome``, only short identifiers,
finite numbers and flags come out, in the order the analyzer reads them.
"""

from __future__ import annotations

import json
import math
import re
import time
from datetime import datetime

from hypothesis import example, given
from hypothesis import strategies as st

from partial_trust.middleware.risk_record import FIELDS, SCHEMA, line, record, timestamp
from partial_trust.outcome import STATUS_REASONS, Reason, Status
from tests.test_risk_log import EXPECTED_FIELDS, outcome

RFC3339_MS_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
NUM = (int, float)
TYPES: dict[str, tuple[type, ...]] = {
    "timestamp": (str,),
    "schema": (str,),
    "corridor": (str,),
    "command_key": (str, type(None)),
    "status": (str,),
    "reason_code": (str,),
    "sampled": (bool,),
    "sample_rate": (*NUM, type(None)),
    "profile_id": (str, type(None)),
    "latency_ms": (*NUM, type(None)),
    "baseline_latency_ms": (*NUM, type(None)),
    "intent_match": (bool, type(None)),
    "entity_key_match": (bool, type(None)),
    "confidence": (*NUM, type(None)),
    "items_baseline": (int, type(None)),
    "items_llm": (int, type(None)),
    "mode": (str,),
    "agreement": (bool, type(None)),
    "mode_capped": (bool,),  # a closed enum: true or false, never null
}


def test_record_has_exactly_the_design_fields_in_order() -> None:
    assert tuple(record(outcome())) == EXPECTED_FIELDS == FIELDS
    rec = record(outcome())
    assert rec["schema"] == SCHEMA
    assert rec["status"] == "fallback_deterministic" and rec["reason_code"] == "intent_mismatch"
    assert rec["latency_ms"] == 123.46 and rec["baseline_latency_ms"] == 1.23
    assert rec["confidence"] == 0.9123 and rec["items_llm"] == 3
    assert type(rec["status"]) is str  # the enum's value, not the enum


def test_timestamp_is_rfc3339_utc_with_milliseconds() -> None:
    for ts in (1_700_000_000.1234, 0.0, 1_700_000_000.9996, time.time()):
        text = record(outcome(timestamp=ts))["timestamp"]
        assert isinstance(text, str) and RFC3339_MS_Z.match(text), text
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        offset = parsed.utcoffset()
        assert offset is not None and offset.total_seconds() == 0
        assert abs(parsed.timestamp() - ts) <= 0.0005 + 1e-6
    assert record(outcome(timestamp=1_700_000_000.1234))["timestamp"] == "2023-11-14T22:13:20.123Z"


odd_floats = st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True), st.booleans())
odd_text = st.one_of(st.none(), st.text(max_size=300))


@given(
    pair=st.sampled_from(STATUS_REASONS),
    sampled=st.booleans(),
    rate=odd_floats,
    text=odd_text,
    key=odd_text,
    latency=odd_floats,
    confidence=odd_floats,
    match=st.one_of(st.none(), st.booleans(), st.integers()),
    items=st.one_of(st.none(), st.integers(), st.booleans(), st.floats()),
    capped=st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=10)),
)
def test_record_contains_only_listed_keys_and_types(
    pair: tuple[Status, Reason],
    sampled: bool,
    rate: object,
    text: object,
    key: object,
    latency: object,
    confidence: object,
    match: object,
    items: object,
    capped: object,
) -> None:
    """Whatever lands in an Outcome, the line holds only the listed keys with bounded types."""
    o = outcome(
        status=pair[0], reason=pair[1], sampled=sampled, sample_rate=rate, profile_id=text,
        command_key=key, latency_ms=latency, baseline_latency_ms=latency, confidence=confidence,
        intent_match=match, entity_key_match=match, items_baseline=items, items_llm=items,
        mode_capped=capped,
    )  # fmt: skip
    rec = record(o)
    assert tuple(rec) == EXPECTED_FIELDS
    for name, value in rec.items():
        assert isinstance(value, TYPES[name]), (name, value)
        if isinstance(value, float):
            assert math.isfinite(value)
        if isinstance(value, str):
            assert len(value) <= 128 and value.isprintable()
    assert rec["status"] == pair[0].value and rec["reason_code"] == pair[1].value
    json.dumps(rec, allow_nan=False)  # strict JSON: no NaN/Infinity tokens
    assert rec["mode_capped"] is (capped is True)  # only a real True reads as capped


def test_free_text_never_reaches_the_record() -> None:
    sentence = "add milk and two eggs to my shopping list, then call Alice at +1 555 0100 " * 3
    rec = record(outcome(profile_id=sentence, command_key="line\nbreak"))
    assert sentence not in json.dumps(rec) and "Alice" not in json.dumps(rec)
    assert rec["profile_id"] == "<invalid>" and rec["command_key"] == "<invalid>"


# -- the shortcuts equal the straightforward code they replaced (copied verbatim) ----------


def _timestamp_oracle(epoch: float) -> str:
    ms = round(epoch * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}Z"


@given(st.lists(st.floats(min_value=0, max_value=4_102_444_800), min_size=1, max_size=20))
@example([1_700_000_000.9995, 1_700_000_000.9994, 1_700_000_001.0])  # rounding into the next second
@example([1_700_000_000.5, 1_700_000_003.5, 1_700_000_000.25])  # the clock going back
def test_timestamp_cached_per_second_equals_formatting_each_time(epochs: list[float]) -> None:
    # In any order: the cache holds one second and must never serve it for another.
    assert [timestamp(e) for e in epochs] == [_timestamp_oracle(e) for e in epochs]


@given(
    pair=st.sampled_from(STATUS_REASONS),
    text=odd_text,
    latency=odd_floats,
    items=st.one_of(st.none(), st.integers(), st.booleans()),
)
@example(pair=STATUS_REASONS[0], text="ünïcødé ✓", latency=1.5, items=2)
def test_line_equals_json_dumps_of_the_record(
    pair: tuple[Status, Reason], text: object, latency: object, items: object
) -> None:
    o = outcome(
        status=pair[0], reason=pair[1], profile_id=text, command_key=text, latency_ms=latency,
        confidence=latency, items_baseline=items, items_llm=items,
    )  # fmt: skip
    expected = json.dumps(record(o), ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    assert line(o) == expected.encode("utf-8") + b"\n"
