"""``--self-test``: the analyzer on built-in fixtures against answers worked out by hand.

The runbook makes a passing self-test a prerequisite for rollout, so it must exercise what
real logs contain: every status and reason, the regex fast path and the JSON slow path
(foreign lines, another writer's spacing, a torn last line), look-alike records with values
out of range (issue 15: each is foreign and moves no figure), gzip, a time window and empty
input. The expected values are constants computed by hand (see the comments), never by the
code under test.
"""

from __future__ import annotations

import gzip
import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from partial_trust.apps.analysis.figures import Figures, from_tally
from partial_trust.apps.analysis.reader import tally_files
from partial_trust.apps.analysis.tally import Window, parse_time

Row = tuple[str, str, str, float | None, bool | None, bool | None]  # ts, status, reason, ...

H9, H10 = "2026-11-23T09:%02d:00.000Z", "2026-11-23T10:%02d:00.000Z"
#: 24 records: 3 accepted, 8 fallback, 6 error, 7 skipped; every reason once (accepted 3x).
ROWS: tuple[Row, ...] = (
    (H9 % 0, "accepted_llm", "accepted", 100.0, True, True),
    (H9 % 1, "accepted_llm", "accepted", 120.0, True, True),
    (H9 % 2, "accepted_llm", "accepted", 140.0, True, True),
    (H9 % 3, "fallback_deterministic", "item_not_grounded", 160.0, True, False),
    (H9 % 4, "fallback_deterministic", "intent_mismatch", 180.0, False, False),
    (H9 % 5, "fallback_deterministic", "schema_violation", 200.0, None, None),
    (H9 % 6, "fallback_deterministic", "empty_items", 220.0, True, False),
    (H9 % 7, "fallback_deterministic", "too_many_items", 240.0, True, False),
    (H9 % 8, "fallback_deterministic", "invalid_item_name", 260.0, True, False),
    (H9 % 9, "fallback_deterministic", "list_id_not_allowed", 280.0, True, True),
    (H9 % 10, "fallback_deterministic", "low_confidence", 300.0, True, True),
    (H10 % 0, "error", "llm_timeout", 200.5, None, None),
    (H10 % 1, "error", "llm_http_error", 50.0, None, None),
    (H10 % 2, "error", "llm_invalid_response", 75.0, None, None),
    (H10 % 3, "error", "llm_unavailable", None, None, None),
    (H10 % 4, "error", "circuit_open", None, None, None),
    (H10 % 5, "error", "internal_error", 10.0, None, None),
    (H10 % 6, "skipped", "corridor_mismatch", None, None, None),
    (H10 % 7, "skipped", "capability_mismatch", None, None, None),
    (H10 % 8, "skipped", "policy_disabled", None, None, None),
    (H10 % 9, "skipped", "flags_unavailable", None, None, None),
    (H10 % 10, "skipped", "not_sampled", None, None, None),
    (H10 % 11, "skipped", "invalid_command", None, None, None),
    (H10 % 12, "skipped", "baseline_error", 999.0, None, None),  # skipped: not in latency_p95
)

#: By hand. intent_match: true 9, false 1 (intent_mismatch), null 14 -> 1/10.
#: entity_key_match: true 5, false 5, null 14 -> 5/10. Sampled latencies (15, sorted):
#: 10 50 75 100 120 140 160 180 200 200.5 220 240 260 280 300; h = 14 * 0.95 = 13.3;
#: p95 = x13 + 0.3 * (x14 - x13) = 280 + 0.3 * 20 = 286.
FULL: dict[str, Any] = {
    "records": 24, "sampled": 17, "error_rate": 6 / 17, "acceptance_rate": 3 / 17,
    "intent_mismatch_rate": 0.1, "entity_key_mismatch_rate": 0.5, "latency_p95": 286.0,
    "latency_count": 15,
    "status_counts": {"accepted_llm": 3, "fallback_deterministic": 8, "error": 6, "skipped": 7},
}  # fmt: skip
#: --since 10:00: the 13 hour-10 records; latencies 10 50 75 200.5, h = 2.85 -> 181.675.
SINCE_10: dict[str, Any] = {
    "records": 13, "sampled": 6, "error_rate": 1.0, "acceptance_rate": 0.0,
    "intent_mismatch_rate": None, "entity_key_mismatch_rate": None, "latency_p95": 181.675,
    "latency_count": 4, "outside_window": 11,
}  # fmt: skip
EMPTY: dict[str, Any] = {
    "records": 0, "sampled": 0, "error_rate": None, "acceptance_rate": None,
    "intent_mismatch_rate": None, "entity_key_mismatch_rate": None, "latency_p95": None,
}  # fmt: skip


