"""Resume as the playbook says: after a kill or an auto-rollback, start again at stage 1.

``partial-trust flags resume`` (and the console's resume) put the sample rate back to 1% in
the same atomic write that turns the corridor on, unless ``--keep-rate`` / ``keep_rate``;
the audit line records which (``resume_at``, ``sample_rate_old``, ``sample_rate_new``), and
the stage clock restarts at it.
"""

from __future__ import annotations

import json
import os
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from partial_trust.apps.analysis.durations import audit_run
from partial_trust.flags import flagfile
from tests.apps.console.helpers import (
    AUTH,
    HOOK_AUTH,
    alert,
    audit_lines,
    client,
    copy_flags,
    make_console,
    notification,
)
from tests.support.procs import REPO, partial_trust


def served(path: Path, key: str) -> object:
    return flagfile.served_value(flagfile.load(path).flags[key])[0]


def at_stage_2_killed(path: Path) -> None:
    flagfile.set_flag(path, flagfile.SAMPLE_RATE, 0.05, reason="stage 2")
    flagfile.resume(path, keep_rate=True)
    flagfile.kill(path, reason="error spike")


def cli(path: Path, audit: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        partial_trust("flags", "resume", "--file", str(path), *args),
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "PARTIAL_TRUST_FLAGS_AUDIT_LOG": str(audit)},
        timeout=30,
        check=False,
    )


def test_flagfile_resume_restarts_at_stage_1_in_one_write(flag_file: Path) -> None:
    at_stage_2_killed(flag_file)
    change = flagfile.resume(flag_file, reason="cause fixed")
    assert (change.key, change.old, change.new) == (flagfile.ENABLED, False, True)
    assert change.rate == (0.05, 0.01) and change.kept_rate is False
    assert served(flag_file, flagfile.ENABLED) is True
    assert served(flag_file, flagfile.SAMPLE_RATE) == 0.01
    doc = json.loads(flag_file.read_text())
    rate = doc["flags"][flagfile.SAMPLE_RATE]
    assert rate["defaultVariant"] == "stage1"  # the preset's variant, not "custom"
    assert rate["metadata"]["changeReason"] == "cause fixed"  # the gate's records restart too


def test_flagfile_resume_keep_rate_and_already_on_keep_the_rate(flag_file: Path) -> None:
    at_stage_2_killed(flag_file)
    change = flagfile.resume(flag_file, keep_rate=True)
    assert change.rate == (0.05, 0.05) and change.kept_rate is True
    assert served(flag_file, flagfile.SAMPLE_RATE) == 0.05
    again = flagfile.resume(flag_file)  # already on: nothing to restart, the rate stays
    assert again.kept_rate is True and served(flag_file, flagfile.SAMPLE_RATE) == 0.05


def test_flagfile_resume_refuses_a_broken_file(flag_file: Path) -> None:
    flag_file.write_text("{not json")
    with pytest.raises(flagfile.FlagFileError, match="only 'kill' replaces"):
        flagfile.resume(flag_file)
    assert flag_file.read_text() == "{not json"


def test_cli_resume_goes_back_to_stage_1_and_audits_it(flag_file: Path, tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    at_stage_2_killed(flag_file)
    result = cli(flag_file, audit, "--reason", "rollback done")
    assert result.returncode == 0, result.stderr
    assert "false -> true" in result.stdout
    assert "partial-trust-sample-rate: 0.05 -> 0.01 (stage 1" in result.stdout
    assert served(flag_file, flagfile.SAMPLE_RATE) == 0.01
    (line,) = [json.loads(x) for x in audit.read_text().splitlines()]
    assert line["source"] == "cli" and line["resume_at"] == "stage 1"
    assert (line["sample_rate_old"], line["sample_rate_new"]) == (0.05, 0.01)


def test_cli_resume_keep_rate(flag_file: Path, tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    at_stage_2_killed(flag_file)
    result = cli(flag_file, audit, "--keep-rate")
    assert result.returncode == 0, result.stderr
    assert "0.05 -> 0.05 (kept)" in result.stdout
    assert served(flag_file, flagfile.SAMPLE_RATE) == 0.05
    (line,) = [json.loads(x) for x in audit.read_text().splitlines()]
    assert line["resume_at"] == "kept rate" and line["sample_rate_new"] == 0.05
    assert (
        "--keep-rate"
        in subprocess.run(
            partial_trust("flags", "resume", "--help"), capture_output=True, text=True, check=True
        ).stdout
    )


def test_resume_restarts_the_stage_clock(flag_file: Path, tmp_path: Path) -> None:
    """The audit lines a kill and a resume write are what the gate's clock reads."""
    audit = tmp_path / "audit.jsonl"
    at_stage_2_killed(flag_file)
    assert cli(flag_file, audit).returncode == 0
    records = [json.loads(x) for x in audit.read_text().splitlines()]
    later = datetime.now(UTC) + timedelta(minutes=1)
    run = audit_run(records, 0.01, later)
    assert run is not None and run[1] is None
    assert abs((run[0] - datetime.now(UTC)).total_seconds()) < 60


async def post(app: Any, action: str, **body: Any) -> Any:
    async with client(app) as c:
        return await c.post(f"/api/{action}", json=body, headers=AUTH)


@pytest.mark.anyio
async def test_console_resume_defaults_to_stage_1_after_an_auto_rollback(tmp_path: Path) -> None:
    flags = copy_flags(tmp_path)
    app = make_console(tmp_path, flags)
    assert (await post(app, "resume", reason="start", keep_rate=True)).status_code == 200
    assert (await post(app, "advance", reason="s2", override=True)).status_code == 200
    async with client(app) as c:  # the alert rolls the corridor back
        resp = await c.post("/alertmanager", json=notification(alert()), headers=HOOK_AUTH)
    assert resp.status_code == 200 and served(flags, flagfile.ENABLED) is False
    resp = await post(app, "resume", reason="cause fixed")
    assert resp.status_code == 200, resp.text
    assert served(flags, flagfile.SAMPLE_RATE) == 0.01
    line = audit_lines(tmp_path)[-1]
    assert line["action"] == "resume" and line["resume_at"] == "stage 1"
    assert (line["sample_rate_old"], line["sample_rate_new"]) == (0.05, 0.01)
    assert resp.json()["audit"]["resume_at"] == "stage 1"


@pytest.mark.anyio
async def test_console_resume_can_keep_the_rate(tmp_path: Path) -> None:
    flags = copy_flags(tmp_path)
    app = make_console(tmp_path, flags)
    at_stage_2_killed(flags)
    resp = await post(app, "resume", reason="blip, keep 5%", keep_rate=True)
    assert resp.status_code == 200, resp.text
    assert served(flags, flagfile.SAMPLE_RATE) == 0.05
    line = audit_lines(tmp_path)[-1]
    assert line["resume_at"] == "kept rate" and line["sample_rate_new"] == 0.05
    bad = await post(app, "resume", reason="x", keep_rate="perhaps")
    assert bad.status_code == 422
