"""The analyzer and the gate on hostile logs, as operators run them: real subprocesses.

For every hostile case (``hostile_corpus.HOSTILE``): ``gate`` never exits 0, exits 3 (cannot
evaluate) with exactly one line on stderr and never a traceback; ``analyze`` (through the
runbook's script) either writes strict JSON (no NaN/Infinity) or fails with one line; each
run finishes in bounded time, and its peak RSS (``wait4`` on that very process) stays under
150 MB, including for a 100 MB single line and a 400 MB gzip bomb. Odd but valid logs
(``TOLERATED``) are still judged: GO, like the clean log they differ from.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.apps.analysis.hostile_corpus import HOSTILE, TOLERATED

REPO = Path(__file__).resolve().parents[3]
PEAK_RSS = REPO / "tests" / "support" / "peak_rss.py"
SHIM = REPO / "scripts" / "analyze_partial_trust.py"
MAX_RSS_KB = 150 * 1024
TIMEOUT_S = 120  # generous: a 2-core machine shared with other test runs


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str
    max_rss_kb: int


def run(cmd: list[str], cwd: Path) -> Run:
    """Run ``cmd`` (``python ...``); its exit code, output and its own peak RSS (VmHWM, from
    ``tests/support/peak_rss.py``: ``wait4``'s figure includes this test process's size)."""
    peak = Path(tempfile.mkdtemp()) / "peak"
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "PEAK_RSS_FILE": str(peak)}
    cmd = [cmd[0], str(PEAK_RSS), *cmd[1:]]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                env=env)  # fmt: skip
        timer = threading.Timer(TIMEOUT_S, proc.kill)
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        proc.returncode = code = os.waitstatus_to_exitcode(status)
        assert code != -9, f"{cmd} ran longer than {TIMEOUT_S} s"
        out.seek(0)
        err.seek(0)
        rss_kb = int(peak.read_text()) if peak.exists() else usage.ru_maxrss
        return Run(code, out.read().decode(errors="replace"), err.read().decode(errors="replace"),
                   rss_kb)  # fmt: skip


def gate(arg: str, cwd: Path) -> Run:
    # --since: the data alone are judged here (the stage clock: test_gate_durations.py)
    return run([sys.executable, "-m", "partial_trust.apps.cli", "gate", "--stage", "1",
                "--risk-log", arg, "--since", "1970-01-01T00:00:00Z"], cwd)  # fmt: skip


def analyze(arg: str, cwd: Path) -> Run:
    return run([sys.executable, str(SHIM), "--risk-log", arg, "--output-json", "-"], cwd)


def strict_json(text: str) -> dict[str, object]:
    def refuse(name: str) -> object:
        raise AssertionError(f"non-strict JSON constant {name}")

    data = json.loads(text, parse_constant=refuse)
    assert isinstance(data, dict)
    return data


def one_line_no_traceback(r: Run) -> None:
    assert "Traceback" not in r.stderr, r.stderr
    assert r.stderr.count("\n") == 1 and r.stderr.endswith("\n"), r.stderr


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_logs_never_pass_the_gate(tmp_path: Path, case: str) -> None:
    arg = HOSTILE[case](tmp_path)
    g = gate(arg, tmp_path)
    assert g.code == 3, (g.code, g.stdout[-2000:], g.stderr)
    one_line_no_traceback(g)
    assert g.stderr.startswith("partial-trust gate: ") and "verdict: GO" not in g.stdout
    assert g.max_rss_kb < MAX_RSS_KB, g.max_rss_kb
    a = analyze(arg, tmp_path)
    assert "Traceback" not in a.stderr, a.stderr
    assert a.max_rss_kb < MAX_RSS_KB, a.max_rss_kb
    if a.code == 0:  # the log was read: strict JSON that says how much of it was foreign
        data = strict_json(a.stdout)
        info = data["input"]
        records = data["records"]
        assert isinstance(info, dict) and isinstance(records, int)
        assert info["foreign_share"] > 0.01 or records < 10, info
        assert a.stderr == "" or a.stderr.startswith("warning: "), a.stderr
    else:  # it could not be read (not a regular file, a bomb, ...): one line, exit 2
        assert a.code == 2 and a.stdout == "", (a.code, a.stdout)
        one_line_no_traceback(a)
        assert a.stderr.startswith("partial-trust analyze: "), a.stderr


@pytest.mark.parametrize("case", sorted(TOLERATED))
def test_odd_but_valid_logs_are_still_judged(tmp_path: Path, case: str) -> None:
    arg = TOLERATED[case](tmp_path)
    g = gate(arg, tmp_path)
    assert g.code == 0 and "verdict: GO" in g.stdout, (g.code, g.stdout, g.stderr)
    a = analyze(arg, tmp_path)
    assert a.code == 0, a.stderr
    data = strict_json(a.stdout)
    assert data["records"] == 200 or (case.startswith("foreign") and data["records"] == 400)


def test_the_runbook_script_refuses_hostile_input_in_one_line(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo.jsonl")
    cases = {
        "fifo": [str(tmp_path / "fifo.jsonl")],
        "missing": [str(tmp_path / "missing.jsonl")],
    }
    for name, args in cases.items():
        r = run([sys.executable, str(SHIM), "--risk-log", *args], tmp_path)
        assert r.code == 2, (name, r.code, r.stderr)
        one_line_no_traceback(r)
    since = "0001-01-01T00:00:00+01:00"  # before year 1 in UTC
    cmd = [
        sys.executable,
        "-m",
        "partial_trust.apps.cli",
        "gate",
        "--stage",
        "1",
        "--risk-log",
        "x",
    ]
    bad_time = run([*cmd, "--since", since], tmp_path)
    assert bad_time.code == 3 and "Traceback" not in bad_time.stderr, bad_time.stderr
