"""Every report that shows a stage's verdict shows the gate's: ``gate --stage N``, the HTML of
``analyze --html`` and ``gate --html``, and the triage bundle's ``gate-stage-N.json`` and
``analysis.html``. An hour of GO records at 1% is HOLD with the time left in all of them (the
issue: one hour of records gave stage-1 GO); once the stage ran its 3 days, GO in all of them.
Real files, the commands run in-process.
"""

from __future__ import annotations

import io
import json
import re
import tarfile
from pathlib import Path
from typing import Any

import pytest

from partial_trust.apps.analysis import durations, triage
from partial_trust.apps.analysis.cli import analyze_main, gate_main
from tests.apps.analysis.test_gate_durations import ago, audit, rate_set, spread, write


@pytest.fixture(autouse=True)
def _no_ambient_audit_log(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(durations.AUDIT_ENV, raising=False)


def html_verdicts(page: str) -> dict[int, tuple[str, str]]:
    """``{stage: (verdict, the clock line under it)}`` from the report's gate section."""
    found = re.findall(
        r'<h3>Stage (\d): <span class="verdict"[^>]*>([A-Z-]+)</span></h3>'
        r'<p class="duration">([^<]*)</p>',
        page,
    )
    return {int(stage): (verdict, line) for stage, verdict, line in found}


def every_report(tmp: Path, risk: Path, audit_log: Path) -> dict[str, Any]:
    """Stage 1's verdict (and clock line) from the gate, both HTML pages and the bundle."""
    logs = ["--risk-log", str(risk), "--audit-log", str(audit_log), "--no-progress"]
    gate_json, gate_html = tmp / "gate.json", tmp / "gate.html"
    code = gate_main(
        ["--stage", "1", *logs, "--output-json", str(gate_json), "--html", str(gate_html)]
    )
    analyze_html = tmp / "analyze.html"
    assert analyze_main([*logs, "--html", str(analyze_html)]) == 0
    bundle = tmp / "bundle.tar.gz"
    argv = ["--out", str(bundle), "--risk-log", str(risk), "--audit-log", str(audit_log)]
    assert triage.main([*argv, "--flags-file", str(tmp / "no-flags.json")]) == 0
    with tarfile.open(fileobj=io.BytesIO(bundle.read_bytes()), mode="r:gz") as tar:

        def member(name: str) -> bytes:
            f = tar.extractfile(f"{triage.PREFIX}/{name}")
            assert f is not None
            return f.read()

        bundled = json.loads(member("gate-stage-1.json"))
        bundled_html = html_verdicts(member("analysis.html").decode())
    return {
        "gate": (code, json.loads(gate_json.read_text())),
        "gate_html": html_verdicts(gate_html.read_text()),
        "analyze_html": html_verdicts(analyze_html.read_text()),
        "bundle": bundled,
        "bundle_html": bundled_html,
    }


def test_an_hour_of_go_records_is_hold_with_the_time_left_in_every_report(
    tmp_path: Path,
) -> None:
    risk = write(tmp_path / "risk.jsonl", spread(ago(minutes=62), ago(minutes=1), 80))
    seen = every_report(tmp_path, risk, tmp_path / "no-audit.jsonl")
    code, gate = seen["gate"]
    assert (code, gate["verdict"], gate["data_verdict"]) == (1, "HOLD", "GO")
    left = gate["duration"]["summary"]
    assert "of its 3 days at 1%; 2 d 22 h" in left and left.endswith("left")
    bundle = seen["bundle"]
    assert (bundle["verdict"], bundle["data_verdict"], bundle["exit_code"]) == ("HOLD", "GO", 1)
    assert bundle["duration"]["source"] == "risk-log"
    assert bundle["duration"]["left_s"] > 2 * 86400
    for page in ("gate_html", "analyze_html", "bundle_html"):
        verdict, line = seen[page][1]
        assert verdict == "HOLD", page
        assert line.startswith("HOLD: stage 1 has run 1 h 0") and "left" in line, (page, line)
    # the other stages: the records (all at 1%) never ran them; NO-GO stays NO-GO
    assert {s: v for s, (v, _) in seen["analyze_html"].items()} == {
        1: "HOLD",
        2: "NO-GO",
        3: "NO-GO",
    }


def test_the_audit_log_clock_is_used_by_every_report(tmp_path: Path) -> None:
    """Records for 4 days, but the rate was set to 1% again an hour ago: HOLD everywhere."""
    risk = write(tmp_path / "risk.jsonl", spread(ago(days=4), ago(minutes=1), 200))
    log = audit(tmp_path / "audit.jsonl", rate_set(ago(minutes=61), 0.01))
    seen = every_report(tmp_path, risk, log)
    assert seen["gate"][1]["verdict"] == "HOLD"
    assert seen["bundle"]["verdict"] == "HOLD"
    assert seen["bundle"]["duration"]["source"] == "flag-audit-log"
    for page in ("gate_html", "analyze_html", "bundle_html"):
        assert seen[page][1][0] == "HOLD", page
        assert "(start from: flag-audit-log)" in seen[page][1][1], page


def test_go_records_older_than_the_stage_are_go_in_every_report(tmp_path: Path) -> None:
    risk = write(tmp_path / "risk.jsonl", spread(ago(days=3, minutes=5), ago(minutes=1), 200))
    seen = every_report(tmp_path, risk, tmp_path / "no-audit.jsonl")
    assert seen["gate"][0] == 0 and seen["gate"][1]["verdict"] == "GO"
    assert seen["bundle"]["verdict"] == "GO" and seen["bundle"]["duration"]["left_s"] == 0
    for page in ("gate_html", "analyze_html", "bundle_html"):
        verdict, line = seen[page][1]
        assert verdict == "GO" and "the minimum duration is met" in line, page


def test_an_unreadable_audit_log_costs_the_bundle_nothing(tmp_path: Path) -> None:
    """analyze names it (exit 2, one line); triage judges from the risk logs and lists the
    audit log as unavailable."""
    risk = write(tmp_path / "risk.jsonl", spread(ago(minutes=62), ago(minutes=1), 80))
    folder = tmp_path / "audit-is-a-folder"
    folder.mkdir()
    html_out = tmp_path / "a.html"
    argv = ["--risk-log", str(risk), "--audit-log", str(folder), "--html", str(html_out)]
    assert analyze_main([*argv, "--no-progress"]) == 2
    bundle = tmp_path / "b.tar.gz"
    assert (
        triage.main(["--out", str(bundle), "--risk-log", str(risk), "--audit-log", str(folder)])
        == 0
    )
    with tarfile.open(bundle, mode="r:gz") as tar:
        f = tar.extractfile(f"{triage.PREFIX}/gate-stage-1.json")
        assert f is not None
        verdict = json.loads(f.read())
        m = tar.extractfile(f"{triage.PREFIX}/MANIFEST.json")
        assert m is not None
        manifest = json.loads(m.read())
    assert verdict["verdict"] == "HOLD" and verdict["duration"]["source"] == "risk-log"
    assert "flag-audit.jsonl" in {u["name"] for u in manifest["unavailable"]}
