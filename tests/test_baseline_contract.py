"""The baseline router's contract: the DESIGN example byte for byte, and its invariants.

The examples pin the exact decision the DESIGN document promises. The invariants (the intent
agrees with ``classify_intent``, a job only with ``start_job`` and into a list the command has,
a valid payload, a JSON round trip) must hold for any text, so Hypothesis feeds it fragments of
real commands as well as arbitrary text. It runs on every request, so it must also be
deterministic and fast.
"""

from __future__ import annotations

import json
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from partial_trust.contracts import MAX_TEXT_CHARS, CommandDTO, DecisionDTO, Item
from partial_trust.middleware.baseline import INTENTS, SET_TIMER, classify_intent, route
from tests.support.baseline import cmd, decide

DESIGN_COMMAND = {
    "command_id": "c-1",
    "user_id": "u-1",
    "text": "add milk and two eggs to my shopping list",
    "capabilities": ["start_job"],
    "context": {"default_list_id": "l-1", "lists": ["l-1", "l-2"]},
}
DESIGN_DECISION = {
    "command_id": "c-1",
    "intent": "add_shopping_item",
    "action": "start_job",
    "job": {
        "job_type": "add_shopping_item",
        "payload": {
            "list_id": "l-1",
            "items": [{"name": "milk", "quantity": 1}, {"name": "eggs", "quantity": 2}],
        },
    },
}


# --- the contract example ------------------------------------------------------------------


def test_design_example_byte_for_byte() -> None:
    decision = route(CommandDTO.model_validate_json(json.dumps(DESIGN_COMMAND)))
    assert decision.model_dump(mode="json") == DESIGN_DECISION
    assert decision.model_dump_json() == json.dumps(DESIGN_DECISION, separators=(",", ":"))


def test_russian_example() -> None:
    assert decide("добавь молоко и 2 батона хлеба в список покупок") == {
        "command_id": "c-1",
        "intent": "add_shopping_item",
        "action": "start_job",
        "job": {
            "job_type": "add_shopping_item",
            "payload": {
                "list_id": "l-1",
                "items": [
                    {"name": "молоко", "quantity": 1},
                    {"name": "батон хлеба", "quantity": 2},
                ],
            },
        },
    }


# --- invariants -----------------------------------------------------------------------------

EXAMPLES = [
    "add milk and two eggs to my shopping list",
    "добавь молоко и 2 батона хлеба в список покупок",
    "remove milk from my shopping list",
    "удали молоко из списка покупок",
    "set a timer for 5 minutes",
    "поставь таймер на 5 минут",
    "set a timer",
    "add 0 eggs to my list",
    "what's the weather",
]
# fmt: off
FRAGMENTS = [
    "add", "put", "remove", "take", "set", "a", "timer", "for", "to", "from", "off", "my", "the",
    "shopping", "list", "l-1", "l-2", "l-9", ":", ",", "and", "&", "и", "milk", "two", "0", "2",
    "1000", "minutes", "hour", "please", "pls", "thanks", "добавь", "удали", "в", "из", "список",
    "списка", "покупок", "молоко", "батона", "хлеба", "поставь", "таймер", "на", "минут",
    "полчаса", "засеки", "!", ".", "«", "»", "ſet", "İ", "\n", "\t", " ",
]
# fmt: on
PREFIXES = ["", "please ", "Please, ", "can you ", "пожалуйста, ", "  ", "hey "]
SUFFIXES = ["", " please", ".", "!!", ", thanks", " now", " пожалуйста", " l-2", ": eggs"]
fragment_texts = st.one_of(
    st.lists(st.sampled_from(FRAGMENTS), max_size=40).map(" ".join),
    st.lists(st.sampled_from(FRAGMENTS), max_size=20).map("".join),
)
texts = st.one_of(
    st.text(max_size=MAX_TEXT_CHARS),
    fragment_texts,
    st.builds(
        lambda pre, body, suf, upper: (pre + body + suf).upper() if upper else pre + body + suf,
        st.sampled_from(PREFIXES),
        st.one_of(st.sampled_from(EXAMPLES), fragment_texts),
        st.sampled_from(SUFFIXES),
        st.booleans(),
    ),
)
commands = st.builds(
    cmd,
    texts,
    caps=st.sampled_from([(), ("start_job",)]),
    default=st.sampled_from([None, "l-1", "l-9"]),
    lists=st.sampled_from([(), ("l-1",), ("l-1", "l-2")]),
)


def check_invariants(command: CommandDTO) -> DecisionDTO:
    decision = route(command)
    assert decision.intent == classify_intent(command.text)
    assert decision.intent in INTENTS
    assert decision.command_id == command.command_id
    assert (decision.action == "start_job") == (decision.job is not None)
    if decision.job is not None:
        assert "start_job" in command.capabilities
        assert decision.job.job_type == decision.intent
        payload = decision.job.payload
        if decision.intent == SET_TIMER:
            assert payload.keys() == {"minutes"} and 1 <= payload["minutes"] <= 1440
        else:
            assert payload["list_id"] in {*command.context.lists, command.context.default_list_id}
            assert payload["items"]
            for item in payload["items"]:
                Item.model_validate(item)
    assert DecisionDTO.model_validate_json(decision.model_dump_json()) == decision
    return decision


@pytest.mark.parametrize("text", EXAMPLES)
def test_invariants_on_examples(text: str) -> None:
    check_invariants(cmd(text))


@settings(max_examples=500, deadline=None)
@given(commands)
def test_route_never_raises_and_agrees_with_classify_intent(command: CommandDTO) -> None:
    check_invariants(command)


@settings(max_examples=200, deadline=None)
@given(commands)
def test_route_is_deterministic(command: CommandDTO) -> None:
    again = command.model_copy(deep=True)
    assert route(command).model_dump_json() == route(again).model_dump_json()


def test_route_is_fast() -> None:
    """A generous bound (the target is well under 50 µs): catches a runaway regex, not noise."""
    typical = cmd(str(DESIGN_COMMAND["text"]))
    worst = ("add " + "a " * 1000, "добавь " + "в " * 1000, "add milk, eggs, " * 120 + "to my list")
    start = time.perf_counter()
    for _ in range(2000):
        route(typical)
    assert (time.perf_counter() - start) / 2000 < 200e-6
    for text in worst:
        command = cmd(text[:MAX_TEXT_CHARS])
        start = time.perf_counter()
        route(command)
        assert time.perf_counter() - start < 20e-3
