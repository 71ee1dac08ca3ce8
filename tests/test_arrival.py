"""``ArrivalClock``: requests that start in one loop turn share one deadline start."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest
import respx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from partial_trust.apps.reference.app import route_endpoint
from partial_trust.middleware.arrival import MAX_TURN_S, ArrivalClock
from tests.corridor_harness import LLM_URL, command, completion, good_candidate, harness, settings

pytestmark = pytest.mark.anyio


async def test_one_turn_shares_its_first_start_and_the_next_turn_starts_afresh() -> None:
    loop = asyncio.get_running_loop()
    clock = ArrivalClock()
    first = clock.now(loop)
    time.sleep(0.005)  # later in the same turn: still the turn's start
    assert clock.now(loop) == first
    await asyncio.sleep(0)  # the next turn
    await asyncio.sleep(0)
    later = clock.now(loop)
    assert later > first


async def test_a_turn_longer_than_the_bound_no_longer_shares_its_start() -> None:
    loop = asyncio.get_running_loop()
    clock = ArrivalClock(max_turn_s=0.02)
    first = clock.now(loop)
    time.sleep(0.03)
    assert clock.now(loop) > first + 0.02


def test_the_bound_is_a_positive_number_of_seconds() -> None:
    assert ArrivalClock().max_turn_s == MAX_TURN_S
    for bad in (0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="max_turn_s"):
            ArrivalClock(max_turn_s=bad)


def test_a_start_left_by_a_stopped_loop_is_never_used_on_another() -> None:
    clock = ArrivalClock()

    async def start() -> float:
        return clock.now(asyncio.get_running_loop())

    old = asyncio.run(start())  # the loop closes before the clearing callback runs
    time.sleep(0.01)
    new = asyncio.run(start())
    assert new > old  # another loop: its own start, never the stopped loop's


async def test_ten_requests_arriving_together_all_answer_at_one_deadline(tmp_path: Path) -> None:
    """Each baseline holds the loop 30 ms, so the tenth starts ~270 ms after the first.
    Counted from each request's own start, the last would answer at ~270 + 400 ms; from the
    batch's arrival every one answers at the 400 ms deadline or as soon as its baseline ran."""
    timeout_s, hold_s, n = 0.4, 0.03, 10

    async def hang(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(5)
        return completion(good_candidate())

    async def loop_hog(request: Request) -> Response:
        until = time.perf_counter() + hold_s
        while time.perf_counter() < until:  # wall time: the same on a loaded machine
            pass
        return await route_endpoint(request)

    with respx.mock(base_url=LLM_URL, assert_all_called=False) as llm:
        llm.post("/chat/completions").mock(side_effect=hang)
        async with harness(tmp_path, settings(timeout_ms=int(timeout_s * 1000))) as h:
            h.app.app = Starlette(routes=[Route("/route", loop_hog, methods=["POST"])])
            started = time.perf_counter()
            done: list[float] = []

            async def one(i: int) -> int:
                response = await h.post(command(f"c-{i}"))
                done.append(time.perf_counter() - started)
                return response.status_code

            statuses = await asyncio.gather(*(one(i) for i in range(n)))
            reasons = [line["reason_code"] for line in h.lines()]
    assert statuses == [200] * n
    assert reasons == ["llm_timeout"] * n
    own_start_end = (n - 1) * hold_s + timeout_s  # where the last would end before
    assert max(done) >= timeout_s - 0.01
    assert max(done) < own_start_end - 0.12, (
        f"the last answer came {max(done):.3f} s after the batch arrived; counted from its "
        f"own start it would be {own_start_end:.3f} s"
    )
