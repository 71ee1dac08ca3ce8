"""``partial-trust replay``: the shipped corpus, refused and accepted-but-different candidates,
nondeterminism, bad input, and the CLI as a real subprocess."""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from partial_trust.apps.analysis import replay
from partial_trust.apps.llm_sim import Mode, SimConfig
from partial_trust.contracts import CommandContext, CommandDTO
from partial_trust.middleware.baseline import route
from partial_trust.middleware.policy import PolicyRegistry

REPO = Path(__file__).resolve().parents[3]
POLICY = REPO / "llm_policy" / "llm-policy.yaml"


def corpus() -> list[CommandDTO]:
    return replay.load_corpus(replay.SHIPPED_CORPUS)


def run(
    transport: replay.TransportFactory, commands: list[CommandDTO] | None = None
) -> replay.ReplayReport:
    return asyncio.run(
        replay.replay(commands or corpus(), PolicyRegistry.load(POLICY), transport=transport)
    )


def completion(candidate: dict[str, Any]) -> httpx.Response:
    content = json.dumps(candidate, ensure_ascii=False)
    return httpx.Response(200, json={"choices": [{"message": {"content": content}}]})


def user_command(request: httpx.Request) -> dict[str, Any]:
    messages = json.loads(request.content)["messages"]
    content: dict[str, Any] = json.loads(messages[-1]["content"])
    return content


def milk_only(request: httpx.Request) -> httpx.Response:
    """A confident model that always adds one milk, to the list the text names or else the
    default one (a list the baseline read and this model did not would be refused first, as
    ``list_id_not_allowed``): not grounded."""
    sent = user_command(request)
    named = [lid for lid in sent["lists"] if lid in re.findall(r"[\w-]+", sent["text"])]
    list_id = named[-1] if named else sent.get("default_list_id") or sent["lists"][0]
    items = [{"name": "milk", "quantity": 1}]
    job = {"job_type": "add_shopping_item", "payload": {"list_id": list_id, "items": items}}
    return completion({"intent": "add_shopping_item", "job": job, "confidence": 0.99})


def first_item_only(request: httpx.Request) -> httpx.Response:
    """A confident model that keeps only the first item the user said: accepted (grounded
    in the text), and wrong whenever the user said more than one."""
    sent = user_command(request)
    command = CommandDTO(
        command_id="m", user_id="m", text=sent["text"], capabilities=["start_job"],
        context=CommandContext(default_list_id=sent.get("default_list_id"), lists=sent["lists"]),
    )  # fmt: skip
    decision = route(command)
    assert decision.job is not None
    payload = dict(decision.job.payload)
    payload["items"] = payload["items"][:1]
    job = {"job_type": "add_shopping_item", "payload": payload}
    return completion({"intent": "add_shopping_item", "job": job, "confidence": 0.99})


def mock(handler: Callable[[httpx.Request], httpx.Response]) -> replay.TransportFactory:
    transport = httpx.MockTransport(handler)
    return lambda: transport


def test_shipped_corpus_is_bilingual_and_mostly_in_the_corridor() -> None:
    commands = corpus()
    assert len(commands) >= 40
    texts = [c.text for c in commands]
    assert sum(any("а" <= ch <= "я" for ch in t.lower()) for t in texts) >= 10
    assert sum(t.isascii() for t in texts) >= 10
    intents = [route(c).intent for c in commands]
    assert intents.count("add_shopping_item") > len(commands) / 2
    assert {"remove_shopping_item", "set_timer", "unknown"} <= set(intents)


def test_shipped_corpus_passes_with_the_default_sim() -> None:
    report = run(replay.sim_transport())
    assert report.passed
    assert report.corridor_commands >= 200  # 1% is then a line, not "zero disagreements"
    assert report.disagreement_rate == 0.0
    assert report.acceptance_rate == 1.0
    assert report.deterministic and len(report.runs) == 2
    assert report.reason_counts["accepted"] == report.corridor_commands
    # Outside the corridor: other intents, clarify, no capability; never asked, never changed.
    skipped = [r for r in report.first if not r.in_corridor]
    assert skipped and all(r.status == "skipped" and r.final == r.baseline for r in skipped)
    assert {r.reason for r in skipped} == {"corridor_mismatch", "capability_mismatch"}


@pytest.mark.parametrize(
    ("mode", "reason"),
    [(Mode.WRONG_INTENT, "intent_mismatch"), (Mode.FOREIGN_LIST, "list_id_not_allowed")],
)
def test_refused_candidates_fall_back_so_nothing_disagrees(mode: Mode, reason: str) -> None:
    report = run(replay.sim_transport(SimConfig(force=mode)))
    assert report.disagreement_rate == 0.0
    assert report.acceptance_rate == 0.0
    assert report.reason_counts[reason] == report.corridor_commands
    assert report.status_counts["fallback_deterministic"] == report.corridor_commands
    # Nothing accepted: a 0% disagreement compared nothing, so no PASS (exit 3, reason named).
    assert not report.passed and report.exit_code == 3
    why = report.nothing_judged
    assert why is not None and "no candidate was accepted" in why and reason in why


def test_llm_errors_fall_back_too() -> None:
    report = run(mock(lambda request: httpx.Response(503)))
    assert report.disagreement_rate == 0.0 and report.acceptance_rate == 0.0
    # The replay gave up after the first calls: nothing was judged, so no PASS.
    assert report.aborted and report.reason_counts["llm_http_error"] == 10
    assert report.status_counts["error"] == report.corridor_commands == 10
    assert not report.passed and report.exit_code == 3


