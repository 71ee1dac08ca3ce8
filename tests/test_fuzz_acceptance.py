"""Fuzz: ``acceptance.judge`` accepts exactly the candidates the README's allowlist allows.

Hypothesis feeds commands (English, Russian, random Unicode, random list contexts) and LLM
outputs (shaped like the candidate schema and not) straight into ``acceptance.judge`` and
compares its verdict with the independent oracle in ``tests/support/allowlist_oracle.py``: no
invalid candidate is ever accepted, no valid one refused, and an accepted one, once merged
into the baseline, keeps the baseline's shape. The oracle's own sanity is checked here too,
since every fuzz test leans on it.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from partial_trust.contracts import CommandDTO
from partial_trust.middleware import acceptance
from tests.support.allowlist_oracle import (
    PROFILES,
    C,
    allowlist_ok,
    baseline_of,
    grounded_share,
    in_corridor,
    list_ok,
    name_ok,
    names_list,
)
from tests.support.allowlist_oracle import corpus_command as _corpus_command
from tests.support.fuzz_strategies import commands, llm_outputs


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), command=commands(), profile=st.sampled_from(sorted(PROFILES, key=str)))
def test_judge_accepts_exactly_the_allowlist(
    data: st.DataObject, command: dict[str, Any], profile: str | None
) -> None:
    baseline = baseline_of(command)
    if not in_corridor(baseline):
        baseline = {
            **baseline,
            "intent": C,
            "action": "start_job",
            "job": {"job_type": C, "payload": {"list_id": "l-1", "items": []}},
        }
    raw = data.draw(llm_outputs(command))
    threshold = PROFILES[profile]
    verdict = acceptance.judge(
        raw,
        corridor=C,
        command=CommandDTO.model_validate(command),
        baseline=baseline,
        threshold=threshold,
    )
    expected = allowlist_ok(raw, command, baseline, threshold)
    event(f"verdict: {verdict.reason.value}")
    assert verdict.accepted == expected, (verdict.reason, raw)
    if verdict.accepted:
        assert verdict.candidate is not None
        merged = acceptance.merge(baseline, verdict.candidate)
        assert merged.keys() == baseline.keys() and merged["job"].keys() == baseline["job"].keys()
        assert merged["job"]["payload"].keys() == baseline["job"]["payload"].keys()
        assert all(
            name_ok(i["name"], command["text"]) and i["name"] == i["name"].strip()
            for i in merged["job"]["payload"]["items"]
        )


def test_oracle_sanity() -> None:
    """The oracle itself: a plain good candidate passes, each single defect fails."""
    command = _corpus_command({"text": "add milk and two eggs to my shopping list"})
    base = baseline_of(command)
    good: dict[str, Any] = {
        "intent": C,
        "job": {"job_type": C, "payload": {"list_id": "l-1", "items": [{"name": "milk"}]}},
        "confidence": 0.9,
    }
    assert allowlist_ok(good, command, base, 0.7)
    assert not allowlist_ok(on_list(good, "l-2"), command, base, 0.7)  # not named in the text
    assert not allowlist_ok(on_list(good, "l-9"), command, base, 0.7)  # not the user's
    assert not allowlist_ok({**good, "confidence": 0.1}, command, base, 0.7)
    assert not allowlist_ok({**good, "x": 1}, command, base, 0.7)
    assert not allowlist_ok({**good, "intent": "x"}, command, base, 0.7)
    assert not allowlist_ok(good | {"job": {**good["job"], "job_type": "x"}}, command, base, 0.7)
    assert [name_ok(n) for n in ["milk", " milk ", "", " ", "m" * 65, "<b>", "a://b", "\x07"]] == [
        True, True, False, False, False, False, False, False,
    ]  # fmt: skip
    assert grounded_share(["milk", "caviar"], "add milk") == 0.5


def on_list(raw: dict[str, Any], list_id: str) -> dict[str, Any]:
    return {**raw, "job": {**raw["job"], "payload": {**raw["job"]["payload"], "list_id": list_id}}}


def test_oracle_list_rule() -> None:
    """The oracle's list rule, on its own: the baseline's list, the default when the baseline
    has none, or one of the user's lists that the text names as a run of words, by stem."""
    assert names_list("l-2", "add milk to list l-2") and names_list("дача", "молоко на дачу")
    assert names_list("party list", "add milk to the Party Lists")
    assert not names_list("l-2", "add 2 l of milk") and not names_list("l-2", "list l-22")
    assert not names_list("party", "add milk") and names_list("🛒", "add milk to 🛒")
    command = _corpus_command(
        {"text": "add milk to the party list", "context": {"default_list_id": "home",
                                                           "lists": ["home", "party"]}}
    )  # fmt: skip
    base = {"job": {"payload": {"list_id": "home", "items": [{"name": "milk"}]}}}
    assert list_ok("home", command, base) and list_ok("party", command, base)
    assert not list_ok("office", command, base)
    unnamed = {**command, "text": "add milk"}
    assert list_ok("home", unnamed, base) and not list_ok("party", unnamed, base)
    no_list = {"job": {"payload": {"items": [{"name": "milk"}]}}}
    assert list_ok("home", unnamed, no_list) and not list_ok("party", unnamed, no_list)
