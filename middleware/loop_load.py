"""How busy a worker's event loop is with everything but shadow: the room shadow may use.

Why: a fixed share of the loop is the wrong bound for shadow's background work in both
directions. On a half-idle worker a 5% share drops half of a 10% sample although the loop
sleeps half the time; on a saturated worker every loop-second shadow takes is a second no
request is served, and even 5% of the loop (its steps alone: the transport and the risk
log's writer come on top) cost the served throughput a tenth. So shadow takes the loop's
spare time: ``LoopLoad`` measures, on a timer, what share of wall time the loop's thread
spent on the CPU apart from shadow's own steps, and ``shadow_share.LoopShare`` refills its
bucket at the headroom under ``ceiling`` (never above the configured share, never below a
trickle that keeps agreement figures coming on a saturated worker).

The measure is the thread's CPU time (``time.thread_time``), not a guess from request counts,
so it sees whatever the app does on the loop, corridor paths or not. A tick that comes late
by more than a tick means the loop was held or the process starved by others on its core
(which CPU time alone reads as idle): that window counts as fully busy. The windows are
smoothed, faster up than down (``RISE`` and ``FALL`` of the way a window moves the reading):
a worker that turns busy is read so within a tick or two, and one quiet window among busy
ones does not open the gate.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Final

#: Over this share of wall time spent serving, a worker is busy: shadow gets no more than its
#: trickle. The room under it is what shadow's bucket refills with.
DEFAULT_CEILING: Final = 0.8
#: Seconds between two readings: short enough to follow a burst, long enough that the reading
#: (two clock reads and a callback) costs nothing measurable.
DEFAULT_TICK_S: Final = 0.025
#: How far one window moves the reading up (busier than read) and down.
RISE: Final = 0.6
FALL: Final = 0.3


class LoopLoad:
    """The serving load of the loop it is attached to, refreshed every ``tick_s``.

    ``shadow_spent`` returns the loop-seconds shadow's jobs have taken so far (the share's
    meter): subtracted, so shadow's own work never reads as load that should stop it."""

    def __init__(
        self,
        *,
        ceiling: float = DEFAULT_CEILING,
        tick_s: float = DEFAULT_TICK_S,
        cpu: Callable[[], float] = time.thread_time,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        if not 0.0 < ceiling <= 1.0:
            raise ValueError(f"the loop load's ceiling must be in (0, 1], got {ceiling!r}")
        if not tick_s > 0.0:
            raise ValueError(f"the loop load's tick must be > 0 s, got {tick_s!r}")
        self.ceiling = ceiling
        self.tick_s = tick_s
        self._cpu = cpu
        self._clock = clock
        self._shadow_spent: Callable[[], float] = lambda: 0.0
        self._handle: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._at = self._cpu_at = self._spent_at = 0.0
        #: The serving load: share of wall time the loop spent apart from shadow (0..1).
        self.serving = 0.0

    @property
    def attached(self) -> bool:
        return self._loop is not None

    def headroom(self) -> float:
        """The share of wall time the loop has to spare under the ceiling (0 when busy)."""
        return max(0.0, self.ceiling - self.serving)

    def attach(self, loop: asyncio.AbstractEventLoop, shadow_spent: Callable[[], float]) -> None:
        """Start reading on ``loop`` (from its own thread: ``thread_time`` is per thread)."""
        self.detach()
        self._loop, self._shadow_spent = loop, shadow_spent
        self._at, self._cpu_at, self._spent_at = self._clock(), self._cpu(), shadow_spent()
        self._handle = loop.call_later(self.tick_s, self.tick)

    def detach(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._handle = self._loop = None
        self.serving = 0.0

    def tick(self) -> None:
        """One reading: the window since the last, then the next one scheduled."""
        now, cpu, spent = self._clock(), self._cpu(), self._shadow_spent()
        wall = now - self._at
        if wall > 0.0:
            late = wall > 2.0 * self.tick_s  # held or starved: CPU time alone would read idle
            used = (cpu - self._cpu_at) - (spent - self._spent_at)
            window = 1.0 if late else min(1.0, max(0.0, used / wall))
            step = RISE if window > self.serving else FALL
            self.serving += step * (window - self.serving)
        self._at, self._cpu_at, self._spent_at = now, cpu, spent
        if self._loop is not None:
            self._handle = self._loop.call_later(self.tick_s, self.tick)
