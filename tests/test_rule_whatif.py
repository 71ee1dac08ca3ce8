"""``bench/rule_whatif.py`` replays the list rule in force, not a copy of it that could drift."""

from __future__ import annotations

from typing import Any

import pytest

from bench.rule_whatif import list_grounded
from partial_trust.contracts import CommandDTO
from partial_trust.middleware.acceptance import list_allowed
from partial_trust.middleware.grounding import Grounding

C = "add_shopping_item"
LISTS = {"default_list_id": "дом", "lists": ["дом", "дача", "l-2"]}


def decision(list_id: str) -> dict[str, Any]:
    payload = {"list_id": list_id, "items": [{"name": "хлеб", "quantity": 1}]}
    return {"intent": C, "action": "start_job", "job": {"job_type": C, "payload": payload}}


@pytest.mark.parametrize(
    ("text", "chosen", "refused"),
    [
        ("добавь хлеб в список", "дом", False),  # the baseline's
        ("добавь хлеб в список", "дача", True),  # the user's, not named
        ("добавь хлеб на дачу", "дача", False),  # named, in another case
        ("добавь 2 l хлеба", "l-2", True),  # its words, but not as one run
        ("добавь хлеб", "работа", True),  # not the user's
    ],
)
def test_list_grounded_is_the_librarys_rule(text: str, chosen: str, refused: bool) -> None:
    entry = {"command": {"command_id": "c", "user_id": "u", "text": text,
                         "capabilities": ["start_job"], "context": LISTS}}  # fmt: skip
    base, cand = decision("дом"), decision(chosen)
    assert list_grounded(entry, base, cand) is refused
    command = CommandDTO.model_validate(entry["command"])
    assert refused is not list_allowed(chosen, command, base, Grounding(text))
