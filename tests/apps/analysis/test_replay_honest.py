"""``replay`` never passes on nothing, and its default run shows its check at work.

Each failure is a real ``partial-trust replay`` subprocess: an LLM on a closed port, a real
``llm-sim`` that hangs every call (short timeout) and one that answers garbage every time all
FAIL with exit 3 (nothing judged) instead of "PASS, 0% disagreement". The default run uses
the in-process sim's ``disagree`` mode, and the disagreements it injects are exactly the ones
the check counts.
"""

from __future__ import annotations

import asyncio
import copy
import json
import random
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from partial_trust.apps.analysis import gate, replay
from partial_trust.apps.llm_sim import Mode, SimConfig, create_app
from partial_trust.apps.llm_sim.answers import correct_candidate, corrupt, parse_command
from partial_trust.apps.llm_sim.app import FAULT_HEADER
from partial_trust.middleware.baseline import route
from partial_trust.middleware.policy import PolicyRegistry
from tests.support.procs import REPO, free_port, partial_trust, run_server

POLICY = REPO / "llm_policy" / "llm-policy.yaml"


def cli(tmp: Path, *args: str, timeout: float = 120) -> tuple[int, str, dict[str, Any]]:
    """Run ``partial-trust replay`` for real; (exit code, stdout, the JSON it wrote)."""
    out = tmp / "replay.json"
    try:
        proc = subprocess.run(
            partial_trust("replay", "--output-json", str(out), *args),
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=timeout,
            env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
        )
        assert "Traceback" not in proc.stderr, proc.stderr
        data = json.loads(out.read_text(encoding="utf-8")) if out.exists() else {}
        return proc.returncode, proc.stdout, data
    finally:
        out.unlink(missing_ok=True)


