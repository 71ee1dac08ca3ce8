"""The CLI as operators run it: real subprocesses, real files, exit codes, the runbook shim."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from partial_trust.apps.analysis import selftest

REPO = Path(__file__).resolve().parents[3]
SHIM = REPO / "scripts" / "analyze_partial_trust.py"


def run(
    args: Sequence[str], cwd: Path = REPO, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "partial_trust.apps.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", **(env or {})},
    )


def log(path: Path, rows: Sequence[selftest.Row]) -> Path:
    path.write_text("".join(selftest.canonical(r) + "\n" for r in rows), encoding="utf-8")
    return path


def healthy_rows(n: int = 60) -> list[selftest.Row]:
    """n accepted records over two days (stable), 100 ms each: GO for stage 1."""
    return [
        (
            f"2026-11-2{3 + i % 2}T09:{i % 60:02d}:00.000Z",
            "accepted_llm",
            "accepted",
            100.0,
            True,
            True,
        )
        for i in range(n)
    ]


def test_self_test_passes() -> None:
    proc = run(["analyze", "--self-test"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "self-test passed" in proc.stdout and "FAIL" not in proc.stdout


def test_analyze_table_and_json(tmp_path: Path) -> None:
    src = log(tmp_path / "risk.jsonl", selftest.ROWS)
    out = tmp_path / "out" / "report.json"
    proc = run(["analyze", "--risk-log", str(src), "--output-json", str(out)])
    assert proc.returncode == 0, proc.stderr
    assert "error_rate" in proc.stdout and "6 / 17" in proc.stdout
    assert proc.stderr == ""  # no progress bar when stderr is not a terminal
    data = json.loads(out.read_text())
    assert data["records"] == 24 and data["latency_p95"] == 286.0
    assert data["rates"]["intent_mismatch_rate"] == {
        "value": 0.1,
        "numerator": 1,
        "denominator": 10,
    }


def test_json_to_stdout_is_pure_json(tmp_path: Path) -> None:
    src = log(tmp_path / "risk.jsonl", selftest.ROWS)
    proc = run(["analyze", "--risk-log", str(src), "--output-json", "-"])
    assert json.loads(proc.stdout)["sampled"] == 17


def test_globs_gzip_and_worker_processes_agree(tmp_path: Path) -> None:
    log(tmp_path / "risk.jsonl", selftest.ROWS[:8])
    log(tmp_path / "risk.jsonl.1", selftest.ROWS[8:16])
    with gzip.open(tmp_path / "risk.jsonl.2.gz", "wt") as f:
        f.write("".join(selftest.canonical(r) + "\n" for r in selftest.ROWS[16:]))
    pattern = str(tmp_path / "risk.jsonl*")
    for jobs in ("1", "2"):
        proc = run(["analyze", "--risk-log", pattern, "--jobs", jobs, "--output-json", "-"])
        data = json.loads(proc.stdout)
        assert (data["records"], data["latency_p95"], len(data["input"]["files"])) == (24, 286.0, 3)


def test_help_defines_every_rate() -> None:
    text = run(["analyze", "--help"]).stdout
    for phrase in (
        "error / sampled",
        "accepted_llm / sampled",
        "intent_match false",
        "h = (n-1)*0.95",
    ):
        assert phrase in text
    gate_help = run(["gate", "--help"]).stdout
    assert "Stable acceptance_rate" in gate_help and "rate[i] >= 0.8 * rate[i-1]" in gate_help


def test_foreign_and_torn_lines_are_reported_not_fatal(tmp_path: Path) -> None:
    src = tmp_path / "messy.jsonl"
    src.write_text("\n".join(selftest.messy_lines()) + "\n" + selftest.TORN)
    proc = run(["analyze", "--risk-log", str(src)])
    assert proc.returncode == 0
    assert "2 foreign lines" in proc.stdout and "1 torn lines" in proc.stdout
    assert "warning" in proc.stderr
    assert run(["analyze", "--risk-log", str(src), "--strict"]).returncode == 1


@pytest.mark.parametrize(
    "target", ["missing.jsonl", "nomatch-*.jsonl", "broken.jsonl.gz", "emptydir"]
)
def test_unreadable_input_is_a_clear_error_exit_2(tmp_path: Path, target: str) -> None:
    (tmp_path / "broken.jsonl.gz").write_bytes(gzip.compress(b'{"a": 1}\n' * 100)[:30])
    (tmp_path / "emptydir").mkdir()
    proc = run(["analyze", "--risk-log", str(tmp_path / target)])
    assert proc.returncode == 2
    assert "risk log" in proc.stderr
    assert "Traceback" not in proc.stderr
    gate = run(["gate", "--stage", "1", "--risk-log", str(tmp_path / target)])
    assert gate.returncode == 3 and "Traceback" not in gate.stderr


def test_gate_exit_codes(tmp_path: Path) -> None:
    good = log(tmp_path / "good.jsonl", healthy_rows())
    proc = run(["gate", "--stage", "1", "--risk-log", str(good)])
    # GO on the data, but nothing says stage 1 ran 3 days at 1% (the rows are at 5%): HOLD
    assert proc.returncode == 1 and "verdict: HOLD" in proc.stdout, proc.stdout
    since = ["--since", "2026-11-01T00:00:00Z"]  # the stage began a month ago
    proc = run(["gate", "--stage", "1", "--risk-log", str(good), *since])
    assert proc.returncode == 0, proc.stdout
    assert "verdict: GO" in proc.stdout
    few = log(tmp_path / "few.jsonl", healthy_rows(49))
    assert run(["gate", "--stage", "1", "--risk-log", str(few)]).returncode == 1
    errors: list[selftest.Row] = [
        (r[0], "error", "llm_timeout", 200.0, None, None) for r in healthy_rows(11)
    ]
    bad = log(tmp_path / "bad.jsonl", healthy_rows(89) + errors)  # 11 / 100 > 0.10
    out = tmp_path / "gate.json"
    proc = run(["gate", "--stage", "1", "--risk-log", str(bad), "--output-json", str(out)])
    assert proc.returncode == 2 and "ROLLBACK" in proc.stdout
    data = json.loads(out.read_text())
    assert data["verdict"] == "ROLLBACK" and data["figures"]["error_rate"] == 0.11
    assert {c["result"] for c in data["criteria"]} <= {"pass", "fail", "insufficient-data"}
    assert run(["gate", "--stage", "4", "--risk-log", str(good)]).returncode == 3
    empty = log(tmp_path / "empty.jsonl", [])  # no evidence at all: cannot evaluate, not hold
    proc = run(["gate", "--stage", "3", "--risk-log", str(empty)])
    assert proc.returncode == 3 and proc.stderr.count("\n") == 1, proc.stderr
    assert "cannot evaluate" in proc.stderr and proc.stdout == ""


def test_runbook_shim_works_from_another_cwd(tmp_path: Path) -> None:
    (tmp_path / "logs").mkdir()
    log(tmp_path / "logs" / "partial_trust_risk.jsonl", selftest.ROWS)
    cmd = [
        sys.executable,
        str(SHIM),
        "--risk-log",
        "logs/partial_trust_risk.jsonl",
        "--output-json",
        "logs/partial_trust_report.json",
    ]
    env = {"PATH": "/usr/bin:/bin"}  # no PYTHONPATH: the shim finds the package itself
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    report = json.loads((tmp_path / "logs" / "partial_trust_report.json").read_text())
    assert report["error_rate"] == round(6 / 17, 6)
    selftest_run = subprocess.run(
        [sys.executable, str(SHIM), "--self-test"], cwd=tmp_path, capture_output=True, env=env
    )
    assert selftest_run.returncode == 0


def test_progress_bar_only_on_a_terminal() -> None:
    import io

    from partial_trust.apps.analysis.report import Progress

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    tty, pipe = Tty(), io.StringIO()
    for stream in (tty, pipe):
        bar = Progress(stream)
        bar(50 << 20, 100 << 20)
        bar(100 << 20, 100 << 20)
    assert "100.0%" in tty.getvalue() and tty.getvalue().endswith("\n")
    assert pipe.getvalue() == ""


def test_without_risk_log_the_exported_variable_names_it(tmp_path: Path) -> None:
    """``partial-trust init`` says to export PARTIAL_TRUST_RISK_LOG_PATH: analyze and gate
    then read that file without ``--risk-log``, and say so; unset, they still refuse."""
    src = log(tmp_path / "risk.jsonl", healthy_rows())
    env = {"PARTIAL_TRUST_RISK_LOG_PATH": str(src)}
    out = tmp_path / "report.json"
    analyzed = run(["analyze", "--output-json", str(out)], cwd=tmp_path, env=env)
    assert analyzed.returncode == 0, analyzed.stderr
    assert f"reading PARTIAL_TRUST_RISK_LOG_PATH: {src}" in analyzed.stderr
    assert json.loads(out.read_text())["sampled"] == 60
    gated = run(["gate", "--stage", "1", "--since", "2026-11-23T00:00:00Z"], cwd=tmp_path, env=env)
    assert gated.returncode in (0, 1) and "exactly one source" not in gated.stderr, gated.stderr
    assert f"reading PARTIAL_TRUST_RISK_LOG_PATH: {src}" in gated.stderr
    for argv, code in ((["analyze"], 2), (["gate", "--stage", "1"], 3)):  # their error codes
        refused = run(argv, cwd=tmp_path)
        assert refused.returncode == code and "PARTIAL_TRUST_RISK_LOG_PATH" in refused.stderr
