"""Risk logs written by the original application: no ``schema``, read and counted as legacy.

The original application's lines are derived from the runbook (seed 000): it reads
``timestamp``, ``status`` and ``reason_code`` from each line and judges ``sampled``,
``latency_ms``, ``intent_match`` and ``entity_key_match``; it wrote no ``schema`` field, with
Python's default ``json.dumps`` spacing and ``isoformat()`` times (``+00:00``). Such lines
count in every figure and are reported as ``input.legacy_records``; a line with a schema we do
not know, or a legacy line with a field we do not know, stays foreign.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from partial_trust.apps.analysis import selftest
from partial_trust.apps.analysis.records import parse_line
from partial_trust.apps.analysis.tally import Tally, Window, parse_time

REPO = Path(__file__).resolve().parents[3]


def original_line(i: int, **over: Any) -> str:
    """One line as the original application wrote it (runbook fields, no schema)."""
    status, reason, latency, intent, entity = (
        ("error", "llm_timeout", 200.5, None, None)
        if i % 10 == 0
        else ("fallback_deterministic", "intent_mismatch", 150.0, False, None)
        if i % 10 == 1
        else ("accepted_llm", "accepted", 100.0 + i % 7, True, True)
    )
    row: dict[str, Any] = {
        "timestamp": f"2026-01-2{i % 3}T1{i % 10}:0{i % 6}:00.{i:06d}+00:00",
        "status": status,
        "reason_code": reason,
        "sampled": True,
        "latency_ms": latency,
        "intent_match": intent,
        "entity_key_match": entity,
    }
    if i % 2:  # some lines carry more of the DESIGN's fields, as a later version did
        row |= {"sample_rate": 0.01, "profile_id": "partial_trust", "confidence": 0.9}
    row.update(over)
    return json.dumps(row)


def analyze(*paths: Path, extra: tuple[str, ...] = ()) -> tuple[int, str, dict[str, Any]]:
    out = paths[0].with_suffix(".report.json")
    argv = [sys.executable, "-m", "partial_trust.apps.cli", "analyze", "--output-json", str(out)]
    argv += [*extra, "--risk-log", *(str(p) for p in paths)]
    proc = subprocess.run(
        argv,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.returncode, proc.stdout, json.loads(out.read_text(encoding="utf-8"))


def test_an_original_application_log_is_read_and_counted_as_legacy(tmp_path: Path) -> None:
    log = tmp_path / "partial_trust_risk.jsonl"
    log.write_text("".join(original_line(i) + "\n" for i in range(100)), encoding="utf-8")
    code, stdout, report = analyze(log)
    assert code == 0
    assert report["records"] == 100 and report["input"]["legacy_records"] == 100
    assert report["input"]["foreign_lines"] == 0
    assert report["sampled"] == 100
    assert report["status_counts"]["error"] == 10
    assert report["rates"]["error_rate"] == {"value": 0.1, "numerator": 10, "denominator": 100}
    assert report["rates"]["intent_mismatch_rate"]["numerator"] == 10
    assert report["latency_count"] == 100
    assert "100 legacy records (no schema" in stdout


def test_mixed_logs_count_only_the_schema_less_lines_as_legacy(tmp_path: Path) -> None:
    legacy = tmp_path / "old.jsonl"
    legacy.write_text("".join(original_line(i) + "\n" for i in range(30)), encoding="utf-8")
    ours = tmp_path / "new.jsonl"
    body = json.loads(original_line(5))
    full = {
        "timestamp": "2026-01-21T10:00:00.000Z",
        "schema": "partial_trust_risk/v1",
        "corridor": "add_shopping_item",
        "command_key": "k",
        "status": "accepted_llm",
        "reason_code": "accepted",
        "sampled": True,
        "sample_rate": 0.01,
        "profile_id": None,
        "latency_ms": body["latency_ms"],
        "baseline_latency_ms": 1.0,
        "intent_match": True,
        "entity_key_match": True,
        "confidence": 0.9,
        "items_baseline": 1,
        "items_llm": 1,
    }
    lines = [json.dumps(full, separators=(",", ":"))] * 20
    # Another writer's schema, and an old line with a field we never defined: foreign.
    lines.append(json.dumps({**full, "schema": "partial_trust_risk/v2"}))
    lines.append(original_line(3, user_text="x"))
    lines.append(original_line(4, schema=None))
    ours.write_text("\n".join(lines) + "\n", encoding="utf-8")
    code, _, report = analyze(legacy, ours)
    assert code == 0
    assert report["records"] == 50 and report["input"]["legacy_records"] == 30
    assert report["input"]["foreign_lines"] == 3


def test_the_window_applies_to_legacy_records_too(tmp_path: Path) -> None:
    log = tmp_path / "old.jsonl"
    log.write_text("".join(original_line(i) + "\n" for i in range(60)), encoding="utf-8")
    code, _, report = analyze(log, extra=("--since", "2026-01-21T00:00:00Z"))
    assert code == 0 and report["input"]["outside_window"] == 20  # day 20: i % 3 == 0
    assert report["records"] == report["input"]["legacy_records"] == 40


def test_required_runbook_fields_and_types_stay_strict() -> None:
    assert parse_line(original_line(2).encode()) is not None
    for broken in (
        original_line(2, status="accepted_llm", reason_code="llm_timeout"),  # wrong pair
        original_line(2, latency_ms=-1),
        original_line(2, intent_match="yes"),
        original_line(2, timestamp="2026-01-20 10:00:00"),  # no offset
        original_line(2, schema="partial_trust_risk/v1", sampled=None),
    ):
        assert parse_line(broken.encode()) is None, broken
    row = json.loads(original_line(2))
    for field in ("timestamp", "status", "reason_code"):
        missing = {k: v for k, v in row.items() if k != field}
        assert parse_line(json.dumps(missing).encode()) is None, field
    # Our own lines are never legacy; schema-less copies of them are.
    tally = Tally(Window(parse_time("2026-01-01T00:00:00Z"), None))
    tally.add_line(original_line(2).encode())
    ours = selftest.canonical(
        ("2026-01-20T10:00:00.000Z", "accepted_llm", "accepted", 1.0, True, True)
    )
    tally.add_line(ours.encode())
    tally.add_chunk((ours + "\n").encode() * 3)  # the regex fast path
    assert tally.legacy == 1 and sum(tally.records.values()) == 5
