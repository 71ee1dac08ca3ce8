"""The analyzer's two validators give the same answer on every line.

``records.validate_plain`` (standard library, for a bare ``python3`` running the runbook's
script) and ``records_model.validate_model`` (pydantic) state the same rules twice. If they
ever disagreed, the same log would get a different verdict on a bare host than from the
installed ``partial-trust gate``. Checked on the writer's own lines, a hand-picked token per
field (valid, edge and hostile), whole hostile lines, and random mixes of the tokens.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from partial_trust.apps.analysis import records, selftest
from partial_trust.apps.analysis.records import Fields, validate_plain
from partial_trust.apps.analysis.records_model import validate_model
from partial_trust.middleware.risk_log import record
from partial_trust.outcome import STATUS_REASONS, Outcome

GOOD = selftest.canonical(
    ("2026-11-23T09:00:00.000Z", "accepted_llm", "accepted", 100.0, True, True)
)
_OBJ = json.loads(GOOD)


def with_fields(tokens: dict[str, str]) -> bytes:
    """GOOD with some fields' JSON tokens replaced verbatim (invalid JSON is possible)."""
    parts = [
        f'"{k}":{tokens.get(k, json.dumps(v, separators=(",", ":")))}' for k, v in _OBJ.items()
    ]
    return ("{" + ",".join(parts) + "}").encode("utf-8", "surrogatepass")


_ANY = [
    "null",
    "true",
    "false",
    "0",
    "-0",
    "1",
    "[]",
    "{}",
    '""',
    '"x"',
    "NaN",
    "-Infinity",
    "1e999",
    "[" * 300 + "]" * 300,
    '{"a": ' * 50 + "1" + "}" * 50,
]
_TOKENS: dict[str, list[str]] = {
    "timestamp": ['"2026-11-23T09:15:00.000Z"', '"2026-11-23T09:15:00+01:00"',
                  '"2028-02-29T10:00:00-02:30"', '"2027-02-29T10:00:00Z"', '"9999-99-99T99:00:00Z"',
                  '"9999-12-31T23:30:00-01:00"', '"1969-12-31T23:59:59Z"', '"1970-01-01T00:00:00Z"',
                  '"2026-11-23T09:15:60Z"', '"2026-11-23 09:15:00Z"', '"2026-11-23T09:15:00"',
                  '"2026-11-23T09:15:00.1234567Z"', '"2026-11-23T09:15:00z"', "1732352400",
                  '"\\u0032026-11-23T09:15:00Z"', '"２026-11-23T09:15:00Z"'],
    "schema": ['"partial_trust_risk/v1"', '"partial_trust_risk/v2"', '"PARTIAL_TRUST_RISK/V1"'],
    "corridor": ['"add_shopping_item"', '"\\u00e9"', '"a\\u202eb"', '"\\ud800"', '"\\u0000"',
                 '"' + "x" * 128 + '"', '"' + "x" * 129 + '"', '"tab\\t"', '"é"'],
    "command_key": ['"0f3a"', '"\\u2028"', '"a b"'],
    "status": ['"accepted_llm"', '"error"', '"skipped"', '"fallback_deterministic"', '"ERROR"',
               '"accepted"', '"error "'],
    "reason_code": ['"accepted"', '"llm_timeout"', '"not_sampled"', '"low_confidence"',
                    '"accepted\\u0000"', '"acc\\u0065pted"'],
    "sampled": [],
    "sample_rate": ["0.05", "1", "1.0", "1e-05", "1.5", "0", "-0", "-0.0", "5e-00", "1E-5",
                    "1.0000001", "1.00000000000000001", "1e-400", "0.1e1", "2"],
    "profile_id": ['"partial_trust"', '"p\\np"'],
    "latency_ms": ["100.0", "0", "12", "-0.0", "1e3", "1E2", "3599999.99", "3600000",
                   "3599999.9999999999", "-1e-400", "-0.5", "01", "1-2", "9" * 5000,
                   "123456789012345678901234567890", "0.30000000000000004441", '"100"'],
    "baseline_latency_ms": ["12.5", "-1", "3600000.0", "1e6"],
    "intent_match": ["0", '"true"'],
    "entity_key_match": ["1"],
    "confidence": ["0.9", "1", "0.99999", "1.01", "9.9e-01", "-0"],
    "items_baseline": ["2", "999", "1000", "-0", "2.0", "1e2", "-1", "10000000000000000000000"],
    "items_llm": ["00", "0.0"],
}  # fmt: skip
_CASES = [(k, t) for k, ts in _TOKENS.items() for t in [*ts, *_ANY]]

