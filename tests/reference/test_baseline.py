"""The baseline router: the DESIGN contract example, the grammar, and its invariants."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from middleware.contracts import MAX_TEXT_CHARS, CommandDTO, DecisionDTO, Item
from middleware.reference.baseline import (
    ADD_SHOPPING_ITEM,
    INTENTS,
    REMOVE_SHOPPING_ITEM,
    SET_TIMER,
    UNKNOWN,
    classify_intent,
    route,
)
from middleware.reference.numbers import QUANTITY_WORDS
from middleware.text import item_key

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
_UNSET: Any = object()


def cmd(
    text: str,
    *,
    caps: tuple[str, ...] = ("start_job",),
    default: str | None = "l-1",
    lists: tuple[str, ...] = ("l-1", "l-2"),
) -> CommandDTO:
    context: dict[str, Any] = {"lists": list(lists)}
    if default is not None:
        context["default_list_id"] = default
    return CommandDTO.model_validate(
        {
            "command_id": "c-1",
            "user_id": "u-1",
            "text": text,
            "capabilities": list(caps),
            "context": context,
        }
    )


def clarify(intent: str) -> dict[str, Any]:
    return {"command_id": "c-1", "intent": intent, "action": "clarify", "job": None}


def decide(text: str, **kw: Any) -> dict[str, Any]:
    return route(cmd(text, **kw)).model_dump(mode="json")


def items(text: str, **kw: Any) -> list[tuple[str, int]]:
    job = decide(text, **kw)["job"]
    assert job is not None, text
    return [(i["name"], i["quantity"]) for i in job["payload"]["items"]]


def list_id(text: str, **kw: Any) -> str | None:
    job = decide(text, **kw)["job"]
    return None if job is None else str(job["payload"]["list_id"])


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


# --- items ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("word", "n"), sorted(QUANTITY_WORDS.items()))
def test_every_number_word_is_a_quantity(word: str, n: int) -> None:
    assert items(f"add {word} widgets to my shopping list") == [("widgets", n)]
    assert items(f"добавь {word} яблок в список покупок") == [("яблок", n)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("add 3 apples to my list", [("apples", 3)]),
        ("add an apple to my list", [("apple", 1)]),
        ("add a dozen eggs to my list", [("eggs", 12)]),
        ("add the milk and some bread to the list", [("milk", 1), ("bread", 1)]),
        (
            "add milk, bread & eggs and butter to my list",
            [(n, 1) for n in ("milk", "bread", "eggs", "butter")],
        ),
        ("add milk, and eggs to my list", [("milk", 1), ("eggs", 1)]),
        ("add two bottles of water to the grocery list", [("bottle of water", 2)]),
        ("add 2kg potatoes to my list", [("2kg potatoes", 1)]),
        ("ADD Milk To My Shopping List", [("milk", 1)]),
        ('add "milk" to my list', [("milk", 1)]),
        (
            "добавь молоко, хлеб и масло в список покупок",
            [("молоко", 1), ("хлеб", 1), ("масло", 1)],
        ),
        ("добавь две пачки молока в список", [("пачка молока", 2)]),
        ("добавь пять батонов хлеба в список", [("батон хлеба", 5)]),
        ("добавь бутылку воды в список", [("бутылка воды", 1)]),
        ("добавь десяток яиц в список покупок", [("яиц", 10)]),
        ("добавь «молоко» в список", [("молоко", 1)]),
    ],
)
def test_item_parsing(text: str, expected: list[tuple[str, int]]) -> None:
    assert items(text) == expected


def test_count_unit_form_does_not_change_the_key() -> None:
    said = ("батон хлеба", "2 батона хлеба", "5 батонов хлеба", "батонов хлеба")
    keys = {item_key(items(f"добавь {n} в список")[0][0]) for n in said}
    assert keys == {"батон хлеба"}


@pytest.mark.parametrize(
    "text",
    [
        "add 0 eggs to my list",
        "add 1000 eggs to my list",
        "add 99999999999999 eggs to my list",
        "add two to my list",
        "add milk and 5 to my list",
        "add " + "x" * 201 + " to my list",
        "add , to my list",
        "добавь 0 яиц в список",
    ],
)
def test_unparseable_items_keep_the_intent_and_clarify(text: str) -> None:
    assert decide(text) == clarify(ADD_SHOPPING_ITEM)


def test_names_at_the_limits_are_valid_items() -> None:
    assert items("add " + "x" * 200 + " and 999 eggs to my list") == [("x" * 200, 1), ("eggs", 999)]


# --- lists ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "kw", "expected"),
    [
        ("add milk to my shopping list", {}, "l-1"),
        ("add milk to list l-2", {}, "l-2"),
        ("add milk to my shopping list l-2", {}, "l-2"),
        ("add to list l-2: milk", {}, "l-2"),
        ("add to my shopping list l-2 milk", {}, "l-2"),
        ("добавь молоко в список l-2", {}, "l-2"),
        ("добавь в список l-2 молоко", {}, "l-2"),
        ("добавь молоко в список покупок l-2.", {}, "l-2"),
        (
            "add milk to list Groceries",
            {"lists": ("Home", "Groceries"), "default": None},
            "Groceries",
        ),
        ("add milk to my list", {"default": None}, "l-1"),
        ("add milk to my list", {"default": None, "lists": ("l-7", "l-1")}, "l-7"),
        ("add milk to my list", {"default": "l-9", "lists": ()}, "l-9"),
        ("add milk to list l-9", {"default": "l-9", "lists": ()}, "l-9"),
        ("add milk to list l-9", {}, None),
        ("add milk to list groceries", {"lists": ("Groceries",)}, None),
        ("add milk to my list now", {}, None),
        ("add milk to my list", {"default": None, "lists": ()}, None),
    ],
)
def test_list_choice(text: str, kw: dict[str, Any], expected: str | None) -> None:
    assert list_id(text, **kw) == expected
    assert classify_intent(text) == ADD_SHOPPING_ITEM


def test_reversed_form_without_known_list_keeps_the_first_word_as_an_item() -> None:
    assert items("добавь в список покупок молоко и хлеб") == [("молоко", 1), ("хлеб", 1)]
    assert items("add to my shopping list l-9 milk") == [("l-9 milk", 1)]


def test_no_list_at_all_clarifies_with_the_intent() -> None:
    assert decide("add milk to my shopping list", default=None, lists=()) == {
        "command_id": "c-1",
        "intent": "add_shopping_item",
        "action": "clarify",
        "job": None,
    }


# --- capability -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("add milk to my shopping list", ADD_SHOPPING_ITEM),
        ("remove milk from my list", REMOVE_SHOPPING_ITEM),
        ("set a timer for 5 minutes", SET_TIMER),
    ],
)
@pytest.mark.parametrize("caps", [(), ("speak",), ("START_JOB",)])
def test_missing_start_job_capability_clarifies(
    text: str, intent: str, caps: tuple[str, ...]
) -> None:
    assert decide(text, caps=caps) == clarify(intent)
    assert decide(text, caps=(*caps, "start_job"))["action"] == "start_job"


# --- remove, timer, unknown -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("remove milk from my shopping list", [("milk", 1)]),
        ("take two eggs off the list", [("eggs", 2)]),
        ("delete milk and bread from list l-2", [("milk", 1), ("bread", 1)]),
        ("удали молоко из списка покупок", [("молоко", 1)]),
        ("убери 2 батона хлеба из списка", [("батон хлеба", 2)]),
    ],
)
def test_remove(text: str, expected: list[tuple[str, int]]) -> None:
    decision = decide(text)
    assert (decision["intent"], decision["action"]) == (REMOVE_SHOPPING_ITEM, "start_job")
    assert decision["job"]["job_type"] == REMOVE_SHOPPING_ITEM
    assert items(text) == expected
    assert list_id(text) == ("l-2" if "l-2" in text else "l-1")


@pytest.mark.parametrize(
    ("text", "minutes"),
    [
        ("set a timer for 5 minutes", 5),
        ("Set a timer for five minutes, please.", 5),
        ("start a timer for 1 hour", 60),
        ("set a timer for an hour", 60),
        ("set a 10-minute timer", 10),
        ("timer for half an hour", 30),
        ("поставь таймер на 5 минут", 5),
        ("поставь таймер на пять минут", 5),
        ("установи таймер на одну минуту", 1),
        ("поставь таймер на час", 60),
        ("таймер на 2 часа", 120),
        ("поставь таймер на полчаса", 30),
        ("засеки 15 минут", 15),
    ],
)
def test_timer(text: str, minutes: int) -> None:
    assert decide(text) == {
        "command_id": "c-1",
        "intent": "set_timer",
        "action": "start_job",
        "job": {"job_type": "set_timer", "payload": {"minutes": minutes}},
    }


@pytest.mark.parametrize(
    "text",
    [
        "set a timer",
        "поставь таймер",
        "set a timer for 0 minutes",
        "set a timer for 1441 minutes",
        "set a timer for banana",
        "поставь таймер на 30 секунд",
    ],
)
def test_timer_without_a_usable_duration_clarifies(text: str) -> None:
    assert decide(text) == clarify(SET_TIMER)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "what's the weather",
        "add milk",
        "добавь молоко",
        "add a meeting to my calendar",
        "buy milk",
        "please",
        "milk and eggs",
        "addmilk to my list",
        "remove",
        "reset the timer",
    ],
)
def test_unknown_clarifies(text: str) -> None:
    assert decide(text) == clarify(UNKNOWN)


# --- item_key -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("Milk", "milk"),
        ("  milk  ", "milk"),
        ("whole   \t milk", "whole milk"),
        ("«Молоко»!", "молоко"),
        ('"eggs."', "eggs"),
        ("Ёлка", "елка"),
        ("ＭＩＬＫ", "milk"),
        ("c++", "c++"),
        ("7-up", "7-up"),
        ("...", ""),
    ],
)
def test_item_key(name: str, key: str) -> None:
    assert item_key(name) == key
    assert item_key(key) == key


def test_item_key_tells_different_items_apart() -> None:
    assert item_key("egg") != item_key("eggs")
    assert item_key("milk") != item_key("silk")


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
