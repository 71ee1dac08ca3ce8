"""Faults that hit the review store WHILE the app serves, not when it opens.

SQLite keeps accepting inserts into a file that was overwritten, truncated, deleted or
replaced under an open connection (into a page cache and a WAL nobody reads again): the
writer used to count those cases ``kept``. Each fault here comes after cases were kept;
then every request must still be served (the accepted canary answer, 200, no stall), review
must turn off with the reason, and each later case must be counted ``dropped_off`` or
``failed`` per corridor on the metrics, with no canary in any log record. A disk that fills
mid-run is SQLite's real ``SQLITE_FULL``, reached through the writer's ``PAGE_LIMIT`` hook.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import respx
from prometheus_client import CollectorRegistry

from partial_trust.middleware.review import ReviewCase
from partial_trust.middleware.review_metrics import ReviewMetrics
from partial_trust.middleware.review_writer import ReviewWriter
from tests.corridor_harness import LLM_URL, completion, harness
from tests.corridor_harness import settings as corridor_settings
from tests.review_helpers import canary_command, disagreeing_candidate, leaks, review_settings

pytestmark = pytest.mark.anyio
CORRIDOR = "add_shopping_item"


def _garbage(path: Path) -> None:
    with open(path, "r+b") as handle:
        handle.write(b"not sqlite " * 800)


def _wal(db: Path) -> Path:
    return db.with_name(db.name + "-wal")


def _replace(path: Path) -> None:
    path.unlink()
    path.write_bytes(b"x" * 8192)


FAULTS: dict[str, tuple[Callable[[Path], None], str]] = {
    "overwritten": (_garbage, "overwritten"),
    "wal-overwritten": (lambda p: _garbage(_wal(p)), "-wal was overwritten"),
    "truncated": (lambda p: os.truncate(p, 0), "truncated"),
    "wal-truncated": (lambda p: os.truncate(_wal(p), 0), "disk I/O error"),
    "deleted": (lambda p: p.unlink(), "deleted"),
    "replaced": (_replace, "replaced"),
    "wal-deleted": (lambda p: _wal(p).unlink(), "-wal was deleted"),
}


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.text: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.text.append(record.getMessage() + repr(record.args))


def _wait(predicate: Callable[[], bool], timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.02)
    return predicate()


async def _serve_through(
    tmp_path: Path, fault: Callable[[Path], None] | None, before: int, after: int
) -> tuple[ReviewWriter, CollectorRegistry, list[str]]:
    """``before`` disagreements kept, ``fault`` applied, ``after`` more served."""
    path = tmp_path / "store" / "review.db"
    registry = CollectorRegistry()
    writer = ReviewWriter(review_settings(path), on_result=ReviewMetrics(registry).case)
    writer.start()
    assert writer.wait_ready(10.0) and writer.active
    records = _Records()
    logging.getLogger().addHandler(records)
    try:
        async with harness(tmp_path, corridor_settings(review_enabled=True)) as h:
            h.engine.review = writer
            with respx.mock() as mock:
                mock.post(f"{LLM_URL}/chat/completions").mock(
                    return_value=completion(disagreeing_candidate())
                )
                for i in range(before):
                    assert (await h.post(canary_command(f"before-{i}"))).status_code == 200
                assert _wait(lambda: writer.status()["kept"] == before), writer.status()
                if fault is not None:
                    fault(path)
                slowest = 0.0
                for i in range(after):
                    started = time.perf_counter()
                    response = await h.post(canary_command(f"after-{i}"))
                    slowest = max(slowest, time.perf_counter() - started)
                    assert response.status_code == 200
                    # accepted: the candidate without the milk is served
                    assert len(response.json()["job"]["payload"]["items"]) == 1
            assert slowest < 2.0, f"a request stalled for {slowest:.2f}s"
            assert len(h.lines()) == before + after
    finally:
        logging.getLogger().removeHandler(records)
    return writer, registry, records.text


def _counted(registry: CollectorRegistry, result: str) -> float:
    labels = {"corridor": CORRIDOR, "result": result}
    return registry.get_sample_value("partial_trust_review_cases_total", labels) or 0.0


@pytest.mark.parametrize("name", sorted(FAULTS))
async def test_a_store_broken_mid_run_turns_review_off_and_counts_every_case(
    tmp_path: Path, name: str
) -> None:
    fault, why = FAULTS[name]
    writer, registry, logs = await _serve_through(tmp_path, fault, before=3, after=6)
    try:
        assert _wait(lambda: writer.active is False)
        assert why in str(writer.status()["reason"]), writer.status()
        lost = ("dropped_off", "failed")
        assert _wait(lambda: sum(_counted(registry, r) for r in lost) == 6), writer.status()
        assert _counted(registry, "kept") == 3
        assert writer.status()["queue_depth"] == 0
        assert all(not leaks(line) for line in logs), "a canary in a log record"
    finally:
        writer.close()


async def test_a_disk_that_fills_mid_run_is_sqlite_full(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a store starts with 6 pages (schema, meta, cases, index, verdicts, sequence): 3 more
    monkeypatch.setattr(ReviewWriter, "PAGE_LIMIT", 9)
    writer, registry, logs = await _serve_through(tmp_path, None, before=1, after=30)
    try:
        assert _wait(lambda: writer.active is False), writer.status()
        assert writer.status()["reason"] == "the store's disk is full"
        assert _counted(registry, "failed") == 1  # the case the insert failed on
        kept = _counted(registry, "kept")
        assert _wait(lambda: kept + 1 + _counted(registry, "dropped_off") == 31)
        assert 1 <= kept < 31
        assert all(not leaks(line) for line in logs), "a canary in a log record"
    finally:
        writer.close()


async def test_an_intact_store_stays_on(tmp_path: Path) -> None:
    """The checks do not misfire: a healthy store keeps every case through many batches."""
    writer, registry, _ = await _serve_through(tmp_path, None, before=3, after=12)
    try:
        assert _wait(lambda: _counted(registry, "kept") == 15), writer.status()
        assert writer.active is True and writer.status()["reason"] is None
    finally:
        writer.close()


def test_a_shared_store_is_not_mistaken_for_a_changed_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two writers (two app instances) and a reader (the console) on one file: checkpoints,
    WAL resets and the reader's opens and closes are not faults; every case is kept."""
    from partial_trust.apps.review.store import ReviewReader
    from tests.review_helpers import started

    monkeypatch.setattr(ReviewWriter, "CHECK_INTERVAL_S", 0.01)
    path = tmp_path / "review.db"
    writers = [started(review_settings(path)), started(review_settings(path))]
    try:
        for i in range(40):
            case = _case(f"shared-{i}")
            assert writers[i % 2].submit(case)
            if i % 10 == 9:
                with ReviewReader(review_settings(path)) as reader:
                    assert reader.progress()["total"] <= i + 1
                time.sleep(0.05)
        assert _wait(lambda: sum(int(str(w.status()["kept"])) for w in writers) == 40)
        assert all(w.active and w.status()["reason"] is None for w in writers)
        with ReviewReader(review_settings(path)) as reader:
            assert reader.progress()["total"] == 40
    finally:
        for writer in writers:
            writer.close()


def _case(command_id: str) -> ReviewCase:
    return ReviewCase(
        corridor=CORRIDOR, mode="shadow", status="accepted_llm", reason="accepted",
        command_key="ab" * 8, command=canary_command(command_id), baseline={"intent": "x"},
        candidate=disagreeing_candidate(),
    )  # fmt: skip
