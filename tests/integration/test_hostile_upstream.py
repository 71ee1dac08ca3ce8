"""A hostile LLM upstream behind the real app: four users, each gets only what their text says.

``tests/support/hostile_llm.py`` runs as its own process and answers every call correctly,
then misbehaves on the connection (the answer twice, a late copy, a body past its length, a
response nobody asked for) or shifts every answer onto the next request. The app runs under
real uvicorn on both event loops (asyncio with h11; uvloop with httptools, what
``uvicorn[standard]`` picks). Four users with different shopping lists send commands, one
after another and at once: every answer must be the baseline's own decision for that
user's text, and the risk log must never show an accepted candidate that disagrees with it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.stack import BASE_ENV, shopping_command, wait_lines
from tests.support.hostile_llm import FAULTS
from tests.support.procs import PYTHON, Server, free_port, partial_trust, run_server

pytestmark = pytest.mark.integration

TEXTS = (
    "add insulin and two syringes to my shopping list",
    "add bread to my shopping list",
    "add apples and three pears to my shopping list",
    "add coffee and two lemons to my shopping list",
)
LOOPS = {"asyncio": ("asyncio", "h11"), "uvloop": ("uvloop", "httptools")}
#: Faults whose stray bytes are on the wire before the connection could be reused: the
#: transport sees them and no answer ever lands on another call.
TRANSPORT_ALONE = ("double", "overlong", "chunked-extra")
#: Why a candidate meant for another command is refused: its items or list are not in this
#: command's text. (``late-copy`` and ``shift`` rely on these when the timing defeats the wire.)
BINDING_REFUSALS = {"item_not_grounded", "list_id_not_allowed"}


@contextmanager
def hostile(tmp_path: Path, fault: str) -> Iterator[Server]:
    port = free_port()
    argv = [PYTHON, "-m", "tests.support.hostile_llm", "--port", str(port), "--fault", fault]
    with run_server(
        argv, port=port, ready_path="/health", log_path=tmp_path / f"hostile-{fault}.log"
    ) as server:
        yield server


@contextmanager
def app_on(tmp_path: Path, loop: str, llm_url: str) -> Iterator[tuple[Server, Path]]:
    """``partial-trust serve`` on the event loop and HTTP parser of ``loop``."""
    port = free_port()
    risk_log = tmp_path / f"{loop}-risk.jsonl"
    event_loop, http = LOOPS[loop]
    env = {
        **BASE_ENV,
        "PARTIAL_TRUST_TIMEOUT_MS": "1000",
        "LLM_BASE_URL": llm_url,
        "PARTIAL_TRUST_RISK_LOG_PATH": str(risk_log),
    }
    argv = partial_trust(
        *("serve", "--port", str(port), "--loop", event_loop, "--http", http),
        *("--log-level", "warning"),
    )
    with run_server(
        argv, port=port, ready_path="/health", log_path=tmp_path / f"app-{loop}.log", env=env
    ) as server:
        yield server, risk_log


def baseline_of(body: dict[str, Any]) -> dict[str, Any]:
    from partial_trust.contracts import CommandDTO
    from partial_trust.middleware.baseline import route

    return route(CommandDTO.model_validate(body)).model_dump(mode="json")


def send(client: httpx.Client, app: Server, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post(f"{app.url}/route", content=json.dumps(body), timeout=10)
    assert response.status_code == 200, response.text
    return dict(response.json())


def send_once(app: Server, body: dict[str, Any]) -> dict[str, Any]:
    with httpx.Client() as client:
        return send(client, app, body)


@pytest.mark.parametrize("loop", sorted(LOOPS))
@pytest.mark.parametrize("fault", FAULTS)
def test_four_users_get_only_what_their_own_text_supports(
    tmp_path: Path, loop: str, fault: str
) -> None:
    bodies = [
        shopping_command(f"c-{fault}-{round_}-{user}", text, user_id=f"u-{user}")
        for round_ in range(5)
        for user, text in enumerate(TEXTS)
    ]
    with hostile(tmp_path, fault) as llm, app_on(tmp_path, loop, f"{llm.url}/v1") as (app, log):
        with httpx.Client() as client:
            answers = [send(client, app, body) for body in bodies[:8]]  # one after another
            with ThreadPoolExecutor(4) as pool:  # and four at once
                answers += list(pool.map(lambda b: send_once(app, b), bodies[8:]))
            calls = client.get(f"{llm.url}/stats").json()["calls"]
        lines = wait_lines(log, len(bodies))
    for body, answer in zip(bodies, answers, strict=True):
        assert answer == baseline_of(body), f"{fault}/{loop}: {body['text']!r} got {answer}"
    assert len(lines) == len(bodies) and calls >= len(bodies)
    wrong = [
        line for line in lines if line["status"] == "accepted_llm" and not line["entity_key_match"]
    ]
    assert not wrong, f"{fault}/{loop}: an accepted candidate disagreed with the command"
    outcomes = [(line["status"], line["reason_code"]) for line in lines]
    if fault in TRANSPORT_ALONE:  # the transport alone keeps these answers where they belong
        assert {status for status, _ in outcomes} == {"accepted_llm"}, outcomes
    else:
        # A copy that lands after the next request was written reads, on the wire, as that
        # request's answer (HTTP/1.1 carries no request id): then grounding refuses it, so a
        # fallback here must be a refusal for not matching this command's text, never an
        # accepted stranger (asserted above).
        refused = {reason for status, reason in outcomes if status != "accepted_llm"}
        assert refused <= BINDING_REFUSALS, outcomes
