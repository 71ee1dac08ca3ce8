"""The double's ``disagree`` mode: a wrong answer that every acceptance rule takes.

Replay's disagreement check is only seen to work if something disagrees: a refused candidate
falls back to the baseline and agrees, so the mode must change the decision (another of the
command's lists that the text names, else one item fewer) while every item stays grounded in
the text and the list stays one the list rule takes.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

import httpx
import pytest

from partial_trust.apps.llm_sim import Mode, SimConfig, create_app, main
from partial_trust.apps.llm_sim.answers import correct_candidate, corrupt
from partial_trust.apps.llm_sim.cli import build_parser, config_from_args
from partial_trust.contracts import CommandDTO
from partial_trust.middleware import acceptance
from partial_trust.middleware.acceptance import judge
from partial_trust.middleware.baseline import route
from partial_trust.middleware.candidate import ShoppingCandidate
from partial_trust.outcome import Reason
from tests.support.llm_sim import COMMAND, PATH, REQUEST, answer_candidate, force_mode, sim_client

C = "add_shopping_item"


def shopping(text: str, context: dict[str, Any]) -> CommandDTO:
    return CommandDTO.model_validate(
        {"command_id": "c", "user_id": "u", "text": text, "capabilities": ["start_job"],
         "context": context}
    )  # fmt: skip


@pytest.mark.anyio
async def test_disagree_drops_the_last_item_when_the_text_names_no_other_list(
    sim: httpx.AsyncClient,
) -> None:
    """The DESIGN command names no list: moving its items to ``l-2`` would be refused."""
    await force_mode(sim, Mode.DISAGREE)
    got = await answer_candidate(sim)
    want = correct_candidate(COMMAND, route, 0.9)
    ShoppingCandidate.model_validate(got)  # still a valid candidate
    assert got["job"]["payload"]["items"] == want["job"]["payload"]["items"][:-1] != []
    assert got["intent"] == want["intent"]
    assert got["job"]["payload"]["list_id"] == want["job"]["payload"]["list_id"] == "l-1"
    stats = (await sim.get("/sim/stats")).json()
    assert stats["by_mode"]["disagree"] == 1


@pytest.mark.parametrize(
    ("context", "text", "expected_items", "expected_list"),
    [
        ({"lists": ["home"]}, "add milk and two eggs to my shopping list", 1, "home"),
        ({"lists": ["home"]}, "add milk to my shopping list", 1, "home"),
        # another of the user's lists, but the text does not name it
        ({"default_list_id": "l-1", "lists": ["l-1", "l-2"]},
         "add milk and two eggs to my shopping list", 1, "l-1"),
        ({"default_list_id": "l-1", "lists": ["l-1", "l-2"]},
         "add 2 l of milk and bread to my shopping list", 1, "l-1"),
        # the text names the baseline's list, and only that one
        ({"default_list_id": "l-1", "lists": ["l-1", "l-2"]},
         "add milk and two eggs to my shopping list l-2", 1, "l-2"),
        ({"default_list_id": "l-1", "lists": ["l-1", "l-2"]}, "add milk to list l-2", 1, "l-2"),
    ],
)  # fmt: skip
def test_disagree_without_another_named_list_drops_the_last_item_and_is_accepted(
    context: dict[str, Any], text: str, expected_items: int, expected_list: str
) -> None:
    command = shopping(text, context)
    raw = corrupt(
        correct_candidate(command, route, 0.9),
        Mode.DISAGREE,
        command,
        SimConfig(),
        random.Random(0),
    )
    assert len(raw["job"]["payload"]["items"]) == expected_items
    assert raw["job"]["payload"]["list_id"] == expected_list
    baseline = route(command).model_dump(mode="json")
    verdict = judge(raw, corridor=C, command=command, baseline=baseline, threshold=0.7)
    assert verdict.accepted and verdict.candidate is not None
    changed = acceptance.merge(baseline, verdict.candidate) != baseline
    assert changed == (len(baseline["job"]["payload"]["items"]) > 1)


@pytest.mark.parametrize(
    ("text", "lists", "expected_list"),
    [
        ("add milk and bread to the party list", ["home", "party"], "party"),
        ("добавь молоко и хлеб на дачу", ["дом", "дача"], "дача"),
    ],
)
def test_disagree_moves_the_items_to_another_list_the_text_names(
    text: str, lists: list[str], expected_list: str
) -> None:
    """The reference baseline reads only list ids it can parse, so an answer on the default
    list (what a baseline that missed the name would say) is moved to the list the text names;
    the items stay, and the list rule takes it."""
    command = shopping(text, {"default_list_id": lists[0], "lists": lists})
    payload = {
        "list_id": lists[0],
        "items": [{"name": n, "quantity": 1} for n in text.split()[1:4:2]],
    }
    answer = {"intent": C, "job": {"job_type": C, "payload": payload}, "confidence": 0.9}
    baseline = {"intent": C, "action": "start_job", "job": {"job_type": C, "payload": payload}}
    raw = corrupt(
        {**answer, "job": {"job_type": C, "payload": dict(payload)}},
        Mode.DISAGREE, command, SimConfig(), random.Random(0),
    )  # fmt: skip
    assert raw["job"]["payload"] == {**payload, "list_id": expected_list}
    verdict = judge(raw, corridor=C, command=command, baseline=baseline, threshold=0.7)
    assert verdict.reason is Reason.ACCEPTED and verdict.agreement is False


def test_disagree_rate_is_a_seeded_share_and_a_cli_option() -> None:
    args = build_parser().parse_args(["--disagree-rate", "0.25", "--seed", "3"])
    config = config_from_args(args)
    assert config.disagree_rate == 0.25

    async def count() -> tuple[int, int]:
        async with sim_client(create_app(config)) as client:
            for _ in range(400):
                assert (await client.post(PATH, json=REQUEST)).status_code == 200
            by_mode = (await client.get("/sim/stats")).json()["by_mode"]
            return by_mode["disagree"], by_mode["none"]

    first, second = asyncio.run(count()), asyncio.run(count())
    assert first == second  # same seed, same share
    assert 60 <= first[0] <= 140 and sum(first) == 400
    # Adding the mode last left the other modes' seeded draws where they were.
    assert list(Mode)[-1] is Mode.DISAGREE
    assert SimConfig(disagree_rate=1.0).pick(0.999) is Mode.DISAGREE
    assert SimConfig(error_rate=0.5, disagree_rate=0.5).pick(0.25) is Mode.ERROR


def test_force_disagree_is_accepted_by_the_cli() -> None:
    args = build_parser().parse_args(["--force", "disagree"])
    assert config_from_args(args).force is Mode.DISAGREE
    with pytest.raises(SystemExit):
        main(["--disagree-rate", "1.5"])