_LINES = [
    b"", b" ", b"NOT JSON", b"\x00\xff" * 40, b"[]", b"null", b'"a string"', b"{}", b"1",
    GOOD.encode(), GOOD.encode()[:-1], GOOD.encode() + b"\r", b" \t" + GOOD.encode() + b"\n ",
    b"\x0c" + GOOD.encode(), GOOD.encode() + b"\xc2\xa0", b"\xef\xbb\xbf" + GOOD.encode(),
    GOOD.encode()[:-1] + b',"extra":1}', GOOD.encode()[:-1] + b',"schema_":"x"}',
    GOOD.replace(',"items_llm":2', "").encode(),
    GOOD.replace('"schema":"partial_trust_risk/v1",', "").encode(),
    GOOD.replace('"corridor"', '"corr\\u0069dor"').encode(),
    GOOD.encode()[:-1] + b',"status":"error"}', GOOD.encode()[:-1] + b',"latency_ms":5}',
    GOOD.encode()[:-1] + b',"status":"accepted_llm"}',
    GOOD.replace("add_shopping_item", "add_\xe9").encode("latin-1"),  # not UTF-8
    GOOD.replace("add_shopping_item", "\ud800").encode("utf-8", "surrogatepass"),
    GOOD.encode("utf-16"), b"[" * 30_000 + b"]" * 30_000, b"{" * 100,
    json.dumps(_OBJ, indent=2).encode(), json.dumps(_OBJ, ensure_ascii=True).encode(),
]  # fmt: skip


def answer(data: bytes) -> tuple[Fields | None, Fields | None, str, str]:
    plain, model = validate_plain(data), validate_model(data)
    return plain, model, repr(plain and plain[3]), repr(model and model[3])


def assert_agree(data: bytes) -> None:
    plain, model, plain_latency, model_latency = answer(data)
    assert plain == model, data[:300]
    assert plain_latency == model_latency, data[:300]  # -0.0 vs 0.0 shows only in repr


def test_the_writers_lines_are_valid_to_both() -> None:
    for status, reason in STATUS_REASONS:
        o = Outcome("add_shopping_item", status, reason, True, 1e-05, "p", "k" * 32, 12.5, 3.0)
        line = json.dumps(record(o), separators=(",", ":"), ensure_ascii=False).encode()
        assert validate_plain(line) is not None
        assert_agree(line)


@pytest.mark.parametrize(("name", "token"), _CASES)
def test_each_token_in_each_field_gets_the_same_answer(name: str, token: str) -> None:
    assert_agree(with_fields({name: token}))


@pytest.mark.parametrize("line", _LINES)
def test_whole_lines_get_the_same_answer(line: bytes) -> None:
    assert_agree(line.removeprefix(b"\xef\xbb\xbf"))
    parsed = records.parse(line)
    assert (parsed is None) == (validate_plain(line.removeprefix(b"\xef\xbb\xbf")) is None)


def test_the_corpus_has_both_answers() -> None:
    """A corpus the validators refused (or accepted) wholesale would prove nothing."""
    verdicts = [validate_plain(with_fields({k: t})) is None for k, t in _CASES]
    assert verdicts.count(False) > 20 and verdicts.count(True) > 100


@settings(max_examples=300, deadline=None)
@given(st.fixed_dictionaries({k: st.sampled_from(v or ["true"]) for k, v in _TOKENS.items()}))
def test_random_mixes_get_the_same_answer(tokens: dict[str, str]) -> None:
    assert_agree(with_fields(tokens))


@settings(max_examples=300, deadline=None)
@given(
    st.sets(st.sampled_from(sorted(set(_OBJ) - {"schema"}))),
    st.booleans(),
    st.sampled_from(["null", "true", "1", '"x"']),
)
def test_legacy_lines_get_the_same_answer(drop: set[str], keep_schema: bool, sampled: str) -> None:
    """The original application's lines (no ``schema``, fields missing) and lines that only
    look like them (a schema kept, ``sampled`` not a boolean) get one answer from both."""
    obj = {k: v for k, v in _OBJ.items() if k not in drop and (keep_schema or k != "schema")}
    line = json.dumps(obj, separators=(",", ":")).encode()
    if "sampled" in obj:
        line = line.replace(b'"sampled":true', b'"sampled":' + sampled.encode())
    assert_agree(line)
