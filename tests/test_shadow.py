"""Shadow mode in process: the baseline's bytes go out, the LLM is asked afterwards, in the
background, and the outcome is recorded with ``mode=shadow`` and its agreement."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from starlette.types import Message, Receive, Scope, Send

from partial_trust.middleware.shadow import ShadowQueue
from partial_trust.middleware.shadow_share import LoopShare
from partial_trust.mode import Mode
from tests.corridor_harness import (
    CORRIDOR,
    LLM_URL,
    Harness,
    command,
    completion,
    good_candidate,
    harness,
    settings,
)

pytestmark = pytest.mark.anyio
SHADOW = settings(mode=Mode.SHADOW)


@pytest.fixture
def llm() -> Any:
    with respx.mock(base_url=LLM_URL, assert_all_called=False) as mock:
        yield mock


@asynccontextmanager
async def shadow_harness(
    tmp_path: Path, *, maxsize: int = 64, workers: int = 4, timeout_ms: int = 200
) -> AsyncIterator[Harness]:
    async with harness(tmp_path, settings(mode=Mode.SHADOW, timeout_ms=timeout_ms)) as h:
        # Every job counted here must run: the share of the loop has its own tests.
        uncapped = LoopShare(1.0)
        h.engine.shadow = ShadowQueue(
            h.engine, maxsize=maxsize, workers=workers, drain_s=1.0, loop_share=uncapped
        )
        await h.engine.shadow.start()
        try:
            yield h
        finally:
            await h.engine.shadow.stop()


@asynccontextmanager
async def recording_client(h: Harness, events: list[str]) -> AsyncIterator[httpx.AsyncClient]:
    """A client of ``h.app`` that appends ``"sent"`` once the last body message went out."""

    async def recording(scope: Scope, receive: Receive, send: Send) -> None:
        async def spy(message: Message) -> None:
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                events.append("sent")

        await h.app(scope, receive, spy)

    transport = httpx.ASGITransport(app=recording)
    async with httpx.AsyncClient(transport=transport, base_url="http://app.test") as client:
        yield client


def sample(h: Harness, name: str, labels: dict[str, str]) -> float:
    return h.registry.get_sample_value(name, {"corridor": CORRIDOR, **labels}) or 0.0


async def test_shadow_sends_the_baseline_bytes_and_asks_the_llm_after(
    tmp_path: Path, llm: Any
) -> None:
    events: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        events.append("llm")
        return completion(good_candidate())  # accepted in canary, differs

    route = llm.post("/chat/completions").mock(side_effect=answer)
    async with shadow_harness(tmp_path) as h:
        expected = await h.baseline_bytes(command())

        async with recording_client(h, events) as client:
            response = await client.post("/route", json=command())
        await h.engine.shadow.join()
        assert response.content == expected  # byte-identical, though the LLM would differ
        assert events == ["sent", "llm"] and route.call_count == 1
        (line,) = h.lines()
        assert (line["mode"], line["status"], line["agreement"]) == (
            "shadow",
            "accepted_llm",
            False,
        )
        assert sample(h, "partial_trust_agreement_total", {"mode": "shadow", "agreement": "false"})
        assert h.decisions("accepted_llm", "accepted") == 1


async def test_agreement_true_when_the_candidate_decides_what_the_baseline_did(
    tmp_path: Path, llm: Any
) -> None:
    llm.post("/chat/completions").mock(return_value=completion(good_candidate(eggs="eggs")))
    async with shadow_harness(tmp_path) as h:
        expected = await h.baseline_bytes(command())
        assert (await h.post(command())).content == expected
        await h.engine.shadow.join()
        h.source.value = settings()  # canary: the same candidate, served, agreement computed
        await h.post(command("c-2"))
        lines = h.lines()
        assert [(x["mode"], x["agreement"]) for x in lines] == [("shadow", True), ("canary", True)]
        for mode in ("shadow", "canary"):
            labels = {"mode": mode, "agreement": "true"}
            assert sample(h, "partial_trust_agreement_total", labels) == 1


async def test_no_parsed_candidate_is_agreement_unknown(tmp_path: Path, llm: Any) -> None:
    llm.post("/chat/completions").mock(return_value=completion("not json"))
    async with shadow_harness(tmp_path) as h:
        await h.post(command())
        await h.engine.shadow.join()
        (line,) = h.lines()
        assert (line["mode"], line["agreement"]) == ("shadow", None)
        labels = {"mode": "shadow", "agreement": "unknown"}
        assert sample(h, "partial_trust_agreement_total", labels) == 1


async def test_a_full_queue_drops_and_counts_without_blocking(tmp_path: Path, llm: Any) -> None:
    release, asked = asyncio.Event(), asyncio.Event()
    calls: list[int] = []

    async def hang(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        asked.set()
        await release.wait()
        return completion(good_candidate())

    route = llm.post("/chat/completions").mock(side_effect=hang)
    async with shadow_harness(tmp_path, maxsize=2, workers=1, timeout_ms=2000) as h:
        slowest = 0.0
        for i in range(10):
            expected = await h.baseline_bytes(command(f"c-{i}"))
            started = time.perf_counter()
            response = await h.post(command(f"c-{i}"))
            slowest = max(slowest, time.perf_counter() - started)
            assert response.content == expected
            if i == 0:  # the one worker takes the first job and hangs in it
                await asyncio.wait_for(asked.wait(), 2)
        assert slowest < 0.5  # the 2 s LLM timeout never reaches a request
        assert len(calls) == 1  # one worker: one call in flight, two queued
        assert sample(h, "partial_trust_shadow_dropped_total", {"cause": "queue_full"}) == 7
        want = {"queue_full": 7, "loop_busy": 0, "loop_share": 0, "stopped": 0}
        assert h.engine.shadow.dropped_by == want
        assert sample(h, "partial_trust_shadow_queue_depth", {}) == 2
        release.set()
        await h.engine.shadow.join()
        assert len(calls) == route.call_count == 3
        assert len(h.lines()) == 3


async def test_kill_switch_means_no_shadow_calls(tmp_path: Path, llm: Any) -> None:
    release = asyncio.Event()

    async def hang(request: httpx.Request) -> httpx.Response:
        await release.wait()
        return completion(good_candidate())

    route = llm.post("/chat/completions").mock(side_effect=hang)
    async with shadow_harness(tmp_path, workers=1, timeout_ms=2000) as h:
        h.source.value = settings(enabled=False, mode=Mode.SHADOW)
        await h.post(command())
        assert h.engine.shadow.depth() == 0
        h.source.value = SHADOW
        await h.post(command("c-1"))
        await asyncio.sleep(0.05)
        await h.post(command("c-2"))  # queued behind the hanging call
        h.source.value = settings(enabled=False, mode=Mode.SHADOW)  # killed before it runs
        release.set()
        await h.engine.shadow.join()
        assert route.call_count == 1
        assert [x["command_key"] is not None for x in h.lines()] == [True]


async def test_the_breaker_counts_shadow_failures(tmp_path: Path, llm: Any) -> None:
    route = llm.post("/chat/completions").mock(return_value=httpx.Response(500))
    async with shadow_harness(tmp_path) as h:
        for i in range(12):
            await h.post(command(f"c-{i}"))
            await h.engine.shadow.join()
        reasons = [x["reason_code"] for x in h.lines()]
        assert "circuit_open" in reasons and route.call_count < 12
        assert all(x["mode"] == "shadow" for x in h.lines())


async def test_the_command_is_admitted_only_after_the_answer_went_out(
    tmp_path: Path, llm: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Shadow's whole decision (parse, pre-check, sampling) waits for the baseline's answer:
    before it, shadow only buffers the body and copies the messages."""
    llm.post("/chat/completions").mock(return_value=completion(good_candidate()))
    events: list[str] = []
    async with shadow_harness(tmp_path) as h:
        admit = h.engine.admit

        def spying_admit(current: Any, body: bytes) -> Any:
            events.append("admit")
            return admit(current, body)

        monkeypatch.setattr(h.engine, "admit", spying_admit)

        async with recording_client(h, events) as client:
            await client.post("/route", json=command())
            h.source.value = settings(mode=Mode.SHADOW, sample_rate=0.0)
            await client.post("/route", json=command("c-2"))
            await client.post("/route", content=b"{not json")
        await h.engine.shadow.join()
        assert events == ["sent", "admit"] * 3
        assert h.decisions("skipped", "not_sampled") == 1
        assert h.decisions("skipped", "invalid_command") == 1
        assert [x["mode"] for x in h.lines()] == ["shadow", "shadow"]  # the LLM's, the skip


