"""Shadow's admission of each request, spent from its share of the loop: while the share is
spent shadow does not look at a request at all (``ShadowQueue.admitting``), and every request
is still answered by the baseline and counted once, as a decision or as shed."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
import respx

from partial_trust.middleware.loop_load import DEFAULT_CEILING, LoopLoad
from partial_trust.middleware.shadow_share import LoopShare
from partial_trust.mode import Mode
from tests.corridor_harness import (
    CORRIDOR,
    LLM_URL,
    Harness,
    command,
    completion,
    good_candidate,
    settings,
)
from tests.test_shadow_share import FakeClock, NeverRead, dropped, queue_with


def shed(h: Harness) -> float:
    labels = {"corridor": CORRIDOR}
    return h.registry.get_sample_value("partial_trust_shadow_shed_total", labels) or 0.0


@pytest.mark.anyio
async def test_over_its_share_shadow_steps_aside_counts_and_asks_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While the share is spent shadow does not even look at a request: no parse, no
    decision counted, no baseline read, no LLM call; the request is counted as shed and its
    answer is the baseline's, byte for byte."""
    clock = FakeClock()
    share = LoopShare(0.1, burst_s=0.05, clock=clock, load=NeverRead())
    with respx.mock(base_url=LLM_URL) as llm:
        route = llm.post("/chat/completions").mock(return_value=completion(good_candidate()))
        async with queue_with(tmp_path, share) as h:
            read: list[bytes] = []
            decision = h.engine.corridor.baseline_decision

            def reading(body: bytes) -> Any:
                read.append(body)
                return decision(body)

            monkeypatch.setattr(h.engine.corridor, "baseline_decision", reading)
            await h.post(command("c-0"))
            await h.engine.shadow.join()
            assert route.call_count == 1 and len(read) == 1
            admitted = share.spent_s
            assert admitted > 0.0  # the admission and the job, both spent from the share
            decided = h.all_decisions()
            share.spend(1.0)  # as if jobs had held the loop for a second
            for i in range(1, 6):
                response = await h.post(command(f"c-{i}"))
                assert response.status_code == 200
                assert response.content == await h.baseline_bytes(command(f"c-{i}"))
            await h.engine.shadow.join()
            assert route.call_count == 1 and len(read) == 1
            assert h.all_decisions() == decided  # not even counted as not sampled: not looked at
            assert shed(h) == 5 and h.engine.shadow.status()["shed"] == 5
            assert h.engine.shadow.dropped == 0
            assert share.spent_s == pytest.approx(admitted + 1.0)  # stepping aside is free
            clock.now += 10.0  # ten seconds at 10%: the debt is paid
            await h.post(command("c-6"))
            await h.engine.shadow.join()
            assert route.call_count == 2 and len(h.lines()) == 2 and shed(h) == 5


@pytest.mark.anyio
async def test_a_job_the_admission_pushed_over_the_share_is_dropped_as_loop_share(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The admission is spent first: one that leaves the bucket in debt has its job
    dropped (``loop_share``) rather than queued, and the next request is shed."""
    clock = FakeClock()
    share = LoopShare(0.1, burst_s=0.05, clock=clock, load=NeverRead())
    with respx.mock(base_url=LLM_URL, assert_all_called=False) as llm:
        route = llm.post("/chat/completions").mock(return_value=completion(good_candidate()))
        async with queue_with(tmp_path, share) as h:
            engine = h.engine
            admit = engine.admit

            def costly_admit(settings: Any, body: bytes) -> Any:
                share.spend(share.burst_s + 0.01)  # this admission alone overdraws the bucket
                return admit(settings, body)

            monkeypatch.setattr(engine, "admit", costly_admit)  # the one costly call
            await h.post(command("c-0"))
            await h.post(command("c-1"))
            await engine.shadow.join()
            assert route.call_count == 0
            assert dropped(h, "loop_share") == 1 and shed(h) == 1


@pytest.mark.anyio
async def test_a_saturated_loop_sheds_most_requests_and_counts_every_one(tmp_path: Path) -> None:
    """Requests back to back keep the loop busy: past a small burst and its trickle, shadow
    looks at few of them. None is lost: each is a decision (here: not sampled) or shed, and
    each answer is the baseline's."""
    share = LoopShare(burst_s=0.002, load=LoopLoad(tick_s=0.002))
    async with queue_with(tmp_path, share) as h:
        expected = await h.baseline_bytes(command("c-base"))
        h.source.value = settings(mode=Mode.SHADOW, sample_rate=0.0)
        before, n = h.all_decisions(), 600
        started = time.perf_counter()
        for i in range(n):
            body = command("c-base") if i % 30 == 0 else command(f"c-{i}")
            response = await h.post(body)
            if i % 30 == 0:
                assert response.content == expected
            # The in-memory transport never suspends: let the loop run its timers (the
            # load's ticks), as a server's loop does between network events.
            await asyncio.sleep(0)
        elapsed = time.perf_counter() - started
        looked_at = h.all_decisions() - before
        assert looked_at == h.decisions("skipped", "not_sampled")
        # What the admissions took: the burst, the share until the load is read (a tick or
        # two), then the trickle; each admission's overdraft at most once more.
        bound = share.burst_s + 2 * 0.002 * share.share + share.busy_share * elapsed
        assert share.spent_s <= 2 * bound, (share.spent_s, bound, looked_at)
        assert looked_at + shed(h) == n
        assert shed(h) >= n / 2, (shed(h), looked_at, h.engine.shadow.status())
        assert h.engine.shadow.status()["shed"] == shed(h)
        assert h.engine.shadow.status()["loop_load"] > DEFAULT_CEILING


@pytest.mark.anyio
async def test_a_queue_that_is_not_running_looks_at_every_request(tmp_path: Path) -> None:
    """Without the stack's lifespan nothing reads the load and no job runs: shadow still
    counts each request's outcome, however far in debt its bucket is."""
    share = LoopShare(0.1, burst_s=0.05, clock=FakeClock(), load=NeverRead())
    async with queue_with(tmp_path, share) as h:
        await h.engine.shadow.stop()
        h.source.value = settings(mode=Mode.SHADOW, sample_rate=0.0)
        share.spend(1.0)
        before = h.all_decisions()
        for i in range(5):
            assert (await h.post(command(f"c-{i}"))).status_code == 200
        assert h.all_decisions() - before == 5 and shed(h) == 0
