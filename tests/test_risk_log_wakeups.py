"""The risk-log writer wakes per interval or at a high-water mark, never once per record.

``submit`` only appends to a deque; these tests pin down when the writer thread runs: within
about ``flush_interval_s`` without any close, early once the queue passes its high-water
mark, not per record, and on ``close`` even when the queue is full or the disk hangs.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from partial_trust.middleware.risk_log import _BATCH, RiskLog
from tests import test_risk_log
from tests.test_risk_log import count, lines, outcome, wait_for

make_log = test_risk_log.make_log  # the same fixture: logs closed after each test

LONG = 60.0  # a flush interval no test waits for: anything written earlier was woken


@pytest.fixture
def count_writes(monkeypatch: pytest.MonkeyPatch) -> Callable[[RiskLog], list[int]]:
    """``count_writes(log)``: the sizes of every ``os.write`` to that log's file, as they land."""

    def install(log: RiskLog) -> list[int]:
        sizes: list[int] = []
        real_write = os.write

        def counting(fd: int, data: bytes) -> int:
            n = real_write(fd, data)
            if fd == getattr(log, "_fd", None):
                sizes.append(n)
            return n

        monkeypatch.setattr(os, "write", counting)
        return sizes

    return install


def test_records_are_written_within_the_flush_interval_without_close(
    tmp_path: Path, make_log: Callable[..., RiskLog]
) -> None:
    path = tmp_path / "r.jsonl"
    log = make_log(path, flush_interval_s=0.05)
    log.start()
    for i in range(3):  # far below the high-water mark: only the interval wakes the writer
        assert log.submit(outcome(i))
    started = time.monotonic()
    wait_for(lambda: path.exists() and len(lines(path)) == 3, timeout=2.0)
    assert time.monotonic() - started < 1.0  # ~one interval, generous for a loaded CI box
    assert [r["command_key"] for r in lines(path)] == ["k0", "k1", "k2"]
    assert count(log, "written") == 3 and count(log, "queue_depth") == 0


def test_writer_is_not_woken_per_record(
    tmp_path: Path,
    make_log: Callable[..., RiskLog],
    monkeypatch: pytest.MonkeyPatch,
    count_writes: Callable[[RiskLog], list[int]],
) -> None:
    monkeypatch.setattr(RiskLog, "WAKE_AT", 5_000)  # high-water mark above the 1,000 below
    path = tmp_path / "r.jsonl"
    log = make_log(path, max_queue=20_000, flush_interval_s=LONG)
    writes = count_writes(log)
    log.start()
    for i in range(1_000):
        assert log.submit(outcome(i))
    time.sleep(0.2)  # a per-record wake-up would have written (part of) the burst by now
    assert writes == [] and count(log, "queue_depth") == 1_000 and not path.exists()
    log.close()
    assert len(writes) == math.ceil(1_000 / _BATCH)  # one os.write per full batch, no more
    assert [r["command_key"] for r in lines(path)] == [f"k{i}" for i in range(1_000)]
    assert count(log, "written") == 1_000 and count(log, "dropped") == 0


def test_high_water_mark_wakes_the_writer_before_the_interval(
    tmp_path: Path, make_log: Callable[..., RiskLog], count_writes: Callable[[RiskLog], list[int]]
) -> None:
    path = tmp_path / "r.jsonl"
    log = make_log(path, max_queue=100, flush_interval_s=LONG)  # mark: min(100 // 2, 256)
    writes = count_writes(log)
    log.start()
    for i in range(49):
        assert log.submit(outcome(i))
    time.sleep(0.2)
    assert writes == [] and count(log, "queue_depth") == 49  # below the mark: still asleep
    assert log.submit(outcome(49))  # the 50th record reaches the mark
    wait_for(lambda: count(log, "written") == 50, timeout=5.0)  # well before LONG
    assert len(writes) == 1 and len(lines(path)) == 50


def test_default_high_water_mark_is_capped_at_256(
    tmp_path: Path, make_log: Callable[..., RiskLog]
) -> None:
    log = make_log(tmp_path / "r.jsonl", max_queue=10_000, flush_interval_s=LONG)
    log.start()
    for i in range(256):
        log.submit(outcome(i))
    wait_for(lambda: count(log, "written") == 256, timeout=5.0)


def test_close_with_a_full_queue_flushes_everything_and_returns(
    tmp_path: Path, make_log: Callable[..., RiskLog]
) -> None:
    stall, stalled = threading.Event(), threading.Event()

    def on_result(result: str, n: int) -> None:
        if result == "written" and not stall.is_set():  # hold the writer mid-batch
            stalled.set()
            stall.wait(10)

    path = tmp_path / "r.jsonl"
    log = make_log(path, max_queue=8, on_result=on_result, flush_interval_s=LONG)
    log.start()
    for i in range(4):  # reaches the mark (4): the writer takes these and stalls
        log.submit(outcome(i))
    assert stalled.wait(5)
    assert sum(log.submit(outcome(i)) for i in range(4, 20)) == 8  # full: the rest drop
    assert count(log, "queue_depth") == 8
    threading.Timer(0.2, stall.set).start()
    started = time.monotonic()
    log.close(timeout=5.0)  # no queue slot needed to stop
    assert time.monotonic() - started < 3.0
    assert [r["command_key"] for r in lines(path)] == [f"k{i}" for i in range(12)]
    assert count(log, "written") == 12 and count(log, "dropped") == 8
    assert count(log, "queue_depth") == 0 and log.submit(outcome(99)) is False


