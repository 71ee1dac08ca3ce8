"""``engine.candidate_by``: the request's wait for its candidate ends at its own deadline.

The ASGI-level behaviour (the answer goes out before the call unwinds, and the breaker still
counts it) is in ``tests/test_asgi.py``; these pin down the edges of the wait itself.
"""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from partial_trust.middleware import engine
from partial_trust.middleware.engine import CandidateResult, candidate_by
from partial_trust.outcome import Reason

pytestmark = pytest.mark.anyio

FOUND = CandidateResult(raw={"intent": "add_shopping_item"}, latency_ms=1.0)


def in_(seconds: float) -> float:
    return asyncio.get_running_loop().time() + seconds


async def test_a_candidate_ready_before_the_deadline_is_returned() -> None:
    async def quick() -> CandidateResult:
        await asyncio.sleep(0.01)
        return FOUND

    task = asyncio.create_task(quick())
    assert await candidate_by(task, in_(1.0), time.perf_counter()) is FOUND
    assert not engine._UNWINDING


async def test_at_the_deadline_the_wait_ends_and_the_call_finishes_on_its_own() -> None:
    finished = asyncio.Event()

    async def slow() -> CandidateResult:
        await asyncio.sleep(0.2)
        finished.set()
        return CandidateResult(error=Reason.LLM_TIMEOUT, latency_ms=200.0)

    task = asyncio.create_task(slow())
    asked = time.perf_counter()
    result = await candidate_by(task, in_(0.05), asked)
    waited = time.perf_counter() - asked
    assert result.error is Reason.LLM_TIMEOUT and result.raw is None
    assert result.latency_ms is not None and 45 <= result.latency_ms <= 150
    assert 0.045 <= waited < 0.15
    assert not task.done() and task in engine._UNWINDING  # held until it has unwound
    await asyncio.wait_for(finished.wait(), 1.0)
    await asyncio.sleep(0)
    assert task.done() and not task.cancelled() and task not in engine._UNWINDING


async def test_a_cancelled_request_cancels_its_call() -> None:
    started = asyncio.Event()

    async def hang() -> CandidateResult:
        started.set()
        await asyncio.sleep(10)
        return FOUND

    call = asyncio.create_task(hang())
    waiter = asyncio.create_task(candidate_by(call, in_(5.0), time.perf_counter()))
    await started.wait()
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    with pytest.raises(asyncio.CancelledError):
        await call
    assert call.cancelled() and call not in engine._UNWINDING


async def test_a_call_failing_after_its_request_answered_is_logged_by_type_only(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def fail_late() -> CandidateResult:
        await asyncio.sleep(0.05)
        raise KeyError("milk for Alice, list l-private")

    task = asyncio.create_task(fail_late())
    result = await candidate_by(task, in_(0.01), time.perf_counter())
    assert result.error is Reason.LLM_TIMEOUT
    with caplog.at_level(logging.ERROR, logger="partial_trust.engine"):
        with pytest.raises(KeyError):
            await task
        await asyncio.sleep(0)
    messages = [r.getMessage() for r in caplog.records]
    assert any("KeyError" in m for m in messages), messages
    assert not any("milk" in m or "Alice" in m or "l-private" in m for m in messages)
    assert task not in engine._UNWINDING
