"""Agreement as a figure, and ``gate --stage shadow``, on risk logs written here by hand.

The lines are built field by field (the DESIGN's order, ``mode`` and ``agreement`` after
``items_llm``), not by the middleware's writer, so the analyzer is checked against a log it
did not write; some lines take the regex fast path, some (spaced JSON) the strict model, and
some are older lines without ``mode``/``agreement`` (canary, null).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from partial_trust.apps.analysis.cli import analyze_main, gate_main
from partial_trust.thresholds import SHADOW

START = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)


def line(
    ts: datetime,
    *,
    mode: str | None = "shadow",
    agreement: bool | None = True,
    status: str = "fallback_deterministic",
    spaced: bool = False,
) -> str:
    ok = status != "error"
    rec: dict[str, Any] = {
        "timestamp": ts.strftime("%Y-%m-%dT%H:%M:%S.000Z"), "schema": "partial_trust_risk/v1",
        "corridor": "add_shopping_item", "command_key": "0f3a9c1b7d4e5f60", "status": status,
        "reason_code": {"accepted_llm": "accepted", "error": "llm_timeout"}.get(
            status, "intent_mismatch"),
        "sampled": True, "sample_rate": 0.1, "profile_id": None,
        "latency_ms": 120.0 if ok else 200.0, "baseline_latency_ms": 3.0,
        "intent_match": True if ok else None, "entity_key_match": True if ok else None,
        "confidence": 0.9, "items_baseline": 2, "items_llm": 2 if ok else None,
    }  # fmt: skip
    if mode is not None:
        rec["mode"] = mode
        rec["agreement"] = agreement if ok else None
    return json.dumps(rec, separators=(", ", ": ") if spaced else (",", ":"))


def write(path: Path, lines: Sequence[str]) -> Path:
    path.write_text("".join(x + "\n" for x in lines), encoding="utf-8")
    return path


def at(i: int, minutes: int = 10) -> datetime:
    return START + timedelta(minutes=minutes * i)


def mixed() -> list[str]:
    out: list[str] = []
    # shadow: 6 agree (2 of them spaced: the model path), 2 disagree, 2 no candidate (errors)
    out += [line(at(i), spaced=i < 2) for i in range(6)]
    out += [line(at(6 + i), agreement=False) for i in range(2)]
    out += [line(at(8 + i), status="error") for i in range(2)]
    # canary: 3 agree (served), 1 disagrees, 1 null (a candidate that did not parse)
    out += [line(at(10 + i), mode="canary", status="accepted_llm") for i in range(3)]
    out += [line(at(13), mode="canary", agreement=False)]
    out += [line(at(14), mode="canary", agreement=None)]
    # older lines: no mode, no agreement -> canary, null
    out += [line(at(15 + i), mode=None, status="accepted_llm") for i in range(4)]
    return out


def test_agreement_figures_overall_and_by_mode(tmp_path: Path) -> None:
    log = write(tmp_path / "risk.jsonl", mixed())
    out = tmp_path / "report.json"
    html = tmp_path / "report.html"
    args = ["--risk-log", str(log), "--output-json", str(out), "--html", str(html)]
    assert analyze_main(args) == 0
    fig = json.loads(out.read_text())
    assert fig["records"] == 19 and fig["input"]["foreign_lines"] == 0
    assert fig["rates"]["agreement_rate"] == {"value": 0.75, "numerator": 9, "denominator": 12}
    assert fig["agreement_rate"] == 0.75
    shadow, canary = fig["by_mode"]["shadow"], fig["by_mode"]["canary"]
    assert shadow["records"] == 10 and canary["records"] == 9
    assert shadow["agreement_rate"] == {"value": 0.75, "numerator": 6, "denominator": 8}
    assert shadow["agreement_counts"] == {"true": 6, "false": 2, "null": 2}
    assert canary["agreement_rate"] == {"value": 0.75, "numerator": 3, "denominator": 4}
    assert canary["agreement_counts"] == {"true": 3, "false": 1, "null": 5}
    assert shadow["acceptance_rate"] == {"value": 0.0, "numerator": 0, "denominator": 10}
    assert canary["acceptance_rate"] == {"value": 0.777778, "numerator": 7, "denominator": 9}
    assert shadow["error_rate"]["numerator"] == 2
    page = html.read_text()
    assert "agreement_rate 0.7500 (9 / 12)" in page and "<td>shadow</td>" in page


def test_agreement_is_null_never_zero_without_a_verdict(tmp_path: Path) -> None:
    log = write(tmp_path / "risk.jsonl", [line(at(i), mode=None) for i in range(12)])
    out = tmp_path / "report.json"
    assert analyze_main(["--risk-log", str(log), "--output-json", str(out)]) == 0
    fig = json.loads(out.read_text())
    assert fig["rates"]["agreement_rate"] == {"value": None, "numerator": 0, "denominator": 0}
    assert fig["by_mode"]["shadow"]["records"] == 0


def test_text_report_shows_agreement_next_to_acceptance(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = write(tmp_path / "risk.jsonl", mixed())
    assert analyze_main(["--risk-log", str(log)]) == 0
    text = capsys.readouterr().out
    assert "agreement_rate                  0.7500   9 / 12" in text
    assert "shadow                10" in text and "0.7500 (6/8)" in text


def test_an_unknown_mode_is_a_foreign_line(tmp_path: Path) -> None:
    bad = line(at(0)).replace('"mode":"shadow"', '"mode":"advisory"')
    log = write(tmp_path / "risk.jsonl", [*mixed(), bad, bad.replace("advisory", "shadow ")])
    out = tmp_path / "report.json"
    assert analyze_main(["--risk-log", str(log), "--output-json", str(out)]) == 0
    assert json.loads(out.read_text())["input"]["foreign_lines"] == 2


# -- gate --stage shadow ----------------------------------------------------------------------
def shadow_run(days: float, n: int, agree_share: float, errors: int = 0) -> list[str]:
    """``n`` shadow records spread evenly over ``days``, the first ``agree_share`` agreeing."""
    step = timedelta(days=days) / n
    agree = round(n * agree_share)
    out = [line(START + step * i, agreement=i < agree) for i in range(n)]
    for i in range(errors):
        out[n - 1 - i] = line(START + step * (n - 1 - i), status="error")
    return out


def gate(tmp_path: Path, lines: Sequence[str], *extra: str) -> tuple[int, dict[str, Any]]:
    log = write(tmp_path / "risk.jsonl", lines)
    out = tmp_path / "gate.json"
    last = max(json.loads(x)["timestamp"] for x in lines)
    until = (datetime.fromisoformat(last) + timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    args = ["--stage", "shadow", "--risk-log", str(log), "--until", until]
    code = gate_main([*args, "--output-json", str(out), *extra])
    return code, json.loads(out.read_text())


def results(payload: dict[str, Any]) -> dict[str, str]:
    return {f"{c['kind']} {c['criterion']}": c["result"] for c in payload["criteria"]}


def test_go_with_enough_agreeing_records_over_the_minimum_duration(tmp_path: Path) -> None:
    canary_before = [line(START - timedelta(days=3, minutes=i), mode="canary") for i in range(5)]
    code, payload = gate(tmp_path, [*canary_before, *shadow_run(8, 300, 0.95)])
    assert (code, payload["verdict"]) == (0, "GO")
    assert payload["next_stage"] == 1 and payload["agreement_line"] == SHADOW.agreement_week2
    assert payload["duration"]["source"] == "risk-log"
    assert payload["duration"]["since"] == "2026-03-02T00:00:00Z"  # the first shadow record
    assert payload["duration"]["elapsed_s"] >= 8 * 86400 - 3600


def test_hold_when_on_track_but_too_young(tmp_path: Path) -> None:
    code, payload = gate(tmp_path, shadow_run(3, 300, 0.85))
    assert (code, payload["verdict"], payload["data_verdict"]) == (1, "HOLD", "GO")
    assert payload["agreement_line"] == SHADOW.agreement_week1  # week 1: on track above 80%


def test_no_go_under_the_line(tmp_path: Path) -> None:
    code, payload = gate(tmp_path, shadow_run(8, 300, 0.85))  # week 2: 85% is not above 90%
    assert (code, payload["verdict"]) == (1, "NO-GO")
    assert results(payload)["go agreement_rate > 0.9"] == "fail"
    code, payload = gate(tmp_path, shadow_run(3, 300, 0.75))  # week 1: below 80% too
    assert (code, payload["verdict"]) == (1, "NO-GO")


def test_exactly_on_the_line_is_not_above_it(tmp_path: Path) -> None:
    code, payload = gate(tmp_path, shadow_run(8, 300, 0.90))
    assert (code, payload["verdict"]) == (1, "NO-GO")


def test_never_go_with_too_few_records(tmp_path: Path) -> None:
    n = SHADOW.min_records - 1
    code, payload = gate(tmp_path, shadow_run(8, n, 1.0))
    assert (code, payload["verdict"]) == (1, "NO-GO")
    assert results(payload)[f"go agreement_records >= {SHADOW.min_records}"] == "fail"
    # canary records do not count toward the shadow minimum
    canary = [line(START + timedelta(days=9, minutes=i), mode="canary") for i in range(50)]
    code, payload = gate(
        tmp_path, [*shadow_run(8, n, 1.0), *canary], "--since", "2026-03-02T00:00:00Z"
    )
    assert payload["verdict"] == "NO-GO"


def test_errors_count_like_stage_one(tmp_path: Path) -> None:
    code, payload = gate(tmp_path, shadow_run(8, 300, 1.0, errors=30))  # 10% errors
    assert (code, payload["verdict"]) == (2, "ROLLBACK")


def test_since_sets_the_clock_and_too_few_lines_cannot_be_evaluated(tmp_path: Path) -> None:
    code, payload = gate(tmp_path, shadow_run(3, 300, 0.95), "--since", "2026-02-20T00:00:00Z")
    assert (code, payload["verdict"], payload["duration"]["source"]) == (0, "GO", "--since")
    code, payload = gate(tmp_path, shadow_run(8, 5, 1.0))
    assert (code, payload["verdict"]) == (3, "CANNOT-EVALUATE")
