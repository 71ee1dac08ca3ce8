"""The runbook's ``python3 scripts/analyze_partial_trust.py`` on a host with no packages.

A venv made ``--without-pip`` is a Python 3.11 with the standard library alone; ``-I`` keeps
user site-packages and ``PYTHON*`` variables out. From there the script must pass its
self-test and give the same figures, byte for byte, as the installed tool (which validates
with pydantic) on a log mixing records, look-alikes and garbage.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from partial_trust.apps.analysis import selftest
from tests.support.procs import REPO

SCRIPT = REPO / "scripts" / "analyze_partial_trust.py"
THIRD_PARTY = ("pydantic", "httpx", "yaml", "starlette", "prometheus_client", "openfeature")


@pytest.fixture(scope="module")
def bare_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    venv = tmp_path_factory.mktemp("bare") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    for name in THIRD_PARTY:
        probe = subprocess.run([python, "-I", "-c", f"import {name}"], capture_output=True)
        assert probe.returncode != 0, f"{name} is importable: the Python is not bare"
    return python


def analyze(python: Path | str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run(
        [str(python), "-I", str(SCRIPT), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_self_test_passes_on_a_bare_python(bare_python: Path, tmp_path: Path) -> None:
    done = analyze(bare_python, "--self-test", cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr
    assert "self-test passed" in done.stdout and "Traceback" not in done.stderr


def test_a_bare_python_gives_the_installed_tools_figures(bare_python: Path, tmp_path: Path) -> None:
    rows: list[selftest.Row] = [
        ("2026-11-23T10:00:00.000Z", "error", "llm_timeout", 200.0, None, None),
        ("2026-11-23T10:00:00+01:00", "accepted_llm", "accepted", 12, True, True),
        ("2028-02-29T10:00:00Z", "skipped", "flags_unavailable", None, None, None),
        ("2026-11-23T10:00:00Z", "accepted_llm", "llm_timeout", 1.0, True, True),  # no such pair
    ]
    lines = [
        *selftest.messy_lines(),
        *map(selftest.canonical, rows),
        '{"timestamp":"2026-11-23T10:00:00Z","status":"error"}',
        "\ufeff"
        + selftest.canonical(("2026-11-23T11:00:00Z", "error", "circuit_open", 0, None, None)),
    ]
    log = tmp_path / "risk.jsonl"
    log.write_text("\n".join(lines) + "\n", encoding="utf-8")
    args = ("--risk-log", str(log), "--output-json", "-", "--no-progress", "--jobs", "1")
    bare = analyze(bare_python, *args, cwd=tmp_path)
    full = analyze(sys.executable, *args, cwd=tmp_path)
    assert bare.returncode == full.returncode == 0, bare.stderr + full.stderr
    figures = json.loads(bare.stdout)
    assert figures == json.loads(full.stdout)
    # 24 records + 2 foreign (messy_lines), then 4 valid and 2 look-alikes refused by both
    assert (figures["records"], figures["input"]["foreign_lines"]) == (28, 4), figures["input"]


def test_the_analyzer_imports_no_web_or_flag_stack() -> None:
    """With everything installed, analysis still loads only what it uses (pydantic, to
    validate): a report on a big log should not pay for the web server's imports."""
    code = (
        f"import sys; sys.path.insert(0, {str(REPO)!r});"
        "from partial_trust.apps.analysis.cli import analyze_main;"
        "assert analyze_main(['--self-test']) == 0;"
        "print(sorted({m.split('.')[0] for m in sys.modules}))"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        [sys.executable, "-I", "-c", code], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    loaded = set(ast.literal_eval(done.stdout.strip().splitlines()[-1]))
    assert "partial_trust" in loaded and "pydantic" in loaded  # the probe saw the validator
    assert not loaded & {"httpx", "yaml", "starlette", "prometheus_client", "openfeature"}
