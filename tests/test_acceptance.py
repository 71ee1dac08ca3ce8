from __future__ import annotations

from typing import Any

import pytest

from partial_trust.contracts import CommandDTO
from partial_trust.middleware.acceptance import MAX_ITEMS, grounding, item_key, judge, merge
from partial_trust.outcome import Reason

CORRIDOR = "add_shopping_item"
COMMAND = CommandDTO.model_validate(
    {
        "command_id": "c-1",
        "user_id": "u-1",
        "text": "add milk and two eggs to my shopping list",
        "capabilities": ["start_job"],
        "context": {"default_list_id": "l-1", "lists": ["l-1", "l-2"]},
    }
)
BASELINE: dict[str, Any] = {
    "command_id": "c-1",
    "intent": CORRIDOR,
    "action": "start_job",
    "job": {
        "job_type": CORRIDOR,
        "payload": {
            "list_id": "l-1",
            "items": [{"name": "milk", "quantity": 1}, {"name": "eggs", "quantity": 2}],
        },
    },
}


def candidate(**changes: Any) -> dict[str, Any]:
    items = changes.pop("items", [{"name": "milk", "quantity": 1}, {"name": "eggs", "quantity": 2}])
    raw: dict[str, Any] = {
        "intent": changes.pop("intent", CORRIDOR),
        "job": {
            "job_type": changes.pop("job_type", CORRIDOR),
            "payload": {"list_id": changes.pop("list_id", "l-1"), "items": items},
        },
        "confidence": changes.pop("confidence", 0.9),
    }
    raw.update(changes)
    return raw


def run(raw: object, threshold: float = 0.7) -> Any:
    return judge(raw, corridor=CORRIDOR, command=COMMAND, baseline=BASELINE, threshold=threshold)


def test_a_good_candidate_is_accepted_and_matches() -> None:
    verdict = run(candidate())
    assert verdict.reason is Reason.ACCEPTED and verdict.accepted
    assert (verdict.intent_match, verdict.entity_key_match, verdict.items_llm) == (True, True, 2)
    assert verdict.confidence == 0.9


def test_an_unnamed_list_of_the_command_is_refused() -> None:
    """ "l-2" is one of the user's lists, but the text names none: the baseline's list stands."""
    verdict = run(candidate(list_id="l-2"))
    assert verdict.reason is Reason.LIST_ID_NOT_ALLOWED
    assert verdict.agreement is False and verdict.entity_key_match is True


def judge_text(text: str, lists: list[str], base_list: str | None, cand_list: str) -> Reason:
    command = COMMAND.model_copy(
        update={
            "text": text,
            "context": COMMAND.context.model_copy(
                update={"default_list_id": lists[0], "lists": lists}
            ),
        }
    )
    payload = {**BASELINE["job"]["payload"], "list_id": base_list}
    baseline = {**BASELINE, "job": {**BASELINE["job"], "payload": payload}}
    raw = candidate(list_id=cand_list, items=[{"name": "milk", "quantity": 1}])
    verdict = judge(raw, corridor=CORRIDOR, command=command, baseline=baseline, threshold=0.7)
    return verdict.reason


@pytest.mark.parametrize(
    ("text", "lists", "base_list", "cand_list", "reason"),
    [
        # a list the text names, in any inflection, even where the baseline kept the default
        ("add milk to the party list", ["home", "party"], "home", "party", Reason.ACCEPTED),
        ("добавь молоко на дачу", ["дом", "дача"], "дом", "дача", Reason.ACCEPTED),
        ("add milk to my list party", ["home", "party"], "party", "party", Reason.ACCEPTED),
        # another of the user's lists that the text does not name
        (
            "add milk to my list party",
            ["home", "party"],
            "party",
            "home",
            Reason.LIST_ID_NOT_ALLOWED,
        ),
        ("добавь молоко в список", ["дом", "дача"], "дом", "дача", Reason.LIST_ID_NOT_ALLOWED),
        # no list in the baseline's answer: the user's default list is theirs
        ("add milk", ["home", "party"], None, "home", Reason.ACCEPTED),
        ("add milk", ["home", "party"], None, "party", Reason.LIST_ID_NOT_ALLOWED),
        # the list's words are in the text, but not as one run: it is not named
        ("add 2 l of milk", ["l-1", "l-2"], "l-1", "l-2", Reason.LIST_ID_NOT_ALLOWED),
        ("add milk to list l-22", ["l-1", "l-2", "l-22"], "l-1", "l-2", Reason.LIST_ID_NOT_ALLOWED),
        (
            "add milk to the list for the party",
            ["home", "party list"],
            "home",
            "party list",
            Reason.LIST_ID_NOT_ALLOWED,
        ),
        (
            "add milk to my Party Lists",
            ["home", "party list"],
            "home",
            "party list",
            Reason.ACCEPTED,
        ),
        # named in the text but not one of the user's lists
        (
            "add milk to the office list",
            ["home", "party"],
            "home",
            "office",
            Reason.LIST_ID_NOT_ALLOWED,
        ),
    ],
)
def test_a_list_other_than_the_baselines_must_be_named_in_the_text(
    text: str, lists: list[str], base_list: str | None, cand_list: str, reason: Reason
) -> None:
    assert judge_text(text, lists, base_list, cand_list) is reason


