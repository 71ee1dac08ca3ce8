"""Shadow's share of the loop: the bucket, the meter, and the queue that obeys them."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from partial_trust.environment import Environment
from partial_trust.middleware.factory import CorridorStack
from partial_trust.middleware.loop_load import DEFAULT_CEILING, LoopLoad
from partial_trust.middleware.shadow import ShadowJob, ShadowQueue
from partial_trust.middleware.shadow_share import (
    DEFAULT_BUSY_SHARE,
    DEFAULT_LOOP_SHARE,
    LOOP_SHARE_ENV,
    LoopShare,
    Metered,
    parse_loop_share,
)
from partial_trust.mode import Mode
from partial_trust.outcome import Outcome
from tests.corridor_harness import (
    CORRIDOR,
    Harness,
    command,
    harness,
    settings,
)
from tests.support.procs import free_port, partial_trust


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def spin(seconds: float) -> None:
    """Hold the loop for ``seconds`` of this thread's CPU time, as a job's own steps do (CPU
    time, as ``Metered`` counts it: on a machine busy with other work, wall time would not
    be what the step took)."""
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


# -- the variable ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "want"),
    [(None, DEFAULT_LOOP_SHARE), ("", DEFAULT_LOOP_SHARE), (" 0.2 ", 0.2), ("1", 1.0)],
)
def test_the_variable_gives_the_share(raw: str | None, want: float) -> None:
    assert parse_loop_share(raw) == want


@pytest.mark.parametrize("raw", ["0", "-0.1", "1.01", "nan", "inf", "ten", "5%"])
def test_a_bad_share_is_refused_with_the_variables_name(raw: str) -> None:
    with pytest.raises(ValueError, match=LOOP_SHARE_ENV):
        parse_loop_share(raw)


def test_from_env_reads_the_share_and_refuses_a_typo(tmp_path: Path) -> None:
    base = {"PARTIAL_TRUST_RISK_LOG_PATH": str(tmp_path / "risk.jsonl"),
            "PARTIAL_TRUST_HASH_KEY": "k" * 32}  # fmt: skip
    stack = CorridorStack.from_env(Environment.from_mapping({**base, LOOP_SHARE_ENV: "0.25"}))
    assert stack.engine.shadow.loop_share.share == 0.25
    assert stack.status()["shadow_queue"]["loop_share"] == 0.25
    default = CorridorStack.from_env(Environment.from_mapping(base))
    assert default.engine.shadow.loop_share.share == DEFAULT_LOOP_SHARE
    with pytest.raises(ValueError, match=LOOP_SHARE_ENV):
        CorridorStack.from_env(Environment.from_mapping({**base, LOOP_SHARE_ENV: "0,2"}))


# -- the bucket ------------------------------------------------------------------------------


def test_the_bucket_empties_by_what_jobs_spent_and_refills_at_the_share() -> None:
    clock = FakeClock()
    share = LoopShare(0.1, burst_s=0.05, clock=clock)
    assert share.available()
    share.spend(0.08)  # over the burst: 0.03 s in debt
    assert not share.available()
    clock.now += 0.29  # refills 0.029: still in debt
    assert not share.available()
    clock.now += 0.02  # 0.031 in all: paid back
    assert share.available()
    clock.now += 1000.0  # a long quiet spell fills it to the burst, no further
    assert share.available()
    share.spend(0.0499)
    assert share.available()
    share.spend(0.0002)
    assert not share.available()
    assert share.spent_s == pytest.approx(0.1301)


def test_a_share_of_one_never_refuses() -> None:
    clock = FakeClock()
    share = LoopShare(1.0, clock=clock)
    share.spend(100.0)
    assert share.available() and not share.capped


@pytest.mark.parametrize(("share", "burst"), [(0.0, 0.05), (1.5, 0.05), (0.1, 0.0)])
def test_the_bucket_refuses_nonsense(share: float, burst: float) -> None:
    with pytest.raises(ValueError):
        LoopShare(share, burst_s=burst)


@pytest.mark.parametrize("busy", [0.0, -0.01, 0.2])
def test_a_busy_share_outside_zero_to_the_share_is_refused(busy: float) -> None:
    with pytest.raises(ValueError, match="busy share"):
        LoopShare(0.1, busy_share=busy)


def test_a_share_under_the_trickle_takes_the_trickle_down_with_it() -> None:
    assert LoopShare(0.001).busy_share == 0.001
    assert LoopShare().busy_share == DEFAULT_BUSY_SHARE


class NeverRead(LoopLoad):
    """A load that stays at idle: tests of the share alone, whatever this machine is doing."""

    def attach(self, loop: asyncio.AbstractEventLoop, shadow_spent: Any) -> None:
        return None


def loaded(serving: float) -> LoopLoad:
    load = LoopLoad()
    load.serving = serving
    return load


@pytest.mark.parametrize(
    ("serving", "rate", "busy"),
    [
        (0.0, 0.25, False),  # an idle loop: the share caps it
        (DEFAULT_CEILING - 0.3, 0.25, False),  # 0.3 to spare: still the share
        (DEFAULT_CEILING - 0.1, 0.1, True),  # 0.1 to spare under the ceiling
        (0.95, DEFAULT_BUSY_SHARE, True),  # saturated: the trickle
    ],
)
def test_the_refill_follows_the_loops_spare_time(serving: float, rate: float, busy: bool) -> None:
    share = LoopShare(0.25, load=loaded(serving))
    assert share.rate() == pytest.approx(rate)
    assert share.busy() is busy


def test_a_saturated_loop_refills_the_bucket_at_the_trickle() -> None:
    clock = FakeClock()
    share = LoopShare(0.25, burst_s=0.05, clock=clock, load=loaded(1.0))
    share.spend(0.06)  # 0.01 s in debt
    payback = 0.01 / DEFAULT_BUSY_SHARE  # 2 s at the trickle (at the share: 40 ms)
    clock.now += 0.9 * payback
    assert not share.available() and share.busy()
    clock.now += 0.2 * payback
    assert share.available()


# -- the meter -------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_the_meter_counts_the_steps_not_the_waits() -> None:
    async def job() -> str:
        spin(0.01)
        await asyncio.sleep(0.2)  # waiting for the LLM: not the loop's time
        spin(0.01)
        return "done"

    metered = Metered(job())
    assert await metered == "done"
    assert 0.018 <= metered.spent_s < 0.15  # two 10 ms steps; generous for a busy machine


@pytest.mark.anyio
async def test_the_meter_passes_errors_and_cancellation_through() -> None:
    async def fails() -> None:
        await asyncio.sleep(0)
        raise KeyError("x")

    with pytest.raises(KeyError):
        await Metered(fails())

    cleaned: list[str] = []

    async def hangs() -> None:
        try:
            await asyncio.sleep(60)
        finally:
            cleaned.append("finally")

    metered = Metered(hangs())
    task = asyncio.ensure_future(metered)
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cleaned == ["finally"] and metered.spent_s >= 0.0


# -- the queue -------------------------------------------------------------------------------


@asynccontextmanager
async def queue_with(tmp_path: Path, share: LoopShare) -> AsyncIterator[Harness]:
    async with harness(tmp_path, settings(mode=Mode.SHADOW)) as h:
        h.engine.shadow = ShadowQueue(h.engine, workers=2, drain_s=1.0, loop_share=share)
        await h.engine.shadow.start()
        try:
            yield h
        finally:
            await h.engine.shadow.stop()


def dropped(h: Harness, cause: str) -> float:
    labels = {"corridor": CORRIDOR, "cause": cause}
    return h.registry.get_sample_value("partial_trust_shadow_dropped_total", labels) or 0.0


class SpinningQueue(ShadowQueue[Any, Any]):
    """Every job holds the loop for ``cost`` seconds, as a slow judge would."""

    cost = 0.004

    async def run(self, job: ShadowJob[Any]) -> None:
        spin(self.cost)
        await asyncio.sleep(0)


async def offer(
    queue: ShadowQueue[Any, Any], adm: Any, seconds: float, idle_s: float = 0.0
) -> tuple[int, float]:
    """For ``seconds``: 1 ms of the requests' own work, one job offered, then ``idle_s`` of a
    free loop (0: a loop that always has something to do). Returns (jobs offered, seconds
    elapsed); with ``idle_s`` the queue has drained too."""
    started, submitted = time.perf_counter(), 0
    while time.perf_counter() - started < seconds:
        spin(0.001)
        submitted += 1
        queue.submit(ShadowJob(adm, {}, 1.0))
        await asyncio.sleep(idle_s)
    elapsed = time.perf_counter() - started
    if idle_s:
        await queue.join()
    return submitted, elapsed


@dataclass
class Offered:
    queue: ShadowQueue[Any, Any]
    submitted: int
    elapsed: float
    reading: float  # the load the queue's /health part showed at the end


async def offer_to(
    tmp_path: Path, make: type[SpinningQueue], share: LoopShare, idle_s: float = 0.0
) -> Offered:
    """A shadow queue of ``make`` jobs under ``share``, offered jobs as ``offer`` does."""
    async with harness(tmp_path, settings(mode=Mode.SHADOW)) as h:
        queue = make(h.engine, workers=2, loop_share=share)
        await queue.start()
        adm = h.engine.admit(h.source.value, json.dumps(command("c-1")).encode())
        assert not isinstance(adm, Outcome)
        submitted, elapsed = await offer(queue, adm, 1.0, idle_s)
        reading = queue.status()["loop_load"]
        await queue.stop()
    return Offered(queue, submitted, elapsed, reading)


@pytest.mark.anyio
async def test_at_saturation_shadow_keeps_to_its_trickle(tmp_path: Path) -> None:
    """A loop whose every turn holds it for longer than two of the load's ticks is busy
    however much CPU this process gets (a late tick reads as a full window), so on any
    machine the jobs (each would take 4 ms of every 5) get the trickle, not the share."""
    load = LoopLoad(tick_s=0.0005)  # the requests' own 1 ms steps are two ticks late
    share = LoopShare(0.1, burst_s=0.02, load=load)
    got = await offer_to(tmp_path, SpinningQueue, share)
    queue, submitted, elapsed, reading = got.queue, got.submitted, got.elapsed, got.reading
    ran = submitted - queue.dropped
    assert reading > 0.8, reading
    assert queue.dropped_by["loop_busy"] > submitted / 2, queue.dropped_by
    assert ran >= 3  # the burst (about five), then the trickle
    # The share alone would let 0.1 s of jobs run; the trickle, once the load is read (two
    # ticks at most at the share), far less.
    bound = share.busy_share * elapsed + 0.02 + 2 * SpinningQueue.cost
    assert share.spent_s <= bound * 1.5, (share.spent_s, bound, ran)
    assert share.spent_s < 0.1 * elapsed / 2


@pytest.mark.anyio
async def test_at_saturation_with_the_load_ignored_shadow_keeps_to_its_share(
    tmp_path: Path,
) -> None:
    """The share bounds shadow however the load reads (here: never read, always idle)."""
    share = LoopShare(0.1, burst_s=0.02, load=NeverRead())
    got = await offer_to(tmp_path, SpinningQueue, share)
    queue, submitted, elapsed = got.queue, got.submitted, got.elapsed
    ran = submitted - queue.dropped
    # Every offered job would have taken 4 ms of each 5 ms: the share lets about 1 in 30 run.
    assert queue.dropped_by["loop_share"] > submitted / 2
    assert queue.dropped_by["loop_busy"] == 0
    assert ran >= 5
    bound = 0.1 * elapsed + 0.02 + 2 * SpinningQueue.cost
    assert share.spent_s <= bound * 1.5, (share.spent_s, bound, ran, submitted)


class MillisecondQueue(SpinningQueue):
    cost = 0.001


@pytest.mark.anyio
@pytest.mark.parametrize("follows_the_load", [True, False])
async def test_below_saturation_shadow_runs_its_sample_where_a_fixed_share_would_not(
    tmp_path: Path, follows_the_load: bool
) -> None:
    """The default follows the loop's spare time: at about 20% load every job runs. A fixed
    5% share (the old default) drops most of the same jobs on the same idle loop."""
    share = LoopShare() if follows_the_load else LoopShare(0.05, load=NeverRead())
    # Every 5 ms: about 20% serving, and the jobs' 20% on top.
    got = await offer_to(tmp_path, MillisecondQueue, share, idle_s=0.004)
    queue, submitted, load = got.queue, got.submitted, got.reading
    assert submitted >= 50
    if follows_the_load:
        assert load < DEFAULT_CEILING, load
        assert queue.dropped <= submitted // 10, (queue.dropped_by, submitted, load)
    else:
        assert queue.dropped_by["loop_share"] >= submitted // 2, (queue.dropped_by, submitted)


def test_serve_refuses_a_bad_share_before_starting(tmp_path: Path) -> None:
    argv = partial_trust("serve", "--port", str(free_port()))
    env = {**os.environ, LOOP_SHARE_ENV: "5%"}
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert done.returncode == 2
    assert f"error: {LOOP_SHARE_ENV} must be a number in (0, 1]" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr + done.stdout
