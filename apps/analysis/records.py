"""What a valid risk-log line is: one set of rules, one regex that implies them.

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
changes speed, never the answer; ``tests/apps/analysis/test_records.py`` checks the implication.

Two validators state the rules: the strict pydantic model (``records_model.RiskLine``), used
when pydantic is installed (it always is with the package), and ``validate_plain``, the same
rules in the standard library, used without it: the runbook runs ``python3
scripts/analyze_partial_trust.py`` from a checkout on a bare host. They must agree on every
line; ``tests/packaging/test_records_plain.py`` holds them to it on valid and hostile lines.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Final

from partial_trust.apps.analysis.limits import LATENCY_CAP_MS, MAX_IDENT, MAX_ITEMS, MAX_LINE
from partial_trust.outcome import STATUS_REASONS

SCHEMA: Final = "partial_trust_risk/v1"
#: status -> its reasons, from the one source of truth (``partial_trust.outcome``).
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


#: (UTC hour, status, reason, latency token, intent, entity, mode, agreement): what a line
#: contributes. ``mode`` is ``shadow`` or ``canary`` (absent: ``canary``, the lines written
#: before modes existed); ``agreement`` is ``true``, ``false`` or ``null`` (absent: ``null``).
Rec = tuple[bytes, bytes, bytes, bytes, bytes, bytes, bytes, bytes]
#: The same for a line inside a time window, plus its instant.
TimedRec = tuple[datetime, Rec]


#: (instant, status, reason_code, latency_ms, intent_match, entity_key_match, legacy, mode,
#: agreement) of a valid line; *legacy*: written by the original application (no ``schema``).
Fields = tuple[datetime, str, str, float | None, bool | None, bool | None, bool, str, bool | None]
#: optional fields (issue 19), after ``items_llm``: a line without them stays valid.
#: ``mode_capped`` (``true``/``false`` only) is accepted and not counted: it explains a
#: shadow line of a corridor the flags set to canary, the figures do not depend on it.
OPTIONAL: Final = frozenset(("mode", "agreement", "mode_capped"))
MODES: Final = ("shadow", "canary")
DEFAULT_MODE: Final = "canary"
#: What a legacy line must carry: the runbook reads these three, and nothing else is sure.
LEGACY_REQUIRED: Final = frozenset(("timestamp", "status", "reason_code"))


def parse(line: bytes) -> TimedRec | None:
    """The contribution of one line (no newline), or None when it is not a valid record."""
    parsed = parse_line(line)
    return None if parsed is None else parsed[0]


def parse_line(line: bytes) -> tuple[TimedRec, bool] | None:
    """``parse``, plus whether the record is *legacy* (the original application's: no
    ``schema``; only ``LEGACY_REQUIRED`` is sure to be there, every other DESIGN field may be
    missing and reads as null, types and ranges as strict as ours; an unknown field, or a
    ``schema`` of any value but ours, still makes the line foreign)."""
    if len(line) > MAX_LINE:
        return None
    fields = _validator()(line.removeprefix(_BOM))
    if fields is None:
        return None
    ts, status, reason, latency, intent, entity, legacy, mode, agreement = fields
    lat = b"null" if latency is None else repr(latency).encode()
    rec = (
        ts.strftime("%Y-%m-%dT%H").encode(),
        status.encode(),
        reason.encode(),
        lat,
        _flag(intent),
        _flag(entity),
        mode.encode(),
        _flag(agreement),
    )
    return (ts, rec), legacy


@functools.cache
def _validator() -> Callable[[bytes], Fields | None]:
    """The pydantic model when pydantic is installed, else ``validate_plain``."""
    try:
        from partial_trust.apps.analysis.records_model import validate_model
    except ModuleNotFoundError as exc:
        if exc.name is None or exc.name.partition(".")[0] not in {"pydantic", "pydantic_core"}:
            raise
        return validate_plain
    return validate_model


# -- the model's rules in the standard library (pydantic strict mode, JSON input) ---------
#: every field of ``records_model.RiskLine`` but ``schema``, which has a default
_REQUIRED: Final = frozenset(
    ("timestamp", "corridor", "command_key", "status", "reason_code", "sampled", "sample_rate",
     "profile_id", "latency_ms", "baseline_latency_ms", "intent_match", "entity_key_match",
     "confidence", "items_baseline", "items_llm")
)  # fmt: skip


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number")


def _real(value: object, top: float, *, top_included: bool) -> float | None:
    """A strict float: null, or an int or float (never a bool), finite, in [0, top]/[0, top)."""
    if value is None:
        return None
    if type(value) is not int and type(value) is not float:
        raise ValueError("not a number")
    real = float(value)  # OverflowError: an int beyond any float
    if not (0.0 <= real <= top if top_included else 0.0 <= real < top):  # NaN fails too
        raise ValueError("out of range")
    return real


def _items(value: object) -> None:
    if value is not None and (type(value) is not int or not 0 <= value <= MAX_ITEMS):
        raise ValueError("not an item count")


def _tribool(value: object) -> bool | None:
    if value is None or isinstance(value, bool):  # bool has no subclasses: exact
        return value
    raise ValueError("not a boolean")


def validate_plain(data: bytes) -> Fields | None:
    """``records_model.validate_model`` without pydantic: the same lines valid, same fields."""
    try:
        obj = json.loads(data.decode("utf-8"), parse_constant=_refuse_constant)
        if type(obj) is not dict:
            return None
        keys = obj.keys()
        legacy = "schema" not in keys
        core = keys - {"schema"} - OPTIONAL
        if core != _REQUIRED and not (
            legacy and LEGACY_REQUIRED.issubset(keys) and _REQUIRED.issuperset(core)
        ):
            return None
        mode = obj.get("mode", DEFAULT_MODE)
        if type(mode) is not str or mode not in MODES:
            return None
        if type(obj.get("mode_capped", False)) is not bool:
            return None
        status, reason = obj["status"], obj["reason_code"]
        sampled = obj.get("sampled")
        if (
            obj.get("schema", SCHEMA) != SCHEMA
            or type(status) is not str
            or type(reason) is not str
            or reason not in REASONS.get(status, ())
            or not (type(sampled) is bool or (sampled is None and legacy))
        ):
            return None
        for key in ("corridor", "command_key", "profile_id"):
            _ident(obj.get(key))
        for key in ("sample_rate", "confidence"):
            _real(obj.get(key), 1.0, top_included=True)
        _real(obj.get("baseline_latency_ms"), LATENCY_CAP_MS, top_included=False)
        _items(obj.get("items_baseline"))
        _items(obj.get("items_llm"))
        return (
            _instant(obj["timestamp"]),
            status,
            reason,
            _real(obj.get("latency_ms"), LATENCY_CAP_MS, top_included=False),
            _tribool(obj.get("intent_match")),
            _tribool(obj.get("entity_key_match")),
            legacy,
            mode,
            _tribool(obj.get("agreement")),
        )
    except (ValueError, OverflowError, RecursionError):  # JSONDecodeError, UnicodeError too
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
#: One canonical line. Groups: hour, status, reason_code, latency_ms, intent, entity, mode,
#: agreement (the last two are b"" when the line has no such field: canary, null); an optional
#: ``mode_capped`` (true/false) closes the line, matched but not captured.
LINE: Final = re.compile(
    rb'^\{"timestamp":"' + _STAMP + rb'","schema":"partial_trust_risk/v1",'
    rb'"corridor":' + _ID + rb',"command_key":' + _ID + rb","
    rb'"status":"(?=(?:' + _PAIRS + rb"))(" + _alt(REASONS) + rb')","reason_code":"([a-z_]{1,64})",'
    rb'"sampled":(?:true|false),"sample_rate":' + _UNIT + rb',"profile_id":' + _ID + rb","
    rb'"latency_ms":(' + _MS + rb'),"baseline_latency_ms":' + _MS + rb","
    rb'"intent_match":' + _BOOL3 + rb',"entity_key_match":' + _BOOL3 + rb","
    rb'"confidence":' + _UNIT + rb',"items_baseline":' + _ITEMS + rb","
    rb'"items_llm":' + _ITEMS + rb'(?:,"mode":"(' + _alt(MODES) + rb')")?+'
    rb'(?:,"agreement":' + _BOOL3 + rb")?+"
    rb'(?:,"mode_capped":(?:true|false))?+\}$',
    re.MULTILINE,
)
assert math.isfinite(LATENCY_CAP_MS) and LATENCY_CAP_MS > 1e6  # _MS stays below the cap
