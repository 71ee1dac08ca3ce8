"""What a corridor is: one intent the LLM may decide, and everything specific to it.

The engine and the middleware know nothing about shopping. A team that wants a corridor for
their own intent implements this protocol (their DTO, prompt, rules and merge) and passes it
to ``PartialTrustMiddleware``; ``ShoppingCorridor`` is the reference implementation.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from pydantic import ValidationError

from partial_trust.contracts import CommandDTO
from partial_trust.corridors import RiskClass
from partial_trust.middleware import acceptance, candidate
from partial_trust.middleware.acceptance import CandidateT, Verdict
from partial_trust.middleware.candidate import ShoppingCandidate
from partial_trust.middleware.policy import Profile

MAX_COMMAND_BYTES = 64 * 1024
#: The same strict validator ``model_validate_json`` calls, without its Python wrapper frame
#: (it runs on every request the corridor sees).
_validate_command = CommandDTO.__pydantic_validator__.validate_json


#: A corridor's command type (``CommandDTO`` for shopping): what ``parse`` makes of the body,
#: and what the engine hands back to every later step.
CommandT = TypeVar("CommandT")


class Corridor(Protocol[CommandT, CandidateT]):
    """Generic over the command and the candidate, so strict typing runs through the seam:
    the engine hands each step exactly the type the previous one produced."""

    name: str
    """The corridor's intent; also its metric label, so a constant, never from input."""
    task: str
    """The LLM policy task whose profiles this corridor may use."""
    risk_class: RiskClass
    """What the corridor's decision can do (``read`` < ... < ``admin``). Must equal the class
    ``partial_trust.corridors.CORRIDOR_ALLOWLIST`` pins for ``name``, or the engine refuses
    it; the class caps the mode (``admin``: never beyond shadow)."""

    def parse(self, body: bytes) -> CommandT | None:
        """The command, or ``None`` when the body is not one (the baseline answers it)."""

    def command_id(self, command: CommandT) -> str: ...

    def matches(self, command: CommandT) -> bool:
        """Cheap pre-check, before any LLM call: is this command in the corridor?"""

    def has_capability(self, command: CommandT) -> bool: ...

    def build_request(self, command: CommandT, profile: Profile) -> dict[str, Any]:
        """The chat-completions request body for this command."""

    def baseline_decision(self, body: bytes) -> dict[str, Any] | None:
        """The baseline's decision if it decided inside the corridor, else ``None``."""

    def judge(
        self, raw: object, command: CommandT, baseline: dict[str, Any], threshold: float
    ) -> Verdict[CandidateT]: ...

    def merge(self, baseline: dict[str, Any], verdict: Verdict[CandidateT]) -> dict[str, Any]:
        """The accepted response: the baseline's object with the candidate's decision."""

    def baseline_items(self, baseline: dict[str, Any]) -> int: ...


def _reference_classifier() -> Callable[[str], str]:
    from partial_trust.middleware.baseline import classify_intent

    return classify_intent


class ShoppingCorridor:
    """``add_shopping_item``: the LLM may choose the items and the list, nothing else.

    A ``Corridor[CommandDTO, ShoppingCandidate]`` (structurally: no base class to call)."""

    task = candidate.TASK
    capability = "start_job"
    #: It adds items to a list: a write (DESIGN, "Wave 2").
    risk_class = RiskClass.WRITE

    def __init__(
        self,
        classify: Callable[[str], str] | None = None,
        *,
        name: str = "add_shopping_item",
    ) -> None:
        self.name = name
        self._classify = classify or _reference_classifier()

    def parse(self, body: bytes) -> CommandDTO | None:
        if len(body) > MAX_COMMAND_BYTES:
            return None
        try:
            command: CommandDTO = _validate_command(body)
        except ValidationError:
            return None
        return command

    def command_id(self, command: CommandDTO) -> str:
        return command.command_id

    def matches(self, command: CommandDTO) -> bool:
        return self._classify(command.text) == self.name

    def has_capability(self, command: CommandDTO) -> bool:
        return self.capability in command.capabilities

    def build_request(self, command: CommandDTO, profile: Profile) -> dict[str, Any]:
        return candidate.chat_request(
            command,
            model=profile.model,
            temperature=profile.temperature,
            max_tokens=profile.max_tokens,
            response_format=profile.response_format,
            few_shot=profile.few_shot,
        )

    def baseline_decision(self, body: bytes) -> dict[str, Any] | None:
        try:
            decision = json.loads(body)
        except ValueError:
            return None
        if (
            not isinstance(decision, dict)
            or decision.get("intent") != self.name
            or decision.get("action") != self.capability
            or not isinstance(decision.get("job"), dict)
            or not isinstance(decision["job"].get("payload"), dict)
        ):
            return None
        return decision

    def judge(
        self, raw: object, command: CommandDTO, baseline: dict[str, Any], threshold: float
    ) -> Verdict[ShoppingCandidate]:
        return acceptance.judge(
            raw, corridor=self.name, command=command, baseline=baseline, threshold=threshold
        )

    def merge(
        self, baseline: dict[str, Any], verdict: Verdict[ShoppingCandidate]
    ) -> dict[str, Any]:
        if verdict.candidate is None:  # the engine merges accepted verdicts only
            raise ValueError("merge needs an accepted verdict with a candidate")
        return acceptance.merge(baseline, verdict.candidate)

    def baseline_items(self, baseline: dict[str, Any]) -> int:
        return len(acceptance.baseline_items(baseline))
