"""``partial-trust flags`` through the real entry point, as an operator would run it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from partial_trust.flags import flagfile
from tests.support.procs import REPO, partial_trust

AUDIT = Path(tempfile.mkdtemp(prefix="pt-cli-audit-")) / "audit.jsonl"


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        partial_trust("flags", *args),
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "PARTIAL_TRUST_FLAGS_AUDIT_LOG": str(AUDIT), **(env or {})},
        timeout=30,
        check=False,
    )


def test_show_prints_every_corridor_flag(flag_file: Path) -> None:
    result = run("show", "--file", str(flag_file))
    assert result.returncode == 0, result.stderr
    for key in flagfile.KNOWN_FLAGS:
        assert key in result.stdout
    shown = json.loads(run("show", "--json", "--file", str(flag_file)).stdout)
    values = {row["flag"]: row["value"] for row in shown["flags"]}
    assert values[flagfile.ENABLED] is False
    assert values[flagfile.SAMPLE_RATE] == 0.01


def test_file_defaults_to_the_environment_variable(flag_file: Path) -> None:
    result = run("kill", env={"PARTIAL_TRUST_FLAGS_FILE": str(flag_file)})
    assert result.returncode == 0, result.stderr
    assert str(flag_file) in result.stdout


def test_set_kill_resume_round_trip(flag_file: Path) -> None:
    result = run("set", flagfile.SAMPLE_RATE, "0.05", "--file", str(flag_file), "--reason", "s2")
    assert result.returncode == 0, result.stderr
    assert "0.01 -> 0.05" in result.stdout
    assert run("resume", "--file", str(flag_file)).returncode == 0
    doc = flagfile.load(flag_file)
    assert flagfile.served_value(doc.flags[flagfile.ENABLED])[0] is True
    result = run("kill", "--file", str(flag_file), "--reason", "error rate over 5%")
    assert result.returncode == 0
    assert "true -> false" in result.stdout
    meta = flagfile.load(flag_file).flags[flagfile.ENABLED].metadata or {}
    assert meta["changeReason"] == "error rate over 5%"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((flagfile.SAMPLE_RATE, "7"), "not a number in [0, 1]"),
        ((flagfile.SAMPLE_RATE, "abc"), "not a number in [0, 1]"),
        ((flagfile.TIMEOUT_MS, "0"), "milliseconds > 0"),
        ((flagfile.ENABLED, "maybe"), "not a boolean"),
        (("partial-trust-colour", "red"), "invalid choice"),
    ],
)
def test_bad_values_exit_2_and_leave_the_file_alone(
    flag_file: Path, args: tuple[str, str], message: str
) -> None:
    before = flag_file.read_bytes()
    result = run("set", *args, "--file", str(flag_file))
    assert result.returncode == 2
    assert message in result.stderr
    assert flag_file.read_bytes() == before


def test_kill_on_a_broken_file_replaces_it_and_resume_refuses(tmp_path: Path) -> None:
    broken = tmp_path / "f.json"
    shipped = (REPO / "flags" / "partial-trust.flagd.json").read_text()
    broken.write_text(shipped.replace('"default": 200', '"default": ' + "9" * 5000))
    result = run("resume", "--file", str(broken))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "only 'kill' replaces a broken file" in result.stderr
    assert "left unchanged" in result.stderr
    assert "9" * 5000 in broken.read_text()
    result = run("kill", "--file", str(broken), "--reason", "drill")
    assert result.returncode == 0, result.stderr
    assert "was broken and has been replaced" in result.stdout
    assert flagfile.served_value(flagfile.load(broken).flags[flagfile.ENABLED])[0] is False
    line = json.loads(AUDIT.read_text().splitlines()[-1])
    replaced = line["replaced_broken_file"]
    assert line["new"] is False and "flag 'partial-trust-timeout-ms'" in replaced
    assert "outside" in replaced


def test_kill_on_a_directory_explains_and_exits_2(tmp_path: Path) -> None:
    (tmp_path / "f.json").mkdir()
    result = run("kill", "--file", str(tmp_path / "f.json"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "it is a directory" in result.stderr
    assert "already fail closed (corridor off)" in result.stderr


def test_serve_runs_the_console() -> None:
    result = run("serve", "--help")
    assert result.returncode == 0
    assert "--audit-log" in result.stdout


def test_cli_changes_are_audited(tmp_path: Path) -> None:
    path = tmp_path / "f.json"
    shutil.copy(REPO / "flags" / "partial-trust.flagd.json", path)
    audit = tmp_path / "audit.jsonl"
    result = run(
        "kill",
        "--file",
        str(path),
        "--reason",
        "drill",
        env={"PARTIAL_TRUST_FLAGS_AUDIT_LOG": str(audit)},
    )
    assert result.returncode == 0, result.stderr
    (line,) = [json.loads(x) for x in audit.read_text().splitlines()]
    assert (line["source"], line["key"], line["reason"]) == ("cli", flagfile.ENABLED, "drill")


def test_show_names_the_environment_ceilings(flag_file: Path) -> None:
    flagfile.set_flag(flag_file, flagfile.SAMPLE_RATE, 1.0)
    flagfile.resume(flag_file)
    env = {"PARTIAL_TRUST_ENABLED": "false", "PARTIAL_TRUST_SAMPLE_RATE": "0.01"}
    shown = json.loads(run("show", "--json", "--file", str(flag_file), env=env).stdout)
    limited = {row["flag"]: row["limited_by"] for row in shown["flags"]}
    assert limited[flagfile.ENABLED] == "env PARTIAL_TRUST_ENABLED"
    assert limited[flagfile.SAMPLE_RATE] == "env PARTIAL_TRUST_SAMPLE_RATE"
    assert shown["effective"]["enabled"] is False
    assert shown["effective"]["limits"]["enabled"] == "env PARTIAL_TRUST_ENABLED"
    text = run("show", "--file", str(flag_file), env={"PARTIAL_TRUST_SAMPLE_RATE": "0.01"}).stdout
    assert "[limited by env PARTIAL_TRUST_SAMPLE_RATE]" in text
    assert "sample_rate" in text and "0.01" in text and "decided by env" in text