def test_accepted_but_different_candidates_are_disagreement() -> None:
    report = run(mock(first_item_only))
    assert report.acceptance_rate == 1.0
    rate = report.disagreement_rate
    assert rate is not None and rate > replay.DEFAULT_MAX_DISAGREEMENT
    # Exactly the commands whose baseline has one item agree.
    agree = [r for r in report.first if r.in_corridor and r.final == r.baseline]
    assert agree and all(len(r.baseline["job"]["payload"]["items"]) == 1 for r in agree)
    assert report.deterministic and not report.passed


def test_confident_but_ungrounded_candidates_are_refused() -> None:
    """ "milk" for every command: only commands that mention milk can accept it, and only
    those where the user asked for one (not "three milks")."""
    report = run(mock(milk_only))
    corridor = [r for r in report.first if r.in_corridor]
    said_milk = [r for r in corridor if "milk" in json.dumps(r.baseline)]
    assert said_milk and len(said_milk) < len(corridor)
    assert {r.reason for r in corridor if r not in said_milk} == {"item_not_grounded"}
    assert {r.reason for r in said_milk} <= {"accepted", "item_not_grounded"}
    assert any(r.reason == "accepted" for r in said_milk)
    assert report.disagreement_rate is not None and report.disagreement_rate > 0
    assert report.to_json()["disagreeing_commands"][0]["final"]["job"]["payload"]["items"] == [
        {"name": "milk", "quantity": 1}
    ]


def test_one_disagreement_in_a_hundred_is_at_the_threshold() -> None:
    base = corpus()[0]
    commands = [base.model_copy(update={"command_id": f"c-{i}"}) for i in range(100)]
    calls = itertools.count()

    def handler(request: httpx.Request) -> httpx.Response:
        # The 7th call of each run answers "one milk" (the baseline says milk and two eggs).
        n = next(calls) % 100
        if n == 7:
            return milk_only(request)
        return correct(request)

    def correct(request: httpx.Request) -> httpx.Response:
        cmd = CommandDTO.model_validate(
            {
                "command_id": "x",
                "user_id": "u",
                "text": user_command(request)["text"],
                "capabilities": ["start_job"],
                "context": {"default_list_id": "l-1", "lists": ["l-1", "l-2"]},
            }
        )
        decision = route(cmd)
        assert decision.job is not None
        job = {"job_type": decision.job.job_type, "payload": dict(decision.job.payload)}
        return completion({"intent": decision.intent, "job": job, "confidence": 0.9})

    report = run(mock(handler), commands)
    assert report.disagreement_rate == 0.01
    assert report.passed  # <= 1%: the seed-002 gate holds at exactly 1%
    report2 = replay.ReplayReport(report.runs, 0.009)
    assert not report2.passed


def test_nondeterminism_is_detected() -> None:
    flips = itertools.count()

    def alternating(request: httpx.Request) -> httpx.Response:
        # A flaky model: an HTTP error, then an accepted (wrong) answer, and so on.
        if next(flips) % 2 == 0:
            return httpx.Response(503)
        return milk_only(request)

    commands = corpus()[:3]  # an odd count, so the second run starts on the other answer
    report = run(mock(alternating), commands)
    assert not report.deterministic
    assert report.nondeterministic == [c.command_id for c in commands]
    assert not report.passed


def test_main_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "r.json"
    assert replay.main(["--output-json", str(out), "--sim-disagree-rate", "0"]) == 0
    data = json.loads(out.read_text(encoding="utf-8"))
    assert data["passed"] and data["disagreement_rate"] == 0.0 and data["deterministic"]
    assert replay.main([], transport=mock(milk_only)) == 1
    assert "FAIL" in capsys.readouterr().out
    bad = tmp_path / "bad.json"
    for text in ("not json", "[]", '[{"command_id": "c"}]', '{"x": 1}'):
        bad.write_text(text, encoding="utf-8")
        assert replay.main(["--corpus", str(bad)]) == 2
    dup = tmp_path / "dup.json"
    one = corpus()[0].model_dump(mode="json")
    dup.write_text(json.dumps([one, one]), encoding="utf-8")
    assert replay.main(["--corpus", str(dup)]) == 2
    assert "duplicate" in capsys.readouterr().err
    assert replay.main(["--corpus", str(tmp_path / "missing.json")]) == 2
    assert replay.main(["--max-disagreement", "2"]) == 2
    assert replay.main(["--bogus"]) == 2


def test_no_corridor_command_is_not_a_pass(tmp_path: Path) -> None:
    timers = tmp_path / "timers.json"
    cmd = {"command_id": "t-1", "user_id": "u", "text": "set a timer for 5 minutes"}
    timers.write_text(json.dumps([cmd]), encoding="utf-8")
    assert replay.main(["--corpus", str(timers)]) == 3


def test_cli_subprocess_with_a_forced_sim(tmp_path: Path) -> None:
    out = tmp_path / "replay.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "partial_trust.apps.cli",
            "replay",
            "--corpus",
            str(replay.SHIPPED_CORPUS),
            "--sim-force",
            "foreign_list",
            "--output-json",
            str(out),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )
    # Every candidate refused: exit 3 (nothing judged), never a PASS on 0% disagreement.
    assert proc.returncode == 3, proc.stderr
    data = json.loads(out.read_text(encoding="utf-8"))
    assert data["acceptance_rate"] == 0.0 and data["disagreement_rate"] == 0.0
    assert data["verdict"] == "FAIL" and "no candidate was accepted" in data["nothing_judged"]
    assert "disagreement_rate" in proc.stdout