@pytest.fixture
def sim_process(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A real ``partial-trust llm-sim`` forced to one mode; yields its /v1 URL."""
    port = free_port()
    argv = partial_trust("llm-sim", "--port", str(port), "--force", request.param)
    with run_server(argv, port=port, ready_path="/health", log_path=tmp_path / "sim.log") as s:
        yield s.url + "/v1"


def assert_nothing_judged(code: int, stdout: str, data: dict[str, Any], reason: str) -> None:
    assert code == 3, stdout
    assert data["verdict"] == "FAIL" and not data["passed"] and data["exit_code"] == 3
    assert data["aborted"] and data["errors"] == data["corridor_commands"] == 10
    assert data["reason_counts"] == {reason: 10}
    assert "unreachable, hanging or answers garbage" in data["nothing_judged"]
    assert "FAIL (exit 3)" in stdout and "PASS" not in stdout


def test_unreachable_llm_fails(tmp_path: Path) -> None:
    port = free_port()  # bound and released: nothing listens there
    code, stdout, data = cli(tmp_path, "--llm-url", f"http://127.0.0.1:{port}/v1")
    assert_nothing_judged(code, stdout, data, "llm_unavailable")
    assert data["source"] == {"kind": "url"}


@pytest.mark.parametrize("sim_process", ["hang"], indirect=True)
def test_hanging_llm_fails_quickly(sim_process: str, tmp_path: Path) -> None:
    code, stdout, data = cli(tmp_path, "--llm-url", sim_process, "--timeout-ms", "150", timeout=60)
    assert_nothing_judged(code, stdout, data, "llm_timeout")


@pytest.mark.parametrize("sim_process", ["malformed"], indirect=True)
def test_always_malformed_llm_fails(sim_process: str, tmp_path: Path) -> None:
    code, stdout, data = cli(tmp_path, "--llm-url", sim_process)
    assert_nothing_judged(code, stdout, data, "llm_invalid_response")


def test_all_errors_fail_even_without_giving_up(tmp_path: Path) -> None:
    corpus = tmp_path / "c.json"
    commands = json.loads(replay.SHIPPED_CORPUS.read_text(encoding="utf-8"))[:5]
    corpus.write_text(json.dumps(commands), encoding="utf-8")
    code, _, data = cli(
        tmp_path, "--corpus", str(corpus), "--sim-force", "malformed", "--give-up-after", "0"
    )
    assert code == 3 and not data["aborted"] and data["runs"] == 2
    assert data["error_rate"] == 1.0 and data["disagreement_rate"] == 0.0


def test_default_run_shows_a_disagreement_the_check_counts(tmp_path: Path) -> None:
    html = tmp_path / "replay.html"
    code, stdout, data = cli(tmp_path, "--html", str(html))
    # Documented: 5% injected, seed 0, shipped corpus -> 5 of 240, above the 1% line (an
    # injection on one item on a list the text does not name changes nothing: no wrong answer
    # of that command passes every acceptance rule).
    assert data["source"] == {"kind": "llm-sim", "seed": 0, "force": None, "disagree_rate": 0.05}
    assert (data["disagreements"], data["corridor_commands"]) == (5, 240)
    assert data["disagreement_rate"] == pytest.approx(5 / 240)
    assert code == 1 and data["verdict"] == "FAIL" and data["deterministic"]
    assert data["failures"] == ["disagreement_rate 2.08% > 1.00%"]
    assert "disagrees ON PURPOSE" in stdout and "FAIL (exit 1)" in stdout
    page = html.read_text(encoding="utf-8")
    assert 'id="verdict"' in page and ">FAIL<" in page and "disagreement_rate 2.08%" in page
    assert "<script" not in page and "https://" not in page and "src=" not in page
    # The same disagreements under a looser line: counted, and a PASS.
    code, _, loose = cli(tmp_path, "--max-disagreement", "0.03")
    assert code == 0 and loose["passed"] and loose["disagreements"] == 5
    # A clean sim: the corridor's own code agrees with the baseline everywhere.
    code, _, clean = cli(tmp_path, "--sim-disagree-rate", "0")
    assert code == 0 and clean["disagreements"] == 0 and clean["passed"]


class Recording(httpx.AsyncBaseTransport):
    """The in-process sim, noting each request it answered in ``disagree`` mode."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.inner = httpx.ASGITransport(app=app)
        self.disagreed: list[bytes] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        response = await self.inner.handle_async_request(request)
        if response.headers.get(FAULT_HEADER) == Mode.DISAGREE.value:
            self.disagreed.append(body)
        return response


def changes_the_decision(body: bytes) -> bool:
    """The sim's disagree answer for this request differs from the right one (a single item on
    a list the text does not name has no wrong answer every acceptance rule takes)."""
    command = parse_command(body)
    right = correct_candidate(command, route, 0.9)
    wrong = corrupt(copy.deepcopy(right), Mode.DISAGREE, command, SimConfig(), random.Random(0))
    return bool(wrong != right)


def test_every_injected_disagreement_is_counted() -> None:
    transports: list[Recording] = []

    def transport() -> httpx.AsyncBaseTransport:
        transports.append(Recording(create_app(SimConfig(seed=5, disagree_rate=0.1))))
        return transports[-1]

    commands = replay.load_corpus(replay.SHIPPED_CORPUS)
    report = asyncio.run(replay.replay(commands, PolicyRegistry.load(POLICY), transport=transport))
    first = transports[0]
    injected = first.app.state.sim.counts[Mode.DISAGREE]
    assert injected == len(first.disagreed) > 0
    changed = sum(changes_the_decision(body) for body in first.disagreed)
    assert 0 < changed < injected  # both kinds occur, so the count below is not a tautology
    assert len(report.disagreements) == changed
    assert report.exit_code == 1 and report.deterministic


def test_error_rate_line_fails_a_run_that_mostly_works() -> None:
    commands = replay.load_corpus(replay.SHIPPED_CORPUS)
    transport = replay.sim_transport(SimConfig(seed=1, error_rate=0.12))
    report = asyncio.run(replay.replay(commands, PolicyRegistry.load(POLICY), transport=transport))
    assert not report.aborted and report.nothing_judged is None
    assert report.error_rate is not None and report.error_rate > replay.DEFAULT_MAX_ERROR_RATE
    assert report.disagreement_rate == 0.0  # errors fall back: only the error line catches it
    assert report.exit_code == 1 and any(f.startswith("error_rate") for f in report.failures)


def test_error_line_is_the_runbook_stage_1_go_bar() -> None:
    bars = [b.limit for b in gate.STAGES[1].go if b.figure == "error_rate"]
    assert bars == [replay.DEFAULT_MAX_ERROR_RATE]