async def test_a_baseline_that_raises_is_recorded_after_and_passed_on(
    tmp_path: Path, llm: Any
) -> None:
    route = llm.post("/chat/completions").mock(return_value=completion(good_candidate()))
    async with shadow_harness(tmp_path) as h:

        async def broken(scope: Scope, receive: Receive, send: Send) -> None:
            await receive()
            raise RuntimeError("baseline down")

        h.app.app = broken
        with pytest.raises(RuntimeError):
            await h.post(command())
        await h.engine.shadow.join()
        assert route.call_count == 0
        assert h.decisions("skipped", "baseline_error") == 1
        (line,) = h.lines()
        assert line["reason_code"] == "baseline_error" and line["command_key"]


async def test_queued_jobs_give_the_loop_back_between_stages(
    tmp_path: Path, llm: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the breaker open a job suspends nowhere by itself (the ask answers at once, a
    queued job's ``get`` returns at once): still every stage of every job runs in a turn of
    its own, so a request that arrives while jobs are queued never waits for a chain."""
    llm.post("/chat/completions").mock(return_value=httpx.Response(500))
    async with shadow_harness(tmp_path, workers=1) as h:
        while h.engine.circuit is not None and h.engine.circuit.allow():
            h.engine.circuit.record_failure()
        turns, events = 0, []

        async def ticker() -> None:
            nonlocal turns
            while True:
                turns += 1
                await asyncio.sleep(0)

        decide, emit = h.engine.decide, h.engine.emit

        def decide_at(*args: Any) -> Any:
            events.append(("decide", turns))
            return decide(*args)

        def emit_at(outcome: Any, span: Any = None) -> None:
            if outcome.sampled:
                events.append(("emit", turns))
            emit(outcome, span)

        monkeypatch.setattr(h.engine, "decide", decide_at)
        monkeypatch.setattr(h.engine, "emit", emit_at)
        for i in range(3):  # queued before the worker runs: its get() never waits
            await h.post(command(f"c-{i}"))
        task = asyncio.create_task(ticker())
        await h.engine.shadow.join()
        task.cancel()
        assert [e for e, _ in events] == ["decide", "emit"] * 3
        at = [t for _, t in events]
        assert all(b > a for a, b in itertools.pairwise(at)), events  # a turn between each
        assert {x["reason_code"] for x in h.lines()} == {"circuit_open"}
