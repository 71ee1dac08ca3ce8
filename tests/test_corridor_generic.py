"""The corridor seam is typed end to end (issue 18): ``Corridor[CommandT, CandidateT]`` and
the engine, middleware and stack generic over the same two types, so ``mypy --strict`` catches
a corridor whose steps disagree, and a caller that uses the command or candidate as the wrong
type. Checked by running mypy on small programs, as a corridor author would.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import typing
from pathlib import Path

from partial_trust.middleware import acceptance, corridor, engine
from tests.support.procs import REPO

_PRELUDE = """\
from typing import Any, reveal_type

from pydantic import BaseModel

from partial_trust.config import EffectiveSettings
from partial_trust.corridors import RiskClass
from partial_trust.middleware.acceptance import Verdict
from partial_trust.middleware.corridor import Corridor, ShoppingCorridor
from partial_trust.middleware.engine import Admission, CorridorEngine
from partial_trust.middleware.factory import CorridorStack
from partial_trust.middleware.policy import Profile
from partial_trust.outcome import Reason


class Ticket(BaseModel):
    ticket_id: str
    text: str


class Refund(BaseModel):
    amount: int


class RefundCorridor:
    name = "refund"
    task = "refund"
    risk_class = RiskClass.WRITE

    def parse(self, body: bytes) -> Ticket | None:
        return Ticket.model_validate_json(body)

    def command_id(self, command: Ticket) -> str:
        return command.ticket_id

    def matches(self, command: Ticket) -> bool:
        return "refund" in command.text

    def has_capability(self, command: Ticket) -> bool:
        return True

    def build_request(self, command: Ticket, profile: Profile) -> dict[str, Any]:
        return {"model": profile.model, "messages": [{"role": "user", "content": command.text}]}

    def baseline_decision(self, body: bytes) -> dict[str, Any] | None:
        return None

    def judge(
        self, raw: object, command: Ticket, baseline: dict[str, Any], threshold: float
    ) -> Verdict[Refund]:
        return Verdict(Reason.ACCEPTED, Refund(amount=1))

    def merge(self, baseline: dict[str, Any], verdict: Verdict[Refund]) -> dict[str, Any]:
        return {**baseline, "amount": verdict.candidate.amount if verdict.candidate else 0}

    def baseline_items(self, baseline: dict[str, Any]) -> int:
        return 0
"""


def _mypy(tmp_path: Path, body: str) -> list[str]:
    """mypy --strict's error and note lines for the prelude plus ``body``."""
    source = tmp_path / "corridor_author.py"
    source.write_text(_PRELUDE + textwrap.dedent(body), encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-error-summary", str(source)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return [line.split(": ", 1)[1] for line in proc.stdout.splitlines() if ": " in line]


def test_a_custom_corridor_types_through_engine_and_stack(tmp_path: Path) -> None:
    found = _mypy(
        tmp_path,
        """
        def use(settings: EffectiveSettings, stack: CorridorStack[Ticket, Refund]) -> None:
            refund: Corridor[Ticket, Refund] = RefundCorridor()
            adm = stack.engine.admit(settings, b"{}")
            if isinstance(adm, Admission):
                reveal_type(adm.command)
            reveal_type(CorridorStack.from_env(corridor=refund))
            reveal_type(CorridorStack.from_env())
            reveal_type(stack.engine.corridor.judge(None, Ticket(ticket_id="t", text=""), {}, 0.5))
        """,
    )
    assert found == [
        'note: Revealed type is "corridor_author.Ticket"',
        'note: Revealed type is "partial_trust.middleware.factory.CorridorStack'
        '[corridor_author.Ticket, corridor_author.Refund]"',
        'note: Revealed type is "partial_trust.middleware.factory.CorridorStack'
        "[partial_trust.contracts.CommandDTO, partial_trust.middleware.candidate."
        'ShoppingCandidate]"',
        'note: Revealed type is "partial_trust.middleware.acceptance.Verdict'
        '[corridor_author.Refund]"',
    ]


def test_mismatched_steps_and_wrong_uses_are_type_errors(tmp_path: Path) -> None:
    found = _mypy(
        tmp_path,
        """
        def use(engine: CorridorEngine[Ticket, Refund], settings: EffectiveSettings) -> None:
            wrong_candidate: Corridor[Ticket, Ticket] = RefundCorridor()
            shopping: Corridor[Ticket, Refund] = ShoppingCorridor()
            adm = engine.admit(settings, b"{}")
            if isinstance(adm, Admission):
                amount: int = adm.command
        """,
    )
    errors = [line for line in found if line.startswith("error:")]
    assert len(errors) == 3, found
    assert 'variable has type "Corridor[Ticket, Ticket]"' in errors[0]  # judge gives Refund
    assert 'variable has type "Corridor[Ticket, Refund]"' in errors[1]  # CommandDTO in
    assert 'expression has type "Ticket", variable has type "int"' in errors[2]


def test_no_any_at_the_seam() -> None:
    """Where a command or a candidate passes, the annotation is the type variable, never Any
    (``dict[str, Any]`` is the JSON of the baseline's decision and of the LLM request)."""
    command_t, candidate_t = corridor.CommandT, acceptance.CandidateT
    hints = {
        name: typing.get_type_hints(getattr(corridor.Corridor, name))
        for name in ("parse", "command_id", "matches", "has_capability", "build_request", "judge")
    }
    for name in ("command_id", "matches", "has_capability", "build_request", "judge"):
        assert hints[name]["command"] is command_t, name
    assert hints["parse"]["return"] == command_t | None
    assert hints["judge"]["return"] == acceptance.Verdict[candidate_t]  # type: ignore[valid-type]  # a TypeVar used as a runtime value
    merge = typing.get_type_hints(corridor.Corridor.merge)
    assert merge["verdict"] == acceptance.Verdict[candidate_t]  # type: ignore[valid-type]  # a TypeVar used as a runtime value
    assert typing.get_type_hints(engine.Admission)["command"] is command_t
    assert typing.get_type_hints(acceptance.Verdict)["candidate"] == candidate_t | None
