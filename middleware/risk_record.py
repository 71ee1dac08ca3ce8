"""One risk-log line: the DESIGN's fields of an ``Outcome``, each coerced to its JSON type.

Apart from ``RiskLog``'s queue and file handling because this is the privacy boundary (only
short identifiers, numbers and flags can pass) and the one shape the analyzer, dashboards and
tests read. It runs on the writer thread, where every microsecond is taken from the event
loop under the GIL, hence one shared encoder and a timestamp prefix formatted once a second.
"""

from __future__ import annotations

import json
import math
import time
from typing import Final

from partial_trust.outcome import Outcome

SCHEMA: Final = "partial_trust_risk/v1"
#: The exact keys of one line, in order; the analyzer, dashboards and tests rely on them.
FIELDS: Final = (
    "timestamp", "schema", "corridor", "command_key", "status", "reason_code", "sampled",
    "sample_rate", "profile_id", "latency_ms", "baseline_latency_ms", "intent_match",
    "entity_key_match", "confidence", "items_baseline", "items_llm", "mode", "agreement",
    "mode_capped",
)  # fmt: skip
_MAX_STR: Final = 128  # corridor/profile/key are short identifiers; anything longer is suspect

#: ``json.dumps`` with any option builds a new encoder per call; this one is shared (it keeps
#: no state between calls, so the writer and a synchronous ``close`` may both use it).
_ENCODER: Final = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)

#: (epoch second, its "YYYY-MM-DDTHH:MM:SS"): a log writes many lines per second. Replaced
#: whole, never mutated, so a thread reading it sees one consistent pair.
_second: tuple[int, str] = (-1, "")


def timestamp(epoch: float) -> str:
    """RFC 3339 UTC with milliseconds and ``Z``: sorts as text and parses everywhere."""
    global _second
    seconds, ms = divmod(round(epoch * 1000), 1000)
    cached = _second
    if cached[0] != seconds:
        cached = _second = (seconds, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)))
    return f"{cached[1]}.{ms:03d}Z"


def _num(value: object, digits: int) -> float | None:
    # NaN/inf are not JSON; a bool is not a measurement. Either becomes null, never an error.
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return round(float(value), digits)


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _flag(value: object) -> bool | None:
    return value if isinstance(value, bool) else None


def _ident(value: object) -> str | None:
    # Defence in depth: only short identifiers pass, so free text can never reach the file.
    if value is None:
        return None
    text = str(getattr(value, "value", value))
    return text if len(text) <= _MAX_STR and text.isprintable() else "<invalid>"


def record(outcome: Outcome) -> dict[str, object]:
    """The JSON object for one line: only the DESIGN fields, each coerced to its type."""
    return {
        "timestamp": timestamp(outcome.timestamp),
        "schema": SCHEMA,
        "corridor": _ident(outcome.corridor),
        "command_key": _ident(outcome.command_key),
        "status": _ident(outcome.status),
        "reason_code": _ident(outcome.reason),
        "sampled": bool(outcome.sampled),
        "sample_rate": _num(outcome.sample_rate, 6),
        "profile_id": _ident(outcome.profile_id),
        "latency_ms": _num(outcome.latency_ms, 2),
        "baseline_latency_ms": _num(outcome.baseline_latency_ms, 2),
        "intent_match": _flag(outcome.intent_match),
        "entity_key_match": _flag(outcome.entity_key_match),
        "confidence": _num(outcome.confidence, 4),
        "items_baseline": _int(outcome.items_baseline),
        "items_llm": _int(outcome.items_llm),
        "mode": _ident(outcome.mode),
        "agreement": _flag(outcome.agreement),
        # closed enum true/false: whether the corridor's risk class or a variable lowered the
        # mode the flags asked for (an ``admin`` corridor asked for canary runs in shadow), so
        # the log says why a corridor set to canary wrote shadow lines
        "mode_capped": outcome.mode_capped is True,
    }


def line(outcome: Outcome) -> bytes:
    """One JSONL line, newline included, UTF-8."""
    return (_ENCODER.encode(record(outcome)) + "\n").encode("utf-8")