def test_close_returns_when_the_disk_hangs(
    tmp_path: Path, make_log: Callable[..., RiskLog]
) -> None:
    hang = threading.Event()
    log = make_log(
        tmp_path / "r.jsonl",
        on_result=lambda r, n: hang.wait(10) if r == "written" else None,
        flush_interval_s=0.01,
    )
    log.start()
    log.submit(outcome(0))
    wait_for(lambda: count(log, "queue_depth") == 0)
    log.submit(outcome(1))
    started = time.monotonic()
    log.close(timeout=0.2)  # the writer is stuck: leave it, it is a daemon
    assert time.monotonic() - started < 2.0
    assert log.submit(outcome(2)) is False
    hang.set()  # the writer finishes, sees the stop flag, drains k1 and exits
    wait_for(lambda: count(log, "written") == 2)
    assert log._thread is not None
    log._thread.join(5)
    assert not log._thread.is_alive()


def test_start_is_idempotent_and_a_closed_log_never_starts(tmp_path: Path) -> None:
    log = RiskLog(tmp_path / "r.jsonl")
    log.start()
    thread = log._thread
    log.start()
    assert log._thread is thread
    log.close()
    assert thread is not None and not thread.is_alive()
    late = RiskLog(tmp_path / "late.jsonl")
    late.close()
    late.start()
    assert late._thread is None


@pytest.mark.parametrize("bad", [0, -1.0, math.nan, math.inf, -math.inf, True, "0.05", None])
def test_invalid_flush_interval_raises(tmp_path: Path, bad: object) -> None:
    with pytest.raises(ValueError, match="flush_interval_s must be a finite number"):
        RiskLog(tmp_path / "r.jsonl", flush_interval_s=bad)  # type: ignore[arg-type]  # a wrong type on purpose


def _count_flushes(log: RiskLog) -> list[float]:
    """The monotonic times at which the writer thread drained the queue (or found it empty)."""
    times: list[float] = []
    real_flush = log._flush

    def counting() -> None:
        times.append(time.monotonic())
        real_flush()

    log._flush = counting  # type: ignore[method-assign]  # a spy on the writer's flush
    return times


def test_an_idle_writer_sleeps_until_the_next_record(
    tmp_path: Path, make_log: Callable[..., RiskLog], count_writes: Callable[[RiskLog], list[int]]
) -> None:
    path = tmp_path / "r.jsonl"
    log = make_log(path, flush_interval_s=0.02)
    flushes = _count_flushes(log)
    log.start()
    assert log.submit(outcome(0))
    wait_for(lambda: count(log, "written") == 1, timeout=2.0)
    time.sleep(0.1)  # one empty interval parks the writer
    parked_at = len(flushes)
    time.sleep(0.5)  # 25 intervals: an interval timer would have woken it ~25 times
    assert len(flushes) == parked_at, "an idle writer kept waking up"
    writes = count_writes(log)
    for i in range(1, 11):  # a burst: the first record wakes it, the rest join its batch
        assert log.submit(outcome(i))
    wait_for(lambda: count(log, "written") == 11, timeout=2.0)
    assert writes == [sum(len(json.dumps(r, separators=(",", ":"))) + 1 for r in lines(path)[1:])]
    assert [r["command_key"] for r in lines(path)] == [f"k{i}" for i in range(11)]


def test_close_wakes_a_parked_writer_and_loses_nothing(
    tmp_path: Path, make_log: Callable[..., RiskLog]
) -> None:
    path = tmp_path / "r.jsonl"
    log = make_log(path, flush_interval_s=0.02)
    flushes = _count_flushes(log)
    log.start()
    time.sleep(0.1)
    assert len(flushes) <= 2  # parked after the first empty interval
    started = time.monotonic()
    log.close()
    assert time.monotonic() - started < 1.0
    assert log._thread is not None and not log._thread.is_alive()
    assert not log.submit(outcome(1)) and count(log, "dropped") == 1


@pytest.mark.parametrize("pause", [0.0, 0.0001, 0.001, 0.005])
def test_records_racing_the_writer_into_its_sleep_are_never_stranded(
    tmp_path: Path, make_log: Callable[..., RiskLog], pause: float
) -> None:
    # A submit may land just as the writer decides to sleep: it must either see the record
    # or be woken by it. 200 single records, each after the writer may have parked.
    path = tmp_path / "r.jsonl"
    log = make_log(path, flush_interval_s=0.001)
    log.start()
    for i in range(200):
        assert log.submit(outcome(i))

        def written(n: int = i + 1) -> bool:
            return count(log, "written") == n

        wait_for(written, timeout=2.0)
        time.sleep(pause)
    assert len(lines(path)) == 200