def test_item_differences_are_measured_on_an_accepted_candidate() -> None:
    verdict = run(candidate(items=[{"name": "Milk ", "quantity": 1}]))
    assert verdict.accepted and verdict.entity_key_match is False and verdict.items_llm == 1


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (candidate(intent="remove_shopping_item"), Reason.INTENT_MISMATCH),
        (candidate(job_type="set_timer"), Reason.INTENT_MISMATCH),
        (candidate(extra="x"), Reason.SCHEMA_VIOLATION),
        (candidate(items=[{"name": "milk", "quantity": "1"}]), Reason.SCHEMA_VIOLATION),
        (candidate(items=[{"name": "milk", "quantity": 1, "price": 3}]), Reason.SCHEMA_VIOLATION),
        (candidate(confidence=1.5), Reason.SCHEMA_VIOLATION),
        ([1, 2], Reason.SCHEMA_VIOLATION),
        ("text", Reason.SCHEMA_VIOLATION),
        (candidate(items=[]), Reason.EMPTY_ITEMS),
        (
            candidate(items=[{"name": f"i{n}", "quantity": 1} for n in range(MAX_ITEMS + 1)]),
            Reason.TOO_MANY_ITEMS,
        ),
        (candidate(items=[{"name": " ", "quantity": 1}]), Reason.INVALID_ITEM_NAME),
        (candidate(items=[{"name": "x" * 65, "quantity": 1}]), Reason.INVALID_ITEM_NAME),
        (candidate(items=[{"name": "milk\x00", "quantity": 1}]), Reason.INVALID_ITEM_NAME),
        (candidate(items=[{"name": "<b>milk</b>", "quantity": 1}]), Reason.INVALID_ITEM_NAME),
        (candidate(items=[{"name": "milk\u202e", "quantity": 1}]), Reason.INVALID_ITEM_NAME),
        (candidate(items=[{"name": "see https://x.io", "quantity": 1}]), Reason.INVALID_ITEM_NAME),
        (candidate(list_id="l-999"), Reason.LIST_ID_NOT_ALLOWED),
        (candidate(confidence=0.2), Reason.LOW_CONFIDENCE),
    ],
)
def test_each_rule_has_its_own_reason(raw: object, reason: Reason) -> None:
    assert run(raw).reason is reason


def test_intent_match_is_known_even_when_the_schema_fails() -> None:
    verdict = run(candidate(intent="remove_shopping_item", extra=1))
    assert verdict.reason is Reason.SCHEMA_VIOLATION and verdict.intent_match is False
    assert run("nope").intent_match is None


def test_missing_confidence_uses_grounding_surrogate() -> None:
    grounded = candidate()
    del grounded["confidence"]
    assert run(grounded).accepted and run(grounded).confidence == 1.0
    invented = candidate(items=[{"name": "milk", "quantity": 1}, {"name": "caviar", "quantity": 1}])
    del invented["confidence"]
    verdict = run(invented)
    assert verdict.reason is Reason.LOW_CONFIDENCE and verdict.confidence == 0.5
    assert grounding([], "anything") == 0.0


def test_item_key_normalises() -> None:
    assert item_key("  Milk  ") == item_key("milk") == item_key("MILK.")
    assert item_key("Молоко") == "молоко"
    assert item_key("green   tea") == "green tea"


def test_merge_changes_only_list_and_items() -> None:
    verdict = run(candidate(list_id="l-2", items=[{"name": " bread ", "quantity": 3}]))
    merged = merge(BASELINE, verdict.candidate)
    assert merged.keys() == BASELINE.keys()
    assert merged["job"]["payload"] == {
        "list_id": "l-2",
        "items": [{"name": "bread", "quantity": 3}],
    }
    assert merged["command_id"] == "c-1" and merged["action"] == "start_job"
    assert BASELINE["job"]["payload"]["list_id"] == "l-1"  # the baseline itself is untouched
