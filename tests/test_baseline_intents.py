"""The baseline router's intents and actions: capability, remove, timer, unknown.

A job starts only for a recognised intent with everything it needs and the ``start_job``
capability; otherwise the decision clarifies and still names the intent it recognised (or
``unknown``), so the device can ask the right question.
"""

from __future__ import annotations

import pytest

from partial_trust.middleware.baseline import (
    ADD_SHOPPING_ITEM,
    REMOVE_SHOPPING_ITEM,
    SET_TIMER,
    UNKNOWN,
)
from tests.support.baseline import clarify, decide, items, list_id

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