def canonical(row: Row, key: str = "0f3a9c1b7d4e5f60a1b2c3d4") -> str:
    """One line exactly as ``partial_trust.middleware.risk_log`` writes it (keys in FIELDS
    order)."""
    ts, status, reason, latency, intent, entity = row
    rec = {
        "timestamp": ts, "schema": "partial_trust_risk/v1", "corridor": "add_shopping_item",
        "command_key": key, "status": status, "reason_code": reason,
        "sampled": status != "skipped", "sample_rate": 0.05, "profile_id": None,
        "latency_ms": latency, "baseline_latency_ms": 12.5, "intent_match": intent,
        "entity_key_match": entity, "confidence": 0.9 if intent else None,
        "items_baseline": 2, "items_llm": 2 if intent is not None else None,
    }  # fmt: skip
    return json.dumps(rec, separators=(",", ":"), ensure_ascii=False)


def messy_lines() -> list[str]:
    """The same 24 records, the first in another writer's spacing, plus 2 foreign lines."""
    lines = [canonical(r) for r in ROWS]
    lines[0] = json.dumps(json.loads(lines[0]), indent=None)  # ", " and ": " separators
    return [*lines[:5], "not json at all", *lines[5:], '{"schema":"other/v1","status":"error"}']


def hostile_lines() -> list[str]:
    """Look-alike records (issue 15): each must be foreign and move no figure."""
    good = canonical(ROWS[0])
    lat = '"latency_ms":100.0'
    return [
        good.replace(H9 % 0, "9999-99-99T99:00:00.000Z"),
        good.replace(H9 % 0, "2027-02-29T09:00:00.000Z"),
        good.replace(lat, '"latency_ms":1-2'),
        good.replace(lat, '"latency_ms":1e999'),
        good.replace(lat, '"latency_ms":-1e308'),
        good.replace(lat, '"latency_ms":NaN'),
        good.replace('"reason_code":"accepted"', '"reason_code":"llm_timeout"'),
        good.replace('"sample_rate":0.05', '"sample_rate":5'),
        "\x00\ufffd NOT JSON",
    ]


TORN = '{"timestamp":"2026-11-23T10:59:59.000Z","schema":"partial_trust_risk/v1","corr'


def _figures(paths: list[Path], window: Window | None = None) -> Figures:
    return from_tally(tally_files(paths, window or Window(), jobs=1))


def _check(case: str, fig: Figures, expected: dict[str, Any]) -> list[tuple[str, Any, Any, bool]]:
    got = fig.to_json()
    got.update(got.pop("input"))
    out = []
    for name, want in expected.items():
        have = got.get(name)
        if isinstance(want, float) and isinstance(have, float):
            ok = abs(want - have) < 1e-6
        else:
            ok = want == have
        out.append((f"{case}: {name}", want, have, ok))
    return out


def run(emit: Callable[[str], None] = print) -> bool:
    """Run every case, print one line per figure, return True only if all match."""
    results: list[tuple[str, Any, Any, bool]] = []
    with tempfile.TemporaryDirectory(prefix="pt-selftest-") as tmp:
        d = Path(tmp)
        clean = d / "clean.jsonl"
        clean.write_text("".join(canonical(r) + "\n" for r in ROWS), encoding="utf-8")
        results += _check("canonical (fast path)", _figures([clean]), FULL)
        messy = d / "messy.jsonl"
        messy.write_text("\n".join(messy_lines()) + "\n" + TORN, encoding="utf-8")
        odd = {**FULL, "foreign_lines": 2, "torn_lines": 1}
        results += _check("messy (slow path)", _figures([messy]), odd)
        hostile = d / "hostile.jsonl"
        hostile.write_text("\n".join([*hostile_lines(), *map(canonical, ROWS)]) + "\n")
        results += _check(
            "hostile values are foreign", _figures([hostile]), {**FULL, "foreign_lines": 9}
        )
        half = len(ROWS) // 2
        (d / "a.jsonl").write_text("".join(canonical(r) + "\n" for r in ROWS[:half]))
        with gzip.open(d / "a.jsonl.1.gz", "wt", encoding="utf-8") as gz:
            gz.write("".join(canonical(r) + "\n" for r in ROWS[half:]))
        results += _check("rotated + gzip", _figures(sorted(d.glob("a.jsonl*"))), FULL)
        window = Window(since=parse_time("2026-11-23T10:00:00Z"))
        results += _check("--since 10:00", _figures([clean], window), SINCE_10)
        empty = d / "empty.jsonl"
        empty.write_bytes(b"")
        results += _check("empty input", _figures([empty]), EMPTY)
    for name, want, have, ok in results:
        emit(f"{'ok  ' if ok else 'FAIL'} {name} = {have!r}" + ("" if ok else f" (want {want!r})"))
    passed = all(r[3] for r in results)
    score = f"{sum(r[3] for r in results)}/{len(results)}"
    emit(f"self-test {'passed' if passed else 'FAILED'}: {score}")
    return passed
