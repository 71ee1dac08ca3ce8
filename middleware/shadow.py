"""Shadow mode's background queue: the LLM is asked after the baseline's answer went out.

The request only hands a ``ShadowJob`` to ``submit`` (a ``put_nowait``: a few µs, never a
wait); a fixed number of worker tasks, the queue's own concurrency cap, take jobs in order,
ask the LLM under the same deadline rule as canary (the timeout from the flags, counted from
when the worker starts the call), judge the candidate with the same acceptance rules, and
emit the outcome with ``mode="shadow"``. A full queue drops the job and counts it
(``partial_trust_shadow_dropped_total{cause="queue_full"}``): memory is bounded by ``maxsize``
whatever the LLM does. Time is bounded too: a job is queued only while shadow is within its
share of the loop (``shadow_share.LoopShare``, which follows the loop's spare time; else
``cause="loop_busy"`` or ``"loop_share"``), and each job's steps are measured and spent
from it; so is each request's admission, and a request that comes while the share is spent
is not looked at (``admitting``). The kill switch is read again when a job starts: a
corridor turned off (or out of shadow) since the request asks nothing more. The breaker is
the engine's: shadow calls count for it exactly as canary calls do (``CorridorEngine.ask``).

The workers run between ``start`` and ``stop`` (the stack's lifespan); ``stop`` stops taking
jobs, lets the queue drain for at most ``drain_s`` seconds, then cancels what is left.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Generic

from opentelemetry.trace import SpanContext

from partial_trust.middleware import tracing
from partial_trust.middleware.acceptance import CandidateT
from partial_trust.middleware.corridor import CommandT
from partial_trust.middleware.metrics import SHADOW_DROP_CAUSES
from partial_trust.middleware.shadow_share import LoopShare, Metered
from partial_trust.mode import Mode

if TYPE_CHECKING:
    from partial_trust.middleware.engine import Admission, CorridorEngine

logger = logging.getLogger("partial_trust.shadow")

DEFAULT_QUEUE_SIZE: Final = 64
DEFAULT_WORKERS: Final = 4
DEFAULT_DRAIN_S: Final = 5.0


@dataclass(frozen=True, slots=True)
class ShadowJob(Generic[CommandT]):
    """One shadowed request: what the worker needs once the response has gone out."""

    adm: Admission[CommandT]
    baseline: dict[str, Any]
    baseline_ms: float
    #: The request's span (``tracing.request_span_context``): the shadow span links to it.
    origin: SpanContext | None = None


class ShadowQueue(Generic[CommandT, CandidateT]):
    def __init__(
        self,
        engine: CorridorEngine[CommandT, CandidateT],
        *,
        maxsize: int = DEFAULT_QUEUE_SIZE,
        workers: int = DEFAULT_WORKERS,
        drain_s: float = DEFAULT_DRAIN_S,
        loop_share: LoopShare | None = None,
    ) -> None:
        if maxsize < 1 or workers < 1:
            raise ValueError("the shadow queue needs maxsize >= 1 and workers >= 1")
        self.engine = engine
        self.maxsize = maxsize
        self.workers = workers
        self.drain_s = drain_s
        self._queue: asyncio.Queue[ShadowJob[CommandT]] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        #: How much of the loop's time the jobs may take (``None``: the default share).
        self.loop_share = LoopShare() if loop_share is None else loop_share
        self.dropped_by: dict[str, int] = dict.fromkeys(SHADOW_DROP_CAUSES, 0)
        #: Requests shadow stepped aside from since start (``admitting``).
        self.shed = 0

    @property
    def dropped(self) -> int:
        """Jobs dropped since start, whatever the cause."""
        return sum(self.dropped_by.values())

    @property
    def running(self) -> bool:
        return self._queue is not None

    def depth(self) -> int:
        return 0 if self._queue is None else self._queue.qsize()

    def submit(self, job: ShadowJob[CommandT]) -> bool:
        """Queue ``job`` without waiting; ``False`` (dropped and counted) when stopped, over
        shadow's share of the loop, or full."""
        queue, cause = self._queue, self.refusal()
        if cause is not None or queue is None:  # refusal() says "stopped" for the latter
            self.drop(cause or "stopped")
            return False
        queue.put_nowait(job)  # not full: refusal() has just looked
        self._depth()
        return True

    def refusal(self) -> str | None:
        """Why a job offered now would be dropped (a ``SHADOW_DROP_CAUSES`` value), or
        ``None``. Asked before a sampled request's after-send work (its baseline's decision),
        so a job that could not run costs no more than the counting."""
        queue = self._queue
        if queue is None:
            return "stopped"
        share = self.loop_share
        if not share.available():
            return "loop_busy" if share.busy() else "loop_share"
        return "queue_full" if queue.full() else None

    def admitting(self) -> bool:
        """Whether shadow may look at one more answered request now. Its admission (the
        parse, the pre-checks, sampling: a fifth of a small request's cost) is shadow's work
        too, done after the answer went out, so the caller spends it from the same share as
        the jobs: a saturated worker is not slowed by shadow looking at every request, it
        steps aside from most of them instead, counted (``partial_trust_shadow_shed_total``).
        Which requests are shed depends on the load, not on their content, so the sample
        share and the agreement rate are still estimates of the same thing (over fewer
        records; a worker saturated only at peak hours hears less from those hours). A queue
        that is not running reads no load and sheds nothing."""
        if self._queue is None or self.loop_share.available():
            return True
        self.shed += 1
        metrics = self.engine.metrics
        if metrics is not None:
            metrics.shadow_shed(self.engine.corridor.name)
        return False

    def drop(self, cause: str) -> None:
        """Count one job dropped for ``cause`` (see ``refusal``)."""
        self._dropped(1, cause)

    async def start(self) -> None:
        if self._queue is not None:
            return
        queue: asyncio.Queue[ShadowJob[CommandT]] = asyncio.Queue(maxsize=self.maxsize)
        self._queue = queue
        self.loop_share.attach(asyncio.get_running_loop())
        self._tasks = [
            asyncio.create_task(self._work(queue), name=f"partial-trust-shadow-{i}")
            for i in range(self.workers)
        ]
        self._depth()

    async def join(self) -> None:
        """Wait until every queued job has been recorded (tests, and a graceful drain)."""
        if self._queue is not None:
            await self._queue.join()

    async def stop(self) -> None:
        """Stop taking jobs, drain for at most ``drain_s``, cancel the rest (counted dropped)."""
        queue, tasks = self._queue, self._tasks
        if queue is None:
            return
        self._queue, self._tasks = None, []
        self.loop_share.detach()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.drain_s):
                await queue.join()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if left := queue.qsize():
            self._dropped(left, "stopped")
        self._depth()

    async def _work(self, queue: asyncio.Queue[ShadowJob[CommandT]]) -> None:
        while True:
            job = await queue.get()
            metered = Metered(self.run(job))
            try:
                self._depth(queue)
                await metered
            except Exception as exc:  # a failing job must never stop its worker
                logger.error("a shadow job failed inside (%s)", type(exc).__name__)
            finally:
                self.loop_share.spend(metered.spent_s)
                queue.task_done()

    async def run(self, job: ShadowJob[CommandT]) -> None:
        """Ask, judge and record one job (the kill switch and mode are read again first).

        Each stage starts in a loop turn of its own: a queued job's ``get`` does not suspend,
        nor does an answer the breaker gives at once, so without the yields a worker would
        run jobs back to back in one turn, and a request arriving meanwhile would wait for all
        of them. With them it waits for one stage of one job (the hanging-LLM bench's p99
        over the corridor off: 1.07 and 0.88 against 1.19 and 1.09, ``bench/README.md``)."""
        engine, adm = self.engine, job.adm
        await asyncio.sleep(0)
        now = engine.settings.current()
        if not now.enabled or now.mode is not Mode.SHADOW:
            return
        span = tracing.start_shadow_span(job.origin)
        try:
            deadline = asyncio.get_running_loop().time() + adm.timeout_s
            result = await engine.ask(adm, span, deadline)
            await asyncio.sleep(0)
            outcome, _ = engine.decide(adm, result, job.baseline, job.baseline_ms)
        except Exception:
            outcome = engine.internal_error(adm.settings, adm)
        await asyncio.sleep(0)
        engine.emit(outcome, span)

    def status(self) -> dict[str, Any]:
        """The queue's part of ``/health``."""
        share = self.loop_share
        return {
            "depth": self.depth(),
            "dropped": self.dropped,
            "dropped_by_cause": dict(self.dropped_by),
            "shed": self.shed,
            "loop_share": share.share,
            "loop_spent_s": round(share.spent_s, 3),
            # What the loop spends apart from shadow (0..1): over 0.8, shadow keeps a trickle.
            "loop_load": round(share.load.serving, 3),
        }

    def _dropped(self, n: int, cause: str) -> None:
        self.dropped_by[cause] += n
        metrics = self.engine.metrics
        if metrics is not None:
            metrics.shadow_queue(self.engine.corridor.name, self.depth(), dropped=n, cause=cause)

    def _depth(self, queue: asyncio.Queue[ShadowJob[CommandT]] | None = None) -> None:
        metrics = self.engine.metrics
        if metrics is not None:
            current = queue if queue is not None else self._queue
            depth = 0 if current is None else current.qsize()
            metrics.shadow_queue(self.engine.corridor.name, depth)
