"""The baseline router's shopping payload: items with their quantities, and the list.

Number words and digits in English and Russian, count units (``two bottles of water``) and
separators must give the items a person meant, and anything it cannot read as items keeps the
intent but clarifies instead of guessing. The list is the one named, if the command has it, else
the default (or the first list); a named list it does not have clarifies. ``item_key`` is here
because it decides when two item names are the same item.
"""

from __future__ import annotations

from typing import Any

import pytest

from partial_trust.middleware.baseline import ADD_SHOPPING_ITEM, classify_intent
from partial_trust.middleware.baseline_numbers import QUANTITY_WORDS
from partial_trust.middleware.text import item_key
from tests.support.baseline import clarify, decide, items, list_id

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
