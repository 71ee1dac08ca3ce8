"""Grounding never refuses the baseline itself.

The baseline is a deterministic reading of the same text, so its own items, sent back as a
candidate (what llm-sim's default answer does, and what a perfect model would say), must pass
the grounding rule and the confidence surrogate on every command: the shipped replay corpus,
the injection corpus, every text the reference router's tests name, and generated commands.
Only the name rules may refuse a baseline item (a user can type a URL; the baseline then
serves it, the corridor just does not vouch for it).
"""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from partial_trust.apps.analysis import replay
from partial_trust.contracts import CommandDTO
from partial_trust.middleware.acceptance import judge
from partial_trust.middleware.baseline import route
from partial_trust.outcome import Reason
from tests import test_baseline_contract, test_baseline_intents, test_baseline_items
from tests.support.allowlist_oracle import PROFILES, name_ok
from tests.support.baseline import cmd

C = "add_shopping_item"
FIXTURES = Path(__file__).parent / "fixtures"
THRESHOLD = max(PROFILES.values())


def _parametrized_texts(module: ModuleType) -> list[str]:
    """Every ``text`` a reference test is parametrized with."""
    texts: list[str] = []
    for value in vars(module).values():
        for mark in getattr(value, "pytestmark", []):
            if mark.name != "parametrize":
                continue
            names = (
                [n.strip() for n in mark.args[0].split(",")]
                if isinstance(mark.args[0], str)
                else list(mark.args[0])
            )
            if "text" not in names:
                continue
            at = names.index("text")
            for case in mark.args[1]:
                text = case if len(names) == 1 else case[at]
                if isinstance(text, str):
                    texts.append(text)
    return texts


def corpus_commands() -> list[CommandDTO]:
    commands = list(replay.load_corpus(replay.SHIPPED_CORPUS))
    injection = json.loads((FIXTURES / "injection_corpus.json").read_text(encoding="utf-8"))
    commands += [cmd(entry["text"]) for entry in injection["commands"]]
    modules = (test_baseline_contract, test_baseline_intents, test_baseline_items)
    texts = [t for m in modules for t in _parametrized_texts(m)]
    texts += list(test_baseline_contract.EXAMPLES)
    commands += [cmd(t) for t in texts]
    return commands


def as_candidate(decision: dict[str, Any], confidence: float | None) -> dict[str, Any]:
    payload = decision["job"]["payload"]
    raw: dict[str, Any] = {
        "intent": decision["intent"],
        "job": {"job_type": decision["job"]["job_type"], "payload": dict(payload)},
    }
    if confidence is not None:
        raw["confidence"] = confidence
    return raw


def verdicts(command: CommandDTO) -> list[Reason] | None:
    decision = route(command).model_dump(mode="json")
    if decision["intent"] != C or decision["job"] is None:
        return None
    return [
        judge(
            as_candidate(decision, confidence),
            corridor=C,
            command=command,
            baseline=decision,
            threshold=THRESHOLD,
        ).reason
        for confidence in (1.0, None)
    ]


CORPUS = corpus_commands()


def test_the_corpora_are_large_and_mostly_in_the_corridor() -> None:
    in_corridor = [c for c in CORPUS if verdicts(c) is not None]
    assert len(CORPUS) > 150 and len(in_corridor) > 80
    assert sum(any("а" <= ch <= "я" for ch in c.text.lower()) for c in in_corridor) > 20


@pytest.mark.parametrize("command", CORPUS, ids=lambda c: c.text[:40])
def test_the_baselines_own_items_are_accepted(command: CommandDTO) -> None:
    reasons = verdicts(command)
    if reasons is None:
        return
    for got in reasons:
        assert got is Reason.ACCEPTED or got is Reason.INVALID_ITEM_NAME, (command.text, got)


def test_every_shipped_replay_command_is_accepted_outright() -> None:
    shipped = replay.load_corpus(replay.SHIPPED_CORPUS)
    results = [v for c in shipped if (v := verdicts(c)) is not None]
    assert len(results) >= 35 and all(v == [Reason.ACCEPTED] * 2 for v in results)


def test_a_refused_baseline_has_an_item_name_the_oracle_refuses() -> None:
    """Every refusal is explained by the name rules alone (read by the independent oracle)."""
    refused = [c for c in CORPUS if (v := verdicts(c)) and Reason.ACCEPTED not in v]
    assert refused  # the injection corpus types markup and URLs into commands
    for command in refused:
        names = [i["name"] for i in route(command).model_dump()["job"]["payload"]["items"]]
        assert not all(name_ok(n, command.text) for n in names), command.text


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=test_baseline_contract.texts)
def test_generated_commands_never_refuse_their_baseline_for_grounding(text: str) -> None:
    reasons = verdicts(cmd(text))
    if reasons is not None:
        assert Reason.ITEM_NOT_GROUNDED not in reasons and Reason.LOW_CONFIDENCE not in reasons
