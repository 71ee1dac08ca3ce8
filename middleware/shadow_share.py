"""Shadow's share of the event loop: how much of a worker's time its background work may take.

Why: shadow is the zero-impact stage, and its work runs on the loop that serves requests. A
queue bounds shadow's memory and a worker count its concurrency, but neither bounds its time:
with a fast LLM the queue never fills, and on a saturated worker every loop-second a shadow
job takes (its LLM call's client side, the judge, three sinks: some 0.5 ms on a small
machine) is a second no request is served. At a 10% sample that cost the served throughput a
third (``bench/bench_shadow.py``).

``LoopShare`` is a token bucket in loop-seconds. Each job spends what its own steps took
(``Metered``), and each request's admission what it took (``ShadowQueue.admitting``: on a
saturated worker the parse and pre-checks of every request cost more than the trickle's
jobs). It refills at the loop's spare time (``loop_load.LoopLoad``: the headroom under 80%
serving load), never faster than ``share`` and never slower than ``busy_share``: a worker
at 30% load runs all of a 10% sample, a saturated one keeps a trickle (0.2% of the loop) so
agreement figures still come, and the requests keep the rest. While the bucket is in debt,
requests are not looked at (``partial_trust_shadow_shed_total``) and new jobs are dropped
(``partial_trust_shadow_dropped_total``, cause ``loop_busy`` when the load held the refill
below the share, else ``loop_share``), both counted. The steps are not all of a job's cost:
the LLM answer's reading in the transport's callbacks, the kernel's side of that exchange
and the risk log's writer thread come on top (in process about 0.6 times as much again,
under uvicorn about 1.7 times: ``bench/README.md``); the load reading sees them as serving,
which only makes it more careful. What is shed or dropped is a share of the traffic by load
rather than by content, so the agreement rate is still an estimate of the same thing, over
fewer records.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine, Generator
from typing import Any, Final, Generic, TypeVar

from partial_trust.middleware.loop_load import LoopLoad

T = TypeVar("T")

#: At most this share of the loop's time goes to shadow's background work, however idle the
#: loop (1: no cap at all, the load not read either).
DEFAULT_LOOP_SHARE: Final = 0.25
#: What shadow keeps on a saturated loop: a trickle of verdicts, not a tenth of throughput.
DEFAULT_BUSY_SHARE: Final = 0.002
#: The most loop-seconds the bucket holds: what a quiet worker may spend on a burst at once.
DEFAULT_BURST_S: Final = 0.015
#: The variable that sets the share for ``CorridorStack.from_env`` (``partial-trust serve``).
LOOP_SHARE_ENV: Final = "PARTIAL_TRUST_SHADOW_LOOP_SHARE"


def parse_loop_share(raw: str | None) -> float:
    """The share from its variable: unset or blank gives the default; anything but a number in
    (0, 1] is refused with the variable's name, so a typo stops the start, not the cap."""
    if raw is None or not raw.strip():
        return DEFAULT_LOOP_SHARE
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not 0.0 < value <= 1.0:  # NaN fails this too
        raise ValueError(
            f"{LOOP_SHARE_ENV} must be a number in (0, 1] (the most of the event loop's time "
            f"shadow's background work may take; 1: no cap), got {raw!r}"
        )
    return value


class LoopShare:
    """The bucket. ``available`` before a job is queued, ``spend`` once it has run.
    ``load`` (default: a ``LoopLoad``, read once ``attach``ed to a loop) sets the refill."""

    def __init__(
        self,
        share: float = DEFAULT_LOOP_SHARE,
        *,
        busy_share: float | None = None,
        burst_s: float = DEFAULT_BURST_S,
        clock: Callable[[], float] = time.perf_counter,
        load: LoopLoad | None = None,
    ) -> None:
        if not 0.0 < share <= 1.0:
            raise ValueError(f"the shadow loop share must be in (0, 1], got {share!r}")
        if busy_share is None:
            busy_share = min(DEFAULT_BUSY_SHARE, share)
        if not 0.0 < busy_share <= share:
            raise ValueError(
                f"the shadow busy share must be in (0, share={share!r}], got {busy_share!r}"
            )
        if not burst_s > 0.0:
            raise ValueError(f"the shadow loop share's burst must be > 0 s, got {burst_s!r}")
        self.share = share
        self.busy_share = busy_share
        self.burst_s = burst_s
        self.load = LoopLoad() if load is None else load
        self._clock = clock
        self._tokens = burst_s
        self._at = clock()
        #: Loop-seconds spent by shadow since start, its jobs and its admissions (``/health``).
        self.spent_s = 0.0

    @property
    def capped(self) -> bool:
        return self.share < 1.0

    def rate(self) -> float:
        """The refill now, in loop-seconds per second: the headroom, within the two shares."""
        return min(self.share, max(self.busy_share, self.load.headroom()))

    def busy(self) -> bool:
        """The load holds the refill below the share (a drop now is ``loop_busy``)."""
        return self.load.headroom() < self.share

    def available(self) -> bool:
        """True while shadow may start another job: the bucket is not in debt."""
        if not self.capped:
            return True
        now = self._clock()
        self._tokens = min(self.burst_s, self._tokens + (now - self._at) * self.rate())
        self._at = now
        return self._tokens > 0.0

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Read the load of ``loop`` from now on (uncapped: nothing to read it for)."""
        if self.capped:
            self.load.attach(loop, lambda: self.spent_s)

    def detach(self) -> None:
        self.load.detach()

    def spend(self, seconds: float) -> None:
        self.spent_s += seconds
        if self.capped:
            self._tokens -= seconds  # a debt is paid back by waiting: the long-run share holds


class Metered(Generic[T]):
    """Await a coroutine and add up the time its own steps took on the loop.

    A step is what runs between two of the coroutine's suspensions, so waiting for the LLM
    costs nothing here. The clock is the thread's CPU time: on a core shared with other
    processes a step's wall time counts their turns too, which would charge shadow for time
    it never took (``LoopLoad`` subtracts this figure from the same clock). Callbacks the
    loop runs apart from the coroutine (a protocol's ``data_received``) are not counted;
    ``LoopLoad`` reads them as serving, which only makes shadow more careful.
    """

    __slots__ = ("_coro", "spent_s")

    def __init__(self, coro: Coroutine[Any, Any, T]) -> None:
        self._coro = coro
        self.spent_s = 0.0

    def __await__(self) -> Generator[Any, Any, T]:
        coro, clock = self._coro, time.thread_time
        value: Any = None
        thrown: BaseException | None = None
        while True:
            began = clock()
            try:
                step = coro.send(value) if thrown is None else coro.throw(thrown)
            except StopIteration as done:
                result: T = done.value
                return result
            finally:
                self.spent_s += clock() - began
            try:
                value, thrown = (yield step), None
            except BaseException as exc:  # the task's cancellation, passed on to the job
                value, thrown = None, exc
