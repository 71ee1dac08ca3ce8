"""Grounding: a candidate's items must come from this command's text, whatever its confidence.

Issue 15 item 2: for "add milk and two eggs" a candidate of ``vodka × 999, cigarettes × 999``
with ``confidence: 1.0`` was served. Every item's words must occur in the text (after
normalisation and Snowball stemming, so inflections and plurals still ground, in English and
Russian) and its quantity must be one the text supports; one ungrounded item refuses all.
"""

from __future__ import annotations

import timeit
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from partial_trust.contracts import CommandDTO
from partial_trust.middleware.acceptance import judge
from partial_trust.middleware.baseline import route
from partial_trust.middleware.grounding import Grounding, stem
from partial_trust.outcome import FALLBACK_REASONS, STATUS_REASONS, Reason, Status
from tests.support.baseline import cmd

C = "add_shopping_item"


def candidate(*items: tuple[str, int], confidence: float | None = 1.0) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "intent": C,
        "job": {
            "job_type": C,
            "payload": {
                "list_id": "l-1",
                "items": [{"name": n, "quantity": q} for n, q in items],
            },
        },
    }
    if confidence is not None:
        raw["confidence"] = confidence
    return raw


def verdict(text: str, raw: dict[str, Any], threshold: float = 0.7) -> Reason:
    command = cmd(text)
    baseline = route(command).model_dump(mode="json")
    return judge(raw, corridor=C, command=command, baseline=baseline, threshold=threshold).reason


MILK_EGGS = "add milk and two eggs to my shopping list"
MOLOKO = "добавь молоко и два яйца в список покупок"


def test_the_reported_attack_is_refused() -> None:
    raw = candidate(("vodka", 999), ("cigarettes", 999))
    assert verdict(MILK_EGGS, raw) is Reason.ITEM_NOT_GROUNDED


@pytest.mark.parametrize("confidence", [1.0, 0.99, 0.7, None])
@pytest.mark.parametrize(
    ("text", "items"),
    [
        (MILK_EGGS, [("milk", 1), ("vodka", 1)]),  # one bad item refuses the whole candidate
        (MILK_EGGS, [("insulin", 1), ("syringes", 1)]),  # another user's answer
        (MILK_EGGS, [("milk", 1), ("eggs", 2), ("bread", 1)]),
        (MILK_EGGS, [("milk", 999), ("eggs", 2)]),  # a quantity the text never states
        (MILK_EGGS, [("milk", 2), ("eggs", 2)]),  # "two" is the eggs', not the milk's
        (MILK_EGGS, [("milk", 1), ("eggs", 1)]),  # the text says two eggs
        (MILK_EGGS, [("egg", 12)]),  # the stem matches, so the quantity must too
        (MILK_EGGS, [("chocolate milk", 1)]),  # every word of the name
        (MOLOKO, [("водка", 1)]),
        (MOLOKO, [("молоко", 1), ("сигареты", 2)]),
        (MOLOKO, [("молоко", 999)]),
        (MOLOKO, [("яйца", 5)]),
        ("купи хлеба", [("хлеб", 1), ("водка", 1)]),
    ],
)
def test_ungrounded_items_are_refused_whatever_the_confidence(
    text: str, items: list[tuple[str, int]], confidence: float | None
) -> None:
    reason = verdict(text, candidate(*items, confidence=confidence))
    # Without a confidence the grounding surrogate may refuse first; with one, grounding does.
    if confidence is None:
        assert reason in {Reason.LOW_CONFIDENCE, Reason.ITEM_NOT_GROUNDED}
    else:
        assert reason is Reason.ITEM_NOT_GROUNDED


@pytest.mark.parametrize(
    ("text", "items"),
    [
        (MILK_EGGS, [("milk", 1), ("eggs", 2)]),
        (MILK_EGGS, [("Milk", 1), ("egg", 2)]),  # case and plural
        (MILK_EGGS, [("eggs", 2)]),
        ("add two eggs to my list", [("egg", 2)]),
        ("add 2 bottles of water to my list", [("bottle of water", 2)]),
        ("add 2 bottles of water to my list", [("water", 2)]),
        ("add two loaves of bread to my list", [("loaf of bread", 2)]),  # the baseline's lemma
        ("add a dozen eggs to my list", [("eggs", 12)]),
        ("add eggs x6 to my list", [("eggs", 6)]),  # the baseline reads "eggs x6" × 1
        (MOLOKO, [("молоко", 1), ("яйца", 2)]),
        (MOLOKO, [("молоко", 1), ("яйцо", 2)]),  # the lemma of "яйца"
        (MOLOKO, [("Молоко", 1), ("яйцо", 2)]),
        ("добавь хлеба в список покупок", [("хлеб", 1)]),
        ("добавь 2 батона хлеба в список", [("батон хлеба", 2)]),
        ("добавь 2 батона хлеба в список", [("хлеб", 2)]),
        ("добавь ёжика в список", [("ежик", 1)]),  # ё and е are one letter here
        ("добавь десяток яиц в список покупок", [("яиц", 10)]),
        ("купи хлеба", [("хлеб", 1)]),  # outside the baseline's grammar: the text alone
    ],
)
def test_inflections_and_plurals_still_ground(text: str, items: list[tuple[str, int]]) -> None:
    assert verdict(text, candidate(*items)) is Reason.ACCEPTED
    assert verdict(text, candidate(*items, confidence=None)) is Reason.ACCEPTED


