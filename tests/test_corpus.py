"""The labelled shopping corpus (bench/corpus): well-formed, balanced, and judged honestly."""

from __future__ import annotations

from collections import Counter

import pytest

from bench.corpus.build import CONTEXTS, CORPUS_PATH, CORRIDOR, HELD_OUT, TRAIN, render
from bench.corpus_eval import baseline_accuracy, baseline_decision, is_right, load_corpus
from partial_trust.contracts import CommandDTO, Item
from partial_trust.middleware.candidate import CandidateItem

CORPUS = load_corpus()


def test_the_json_is_what_the_rows_build() -> None:
    assert CORPUS_PATH.read_text(encoding="utf-8") == render(), "run python -m bench.corpus.build"


def test_size_ids_and_russian_share() -> None:
    assert len(CORPUS) >= 300
    assert len({e["id"] for e in CORPUS}) == len(CORPUS)
    assert len({e["command"]["command_id"] for e in CORPUS}) == len(CORPUS)
    langs = Counter(e["lang"] for e in CORPUS)
    assert set(langs) == {"en", "ru"}
    assert 0.25 <= langs["ru"] / len(CORPUS) <= 0.45
    for entry in CORPUS:
        has_cyrillic = any("\u0400" <= ch <= "\u04ff" for ch in entry["command"]["text"])
        assert has_cyrillic == (entry["lang"] == "ru"), entry["id"]


@pytest.mark.parametrize("entry", CORPUS, ids=[e["id"] for e in CORPUS])
def test_every_command_and_label_is_valid(entry: dict[str, object]) -> None:
    command = CommandDTO.model_validate(entry["command"])
    label = entry["expected"]
    assert isinstance(label, dict)
    if label["intent"] != CORRIDOR:
        assert set(label) == {"intent"}
        assert label["intent"] in {"remove_shopping_item", "set_timer", "unknown"}
        return
    assert set(label) == {"intent", "list_id", "items"}
    assert label["list_id"] in command.context.lists
    assert 1 <= len(label["items"]) <= 20
    for item in label["items"]:
        Item.model_validate(item)
        CandidateItem.model_validate(item)
        assert item["name"] == item["name"].strip().lower()


def test_every_kind_of_command_is_in_both_halves() -> None:
    halves = Counter(e["split"] for e in CORPUS)
    assert set(halves) == {TRAIN, HELD_OUT}
    assert abs(halves[TRAIN] - halves[HELD_OUT]) <= len(CORPUS) * 0.05
    groups = {(e["lang"], e["category"]) for e in CORPUS}
    for group in groups:
        splits = {e["split"] for e in CORPUS if (e["lang"], e["category"]) == group}
        assert splits == {TRAIN, HELD_OUT}, group
    categories = {e["category"] for e in CORPUS}
    assert {"plain", "digits", "words", "several", "named", "informal", "other"} <= categories
    assert "injection" in categories
    assert {e["command"]["context"]["default_list_id"] for e in CORPUS} == {
        c["default_list_id"] for c in CONTEXTS.values()
    }
    not_taken = [e for e in CORPUS if e["expected"]["intent"] != CORRIDOR]
    assert len(not_taken) >= 40


def test_the_judge_compares_lists_items_and_quantities() -> None:
    label = {"intent": CORRIDOR, "list_id": "l-1", "items": [{"name": "eggs", "quantity": 2}]}

    def decision(list_id: str, *items: tuple[str, int]) -> dict[str, object]:
        payload = {"list_id": list_id, "items": [{"name": n, "quantity": q} for n, q in items]}
        return {"intent": CORRIDOR, "action": "start_job", "job": {"payload": payload}}

    assert is_right(label, decision("l-1", ("Eggs", 2)))
    assert is_right(label, decision("l-1", ("egg", 2)))  # stems: one item
    assert not is_right(label, decision("l-1", ("eggs", 1)))
    assert not is_right(label, decision("l-2", ("eggs", 2)))
    assert not is_right(label, decision("l-1", ("eggs", 2), ("milk", 1)))
    assert not is_right(label, {**decision("l-1", ("eggs", 2)), "action": "clarify"})
    other = {"intent": "unknown"}
    assert is_right(other, {"intent": "unknown", "action": "clarify"})
    assert is_right(other, {**decision("l-1", ("eggs", 2)), "action": "clarify"})
    assert not is_right(other, decision("l-1", ("eggs", 2)))


def test_the_baselines_accuracy_is_measured_not_assumed() -> None:
    acc = baseline_accuracy(CORPUS)
    right = sum(is_right(e["expected"], baseline_decision(e)) for e in CORPUS)
    print(f"baseline accuracy on the corpus: {acc.right}/{acc.total} = {acc.rate:.3f}")
    assert acc.total == len(CORPUS) and acc.right == right
    # The corpus holds commands the deterministic grammar gets wrong (typos, injected
    # items, counts it cannot read) and ones it gets right; neither share may be empty.
    assert 0 < acc.right < acc.total
    assert acc.groups["plain"][0] == acc.groups["plain"][1]  # its own grammar, all right
    assert acc.groups["informal"][0] < acc.groups["informal"][1]
