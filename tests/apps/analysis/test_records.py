"""The line model: what is a valid record, and the fast-path regex never says more than it.

The regex (``LINE``) decides most lines in C; the model (``parse``) decides the rest. If the
regex ever matched a line the model refuses, or read a different key from it, a garbage
line could count toward a rate on the fast path only. So: hand-picked hostile values for
every field, and a property test over lines mixing valid and hostile tokens.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from partial_trust.apps.analysis import selftest
from partial_trust.apps.analysis.records import LINE, parse
from partial_trust.middleware.risk_log import record
from partial_trust.outcome import STATUS_REASONS, Outcome

GOOD = selftest.canonical(
    ("2026-11-23T09:00:00.000Z", "accepted_llm", "accepted", 100.0, True, True)
)


def with_fields(tokens: dict[str, str]) -> str:
    """GOOD with some fields' JSON tokens replaced verbatim (so invalid JSON is possible)."""
    obj = json.loads(GOOD)
    parts = [f'"{k}":{tokens.get(k, json.dumps(v, separators=(",", ":")))}' for k, v in obj.items()]
    return "{" + ",".join(parts) + "}"


def with_field(name: str, token: str) -> str:
    return with_fields({name: token})


def judged(line: str) -> bool:
    return parse(line.encode()) is not None


def test_the_writers_lines_match_and_validate_to_the_same_key() -> None:
    for status, reason in STATUS_REASONS:
        o = Outcome("add_shopping_item", status, reason, True, 1e-05, "p", "k" * 32, 12.5, 3.0)
        line = json.dumps(record(o), separators=(",", ":"), ensure_ascii=False).encode()
        m = LINE.fullmatch(line)
        parsed = parse(line)
        assert m is not None and parsed is not None, line
        hour, st_, rs, lat, im, em = parsed[1][:6]
        assert (hour, st_, rs, im, em) == (m[1], m[2], m[3], m[5], m[6])
        assert float(lat) == float(m[4])


@pytest.mark.parametrize(
    ("name", "token"),
    [
        ("timestamp", '"9999-99-99T99:00:00.000Z"'),
        ("timestamp", '"2027-02-29T10:00:00.000Z"'),  # not a leap year
        ("timestamp", '"2026-11-23T24:00:00.000Z"'),
        ("timestamp", '"2026-11-23T09:00:00"'),  # no offset: not RFC 3339
        ("timestamp", '"9999-12-31T23:30:00-01:00"'),  # past year 9999 in UTC
        ("timestamp", '"1969-12-31T23:59:59Z"'),
        ("timestamp", "1732352400"),
        ("latency_ms", "1-2"),
        ("latency_ms", "1e999"),
        ("latency_ms", "-1e308"),
        ("latency_ms", "-0.5"),
        ("latency_ms", "NaN"),
        ("latency_ms", "Infinity"),
        ("latency_ms", "3600000"),  # one hour: the cap is exclusive
        ("latency_ms", "9" * 5000),
        ("latency_ms", "true"),
        ("latency_ms", '"100"'),
        ("baseline_latency_ms", "-1"),
        ("sample_rate", "1.0000001"),
        ("sample_rate", "-0.1"),
        ("confidence", "2"),
        ("confidence", "5e-00"),
        ("items_llm", "-1"),
        ("items_llm", "1000"),
        ("items_llm", "2.5"),
        ("items_llm", "true"),
        ("intent_match", "1"),
        ("intent_match", '"true"'),
        ("entity_key_match", "0"),
        ("sampled", "null"),
        ("status", '"accepted"'),
        ("reason_code", '"llm_timeout"'),  # a real reason, but never with accepted_llm
        ("reason_code", '"accepted\\u0000"'),
        ("schema", '"partial_trust_risk/v2"'),
        ("schema", "null"),
        ("corridor", '"' + "x" * 129 + '"'),
        ("command_key", '"a\\u202eb"'),  # bidi control: not printable
        ("profile_id", "[" * 300 + "]" * 300),
        ("corridor", '{"deep": ' * 100 + "1" + "}" * 100),
    ],
)
def test_a_bad_value_in_any_field_makes_the_line_foreign(name: str, token: str) -> None:
    line = with_field(name, token)
    assert not judged(line), line
    assert LINE.fullmatch(line.encode()) is None


@pytest.mark.parametrize(
    "line",
    [
        "",
        "NOT JSON",
        "\x00\xff" * 40,
        "[]",
        "null",
        '"a string"',
        "{}",
        GOOD[:-1],  # torn
        GOOD[:-1] + ',"extra":1}',  # an unknown field
        GOOD.replace(',"items_llm":2', ""),  # a missing field
        "[" * 100_000,  # deeper than any parser's stack, and longer than MAX_LINE
        "[" * 30_000 + "]" * 30_000,  # deep but short
    ],
)
def test_non_records_are_foreign(line: str) -> None:
    assert not judged(line)


def test_accepted_variants_are_valid() -> None:
    no_schema = GOOD.replace('"schema":"partial_trust_risk/v1",', "")
    assert judged(no_schema)  # the original application's lines had no schema field
    assert judged("\ufeff" + GOOD) and judged(GOOD + "\r")  # BOM, CRLF
    assert judged(json.dumps(json.loads(GOOD)))  # another writer's spacing
    assert judged(with_field("timestamp", '"2028-02-29T10:00:00+02:00"'))  # leap day, offset
    assert judged(with_field("latency_ms", "3599999.99"))
    assert judged(with_field("latency_ms", "12"))  # an int is a number
    leap = parse(with_field("timestamp", '"2028-02-29T01:00:00+02:00"').encode())
    assert leap is not None and leap[1][0] == b"2028-02-28T23"  # hours are UTC


_TOKENS = {
    "timestamp": ['"2026-11-23T09:15:00.000Z"', '"9999-99-99T99:00:00Z"',
                  '"2026-02-29T00:00:00Z"', '"2026-11-23T09:15:00+01:00"',
                  '"2026-11-23T09:15:60Z"', '"1970-01-01T00:00:00Z"'],
    "corridor": ['"add_shopping_item"', "null", '"\\u00e9"', '""', "1"],
    "status": ['"accepted_llm"', '"error"', '"skipped"', '"fallback_deterministic"', '"nope"'],
    "reason_code": ['"accepted"', '"llm_timeout"', '"not_sampled"', '"low_confidence"', '"x"'],
    "sampled": ["true", "false", "null"],
    "sample_rate": ["0.05", "1", "1.0", "1e-05", "1.5", "0", "1.5e-07", "-0", "5e-00", "1E-5"],
    "latency_ms": ["100.0", "null", "0", "1-2", "1e999", "-1e308", "999999.99", "1e3", "01"],
    "intent_match": ["true", "false", "null", "0"],
    "confidence": ["0.9", "null", "1", "0.99999", "1.01", "9.9e-01", "NaN"],
    "items_llm": ["2", "null", "999", "1000", "-0", "00"],
}  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(st.fixed_dictionaries({k: st.sampled_from(v) for k, v in _TOKENS.items()}))
def test_every_line_the_regex_matches_validates_with_the_same_key(tokens: dict[str, str]) -> None:
    line = with_fields(tokens)
    m = LINE.fullmatch(line.encode())
    parsed = parse(line.encode())
    if m is None:
        return
    assert parsed is not None, line
    hour, status, reason, lat, im, em = parsed[1][:6]
    assert (hour, status, reason, im, em) == (m[1], m[2], m[3], m[5], m[6]), line
    assert (lat == b"null") == (m[4] == b"null") and (lat == b"null" or float(lat) == float(m[4]))
