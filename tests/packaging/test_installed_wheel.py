"""The installed package works where users run it: from an empty directory, as a new user.

One wheel, one fresh venv (module scope: the install is the slow part), then the issue's
walk-through with real processes: ``--version``; ``serve`` with no flag file starts with the
corridor off and says why (on ``/health`` and in one log line, no traceback); ``flags show``
refuses in one line; ``init`` writes a deployment, ``flags resume`` turns it on, a sampled
request reaches ``llm-sim`` and lands in the risk log; ``analyze`` and ``gate`` read it.
"""

from __future__ import annotations

import json
import shlex
import tomllib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.stack import shopping_command, sim_calls, wait_lines
from tests.packaging.wheel import Installed, build_and_install, serving, wheel_names, wheel_text
from tests.support.procs import REPO, free_port

pytestmark = pytest.mark.integration
VERSION = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
PRIVATE = ("milk", "eggs", "l-1", "l-2", "u-1", "cmd-")


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    return build_and_install(tmp_path_factory.mktemp("wheel"))


@pytest.fixture
def empty(tmp_path: Path) -> Iterator[Path]:
    """An empty working directory, checked empty again by the tests that need it."""
    directory = tmp_path / "empty"
    directory.mkdir()
    yield directory


def test_the_wheel_ships_data_types_and_license(installed: Installed) -> None:
    names = wheel_names(installed.wheel)
    # one import root: the folders are under it, and nothing generic is installed beside it
    assert {name.split("/")[0] for name in names if not name.split("/")[0].endswith(
        (".dist-info", ".data"))} == {"partial_trust"}  # fmt: skip
    for package in ("", "middleware/", "flags/", "llm_policy/", "apps/"):
        assert f"partial_trust/{package}py.typed" in names or package == "apps/"
    assert {
        "partial_trust/llm_policy/llm-policy.yaml",
        "partial_trust/flags/partial-trust.flagd.json",
        "partial_trust/apps/console/page.html",
    } <= names
    info = f"partial_trust_corridor-{VERSION}.dist-info"
    assert "Apache License" in wheel_text(installed.wheel, f"{info}/licenses/LICENSE")
    meta = wheel_text(installed.wheel, f"{info}/METADATA")
    assert "License-Expression: Apache-2.0" in meta
    assert "Classifier: Typing :: Typed" in meta
    for dist in ("sdk", "provider-flagd", "hooks-opentelemetry"):
        dist = f"openfeature-{dist}"
        (line,) = [x for x in meta.splitlines() if x.startswith(f"Requires-Dist: {dist}")]
        assert "<0." in line, line  # 0.x: bounded at the next minor


def test_version(installed: Installed, empty: Path) -> None:
    done = installed.run("--version", cwd=empty)
    assert (done.returncode, done.stdout.strip()) == (0, f"partial-trust {VERSION}")


def test_serve_without_a_flag_file_starts_with_the_corridor_off(
    installed: Installed, empty: Path, tmp_path: Path
) -> None:
    log = tmp_path / "serve.log"
    missing = empty / "flags" / "partial-trust.flagd.json"
    with serving(installed, "serve", port=free_port(), cwd=empty, log_path=log,
                 ready_path="/health") as app:  # fmt: skip
        health = httpx.get(f"{app.url}/health", timeout=10).json()["partial_trust"]
        route = httpx.post(f"{app.url}/route", json=shopping_command("cmd-1"), timeout=10)
    assert route.status_code == 200  # the baseline answers; the corridor is off
    flags = health["flags"]
    assert flags["flags_available"] is False and health["effective"]["enabled"] is False
    assert str(missing) in flags["last_error"] and "cannot read" in flags["last_error"]
    output = log.read_text()
    assert "Traceback" not in output and "Error:" not in output
    (said,) = [line for line in output.splitlines() if str(missing) in line]
    assert "corridor off" in said


def test_flags_show_without_a_flag_file_is_one_line(installed: Installed, empty: Path) -> None:
    done = installed.run("flags", "show", cwd=empty)
    assert done.returncode == 2
    assert done.stdout == "" and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "partial-trust.flagd.json" in done.stderr and "Traceback" not in done.stderr


def _exports(stdout: str) -> dict[str, str]:
    pairs = [shlex.split(line.removeprefix("export ")) for line in stdout.splitlines()]
    return dict(pair[0].split("=", 1) for pair in pairs)


def test_init_resume_a_sampled_request_then_analyze_and_gate(
    installed: Installed, empty: Path, tmp_path: Path
) -> None:
    done = installed.run("init", "site", cwd=empty)
    assert done.returncode == 0, done.stderr
    env = _exports(done.stdout)
    site = empty / "site"
    assert env["PARTIAL_TRUST_FLAGS_FILE"] == str(site / "flags" / "partial-trust.flagd.json")
    assert (site / "logs").is_dir()
    assert installed.run("init", "site", cwd=empty).returncode == 2  # never overwrites
    policy = Path(env["LLM_POLICY_PATH"])  # the deployment's copy is the one in force
    policy.write_text(policy.read_text().replace("enabled: false", "enabled: true", 1))
    for args in (("flags", "resume"), ("flags", "set", "partial-trust-sample-rate", "1")):
        changed = installed.run(*args, cwd=empty, env=env)
        assert changed.returncode == 0, changed.stderr

    sim_port, app_port = free_port(), free_port()
    env["LLM_BASE_URL"] = f"http://127.0.0.1:{sim_port}/v1"
    risk_log = Path(env["PARTIAL_TRUST_RISK_LOG_PATH"])
    with (
        serving(installed, "llm-sim", port=sim_port, cwd=empty, log_path=tmp_path / "sim.log",
                ready_path="/sim/stats") as sim,
        serving(installed, "serve", port=app_port, cwd=empty, env=env,
                log_path=tmp_path / "app.log", ready_path="/health") as app,
    ):  # fmt: skip
        assert httpx.get(f"{app.url}/health", timeout=10).json()["partial_trust"]["effective"][
            "enabled"
        ]
        for i in range(12):
            answer = httpx.post(f"{app.url}/route", json=shopping_command(f"cmd-{i}"), timeout=10)
            assert answer.status_code == 200
        lines = wait_lines(risk_log, 12, timeout_s=15)
        assert sim_calls(sim) >= 12
    assert len(lines) == 12 and {line["status"] for line in lines} == {"accepted_llm"}
    assert not any(p in risk_log.read_text() for p in PRIVATE)
    assert "Traceback" not in (tmp_path / "app.log").read_text()

    analyzed = installed.run("analyze", "--risk-log", str(risk_log), "--output-json", "-",
                             "--no-progress", cwd=empty)  # fmt: skip
    assert analyzed.returncode == 0, analyzed.stderr
    figures = json.loads(analyzed.stdout)
    assert figures["sampled"] == 12 and figures["acceptance_rate"] == 1.0
    gated = installed.run("gate", "--stage", "1", "--risk-log", str(risk_log), "--no-progress",
                          cwd=empty)  # fmt: skip
    assert gated.returncode == 1, gated.stdout + gated.stderr  # NO-GO: too few records yet
    assert "NO-GO" in gated.stdout and "Traceback" not in gated.stderr
