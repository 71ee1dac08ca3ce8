"""The loop's serving load: read from the thread's CPU time, shadow's own steps left out."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from partial_trust.middleware.loop_load import DEFAULT_CEILING, FALL, RISE, LoopLoad


class Clocks:
    """A wall clock and a CPU clock the test moves by hand."""

    def __init__(self) -> None:
        self.wall = 0.0
        self.cpu = 0.0

    def advance(self, wall: float, cpu: float) -> None:
        self.wall += wall
        self.cpu += cpu


def load_on(clocks: Clocks, tick_s: float = 0.025) -> LoopLoad:
    return LoopLoad(tick_s=tick_s, cpu=lambda: clocks.cpu, clock=lambda: clocks.wall)


def test_the_load_is_cpu_over_wall_smoothed_faster_up_than_down() -> None:
    clocks = Clocks()
    load = load_on(clocks)
    clocks.advance(0.025, 0.020)
    load.tick()
    assert load.serving == pytest.approx(RISE * 0.8)  # one window moves it most of the way
    for _ in range(30):
        clocks.advance(0.025, 0.020)
        load.tick()
    assert load.serving == pytest.approx(0.8, abs=1e-3)
    assert load.headroom() == pytest.approx(0.0, abs=1e-3)
    clocks.advance(0.025, 0.005)
    load.tick()
    assert load.serving == pytest.approx(0.8 - FALL * 0.6, abs=1e-3)  # one quiet window
    assert load.headroom() == pytest.approx(DEFAULT_CEILING - load.serving)


def test_shadows_own_steps_are_not_load() -> None:
    clocks = Clocks()
    load = load_on(clocks)
    spent = [0.0]
    load._shadow_spent = lambda: spent[0]
    for _ in range(40):
        clocks.advance(0.025, 0.025)  # the thread never slept...
        spent[0] += 0.020  # ...but 20 ms of each 25 were shadow's own jobs
        load.tick()
    assert load.serving == pytest.approx(0.2, abs=1e-3)
    assert load.headroom() == pytest.approx(0.6, abs=1e-3)


def test_a_late_tick_reads_fully_busy_whatever_the_cpu_says() -> None:
    """A starved process (others on its core) gets little CPU time: idle by CPU, but the
    loop is behind. A tick more than one period late counts as a full window."""
    clocks = Clocks()
    load = load_on(clocks)
    for _ in range(40):
        clocks.advance(0.200, 0.010)
        load.tick()
    assert load.serving == pytest.approx(1.0, abs=1e-3)
    assert load.headroom() == 0.0


def test_the_reading_is_clamped_to_zero_and_one() -> None:
    clocks = Clocks()
    load = load_on(clocks)
    spent = [0.0]
    load._shadow_spent = lambda: spent[0]
    clocks.advance(0.025, 0.001)
    spent[0] += 0.010  # more shadow than CPU (clocks read at different moments): not negative
    load.tick()
    assert load.serving == 0.0
    clocks.advance(0.025, 0.040)  # more CPU than wall: clamped to a full window
    load.tick()
    assert load.serving == pytest.approx(RISE)


@pytest.mark.parametrize(("ceiling", "tick"), [(0.0, 0.025), (1.5, 0.025), (0.8, 0.0)])
def test_bad_settings_are_refused(ceiling: float, tick: float) -> None:
    with pytest.raises(ValueError, match="loop load"):
        LoopLoad(ceiling=ceiling, tick_s=tick)


async def hold_turns(seconds: float, turn_s: float, clock: Callable[[], float]) -> None:
    """For ``seconds``, turns that each hold the loop ``turn_s`` by ``clock``."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        hold = clock() + turn_s
        while clock() < hold:
            pass
        await asyncio.sleep(0)


@pytest.mark.anyio
async def test_attached_to_a_real_loop_it_tells_busy_from_sleeping() -> None:
    """Busy: turns that hold the loop 30 ms against a 10 ms tick (late ticks read as full
    windows, so this holds however much CPU a busy machine leaves this process)."""
    load = LoopLoad(tick_s=0.01)
    load.attach(asyncio.get_running_loop(), lambda: 0.0)
    try:
        await asyncio.sleep(0.3)
        idle = load.serving
        await hold_turns(0.6, 0.03, time.perf_counter)
        busy = load.serving
    finally:
        load.detach()
    assert idle < 0.5, idle
    assert busy > 0.8, busy
    assert not load.attached and load.serving == 0.0


@pytest.mark.anyio
async def test_a_spinning_loop_reads_as_its_cpu_time() -> None:
    """Short turns (never late): the reading is CPU over wall. Generous: on a busy machine
    this process may get a part of a core only, which reads as less load."""
    load = LoopLoad(tick_s=0.02)
    load.attach(asyncio.get_running_loop(), lambda: 0.0)
    try:
        await hold_turns(0.3, 0.002, time.thread_time)
        busy = load.serving
    finally:
        load.detach()
    assert busy > 0.25, busy


class CountingLoad(LoopLoad):
    """A load that notes the time of every reading."""

    def __init__(self, tick_s: float) -> None:
        super().__init__(tick_s=tick_s)
        self.ticks: list[float] = []

    def tick(self) -> None:
        self.ticks.append(time.perf_counter())
        super().tick()


@pytest.mark.anyio
async def test_detach_stops_the_timer() -> None:
    load = CountingLoad(tick_s=0.01)
    load.attach(asyncio.get_running_loop(), lambda: 0.0)
    await asyncio.sleep(0.1)
    load.detach()
    seen = len(load.ticks)
    await asyncio.sleep(0.1)
    assert seen >= 2 and len(load.ticks) == seen