def test_stems_are_the_snowball_ones() -> None:
    assert stem("eggs") == stem("egg")
    assert stem("молока") == stem("молоко")
    assert stem("яйца") == stem("яйцо")
    assert stem("хлеба") == stem("хлеб")
    assert stem("vodka") != stem("milk")
    assert stem("水") == "水"  # no stemmer for this script: the word itself


def test_a_wordless_name_must_be_in_the_text() -> None:
    g = Grounding("add 🍎 and milk to my list")
    assert g.name_grounded("🍎") and not g.name_grounded("🍌") and not g.name_grounded("+")


def test_grounding_is_low_confidence_first_then_item_not_grounded() -> None:
    """The rules keep their order: a low confidence is still named ``low_confidence``."""
    assert verdict(MILK_EGGS, candidate(("vodka", 1), confidence=0.1)) is Reason.LOW_CONFIDENCE
    assert verdict(MILK_EGGS, candidate(("milk", 1), confidence=0.1)) is Reason.LOW_CONFIDENCE


def test_the_new_reason_is_a_fallback_every_sink_knows() -> None:
    assert Reason.ITEM_NOT_GROUNDED in FALLBACK_REASONS
    assert (Status.FALLBACK_DETERMINISTIC, Reason.ITEM_NOT_GROUNDED) in STATUS_REASONS


SAID = st.sampled_from(["milk", "eggs", "bread", "молоко", "яйца", "хлеб", "сыр", "cheese"])
LATIN = "abcdefghijklmnopqrstuvwxyz"
CYRILLIC = "абвгдежзийклмнопрстуфхцчшщъыьэюя"
NEVER_SAID = st.text(st.sampled_from(LATIN), min_size=3, max_size=12) | st.text(
    st.sampled_from(CYRILLIC), min_size=3, max_size=12
)


@settings(max_examples=300, deadline=None)
@given(
    said=st.lists(SAID, min_size=1, max_size=4, unique=True),
    invented=NEVER_SAID,
    position=st.integers(0, 4),
    quantity=st.integers(1, 999),
    russian=st.booleans(),
)
def test_one_invented_item_refuses_the_candidate_at_confidence_one(
    said: list[str], invented: str, position: int, quantity: int, russian: bool
) -> None:
    text = (
        f"добавь {' и '.join(said)} в список покупок"
        if russian
        else f"add {' and '.join(said)} to my shopping list"
    )
    grounding = Grounding(text)
    if grounding.name_grounded(invented):  # a form of a said word ("eggses"): grounded indeed
        return
    items = [(n, 1) for n in said]
    items.insert(min(position, len(items)), (invented, quantity))
    assert verdict(text, candidate(*items)) is Reason.ITEM_NOT_GROUNDED


@settings(max_examples=200, deadline=None)
@given(said=st.lists(SAID, min_size=1, max_size=4, unique=True), quantity=st.integers(2, 999))
def test_a_quantity_the_text_does_not_state_is_refused(said: list[str], quantity: int) -> None:
    text = f"add {' and '.join(said)} to my shopping list"
    items = [(n, 1) for n in said]
    items[0] = (said[0], quantity)
    assert verdict(text, candidate(*items)) is Reason.ITEM_NOT_GROUNDED


def test_hot_path_cost_is_small() -> None:
    """Generous bound (a busy 2-core machine): the measured figure is in the README."""
    command = CommandDTO.model_validate(
        {"command_id": "c", "user_id": "u", "text": MOLOKO, "capabilities": ["start_job"]}
    )
    baseline = route(command).model_dump(mode="json")
    raw = candidate(("молоко", 1), ("яйцо", 2))

    def once() -> None:
        judge(raw, corridor=C, command=command, baseline=baseline, threshold=0.7)

    once()
    per_call = min(timeit.repeat(once, number=200, repeat=3)) / 200
    assert per_call < 0.002  # 2 ms: two orders of magnitude above the measured cost
