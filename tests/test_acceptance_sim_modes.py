"""llm-sim's content faults still end in their documented outcomes under the grounding rule.

The double's default answer echoes the baseline, so it must stay ``accepted`` (with and without
a confidence), and each content fault must still be refused for its own reason, on English and
Russian commands, for every draw of its random choices (not only the draw a seed happens to
give an integration test).
"""

from __future__ import annotations

import random

import pytest

from partial_trust.apps.llm_sim.answers import INJECTIONS, correct_candidate, corrupt
from partial_trust.apps.llm_sim.config import Mode, SimConfig
from partial_trust.contracts import CommandDTO
from partial_trust.middleware.acceptance import judge
from partial_trust.middleware.baseline import route
from partial_trust.outcome import Reason
from tests.support.allowlist_oracle import PROFILES
from tests.support.baseline import cmd

C = "add_shopping_item"
TEXTS = [
    "add milk and two eggs to my shopping list",
    "add 2 bottles of water to my list",
    "добавь молоко и два яйца в список покупок",
    "добавь 2 батона хлеба в список покупок",
]
#: The reason each content mode must produce (README, llm-sim --help, integration tests).
EXPECTED: dict[Mode, set[Reason]] = {
    Mode.NONE: {Reason.ACCEPTED},
    Mode.NO_CONFIDENCE: {Reason.ACCEPTED},
    Mode.WRONG_INTENT: {Reason.INTENT_MISMATCH},
    Mode.EXTRA_FIELDS: {Reason.SCHEMA_VIOLATION},
    Mode.FOREIGN_LIST: {Reason.LIST_ID_NOT_ALLOWED},
    Mode.LOW_CONFIDENCE: {Reason.LOW_CONFIDENCE},
    Mode.EMPTY_ITEMS: {Reason.EMPTY_ITEMS},
    Mode.MANY_ITEMS: {Reason.TOO_MANY_ITEMS},
    # Markup and control characters break the name rules; the one injection in plain words
    # ("ignore all previous instructions ...") is a name the user never said.
    Mode.INJECTION: {Reason.INVALID_ITEM_NAME, Reason.ITEM_NOT_GROUNDED},
}


def reason_for(command: CommandDTO, mode: Mode, seed: int) -> Reason:
    config = SimConfig()
    raw = corrupt(
        correct_candidate(command, route, config.confidence),
        mode,
        command,
        config,
        random.Random(seed),
    )
    baseline = route(command).model_dump(mode="json")
    return judge(
        raw, corridor=C, command=command, baseline=baseline, threshold=PROFILES[None]
    ).reason


@pytest.mark.parametrize("mode", list(EXPECTED))
@pytest.mark.parametrize("text", TEXTS)
def test_each_content_mode_keeps_its_outcome(text: str, mode: Mode) -> None:
    command = cmd(text)
    got = {reason_for(command, mode, seed) for seed in range(30)}
    assert got <= EXPECTED[mode], (text, mode, got)


@pytest.mark.parametrize("injection", INJECTIONS)
def test_every_injection_is_refused(injection: str) -> None:
    command = cmd(TEXTS[0])
    baseline = route(command).model_dump(mode="json")
    raw = correct_candidate(command, route, 0.95)
    raw["job"]["payload"]["items"][0]["name"] = injection
    got = judge(raw, corridor=C, command=command, baseline=baseline, threshold=0.7).reason
    assert got in EXPECTED[Mode.INJECTION]
    # Only the plain-words one gets past the name rules, and grounding catches it.
    plain = injection.startswith("ignore all previous")
    assert (got is Reason.ITEM_NOT_GROUNDED) == plain, (injection, got)
