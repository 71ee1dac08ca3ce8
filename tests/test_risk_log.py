"""The risk log: exact privacy-safe fields, a request path that never blocks, atomic appends.

The writer is exercised against real files and real faults (a directory as path, a parent
that is a regular file, /dev/full) and two real processes appending to one file.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from partial_trust.middleware.risk_log import RiskLog
from partial_trust.outcome import Outcome, Reason, Status

REPO = Path(__file__).resolve().parents[1]
EXPECTED_FIELDS = (
    "timestamp", "schema", "corridor", "command_key", "status", "reason_code", "sampled",
    "sample_rate", "profile_id", "latency_ms", "baseline_latency_ms", "intent_match",
    "entity_key_match", "confidence", "items_baseline", "items_llm", "mode", "agreement",
    "mode_capped",
)  # fmt: skip


def outcome(n: int = 0, **kw: object) -> Outcome:
    base: dict[str, object] = {
        "corridor": "add_shopping_item",
        "status": Status.FALLBACK_DETERMINISTIC,
        "reason": Reason.INTENT_MISMATCH,
        "sampled": True,
        "sample_rate": 0.1,
        "profile_id": "default",
        "command_key": f"k{n}",
        "latency_ms": 123.456789,
        "baseline_latency_ms": 1.23456,
        "intent_match": False,
        "entity_key_match": True,
        "confidence": 0.912345678,
        "items_baseline": 2,
        "items_llm": 3,
        "timestamp": 1_700_000_000.1234,
    }
    base.update(kw)
    return Outcome(**base)  # type: ignore[arg-type]  # mixed fields; Outcome checks them


def wait_for(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.005)


def count(log: RiskLog, key: str) -> int:
    value = log.status()[key]
    assert isinstance(value, int)
    return value


def lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines()]


@pytest.fixture
def make_log() -> Iterator[Callable[..., RiskLog]]:
    logs: list[RiskLog] = []

    def make(path: Path | str, **kw: object) -> RiskLog:
        log = RiskLog(path, **kw)  # type: ignore[arg-type]  # each test's options; RiskLog checks them
        logs.append(log)
        return log

    yield make
    for log in logs:
        log.close(timeout=2.0)


# -- writer --------------------------------------------------------------------------------


def test_written_lines_parse_and_close_flushes_everything(
    tmp_path: Path, make_log: Callable[..., RiskLog]
) -> None:
    path = tmp_path / "nested" / "dir" / "risk.jsonl"
    results: list[tuple[str, int]] = []
    log = make_log(path, max_queue=20_000, on_result=lambda r, n: results.append((r, n)))
    log.start()
    for i in range(20_000):
        assert log.submit(outcome(i, profile_id="прoфиль"))
    log.close()
    raw = path.read_bytes()
    assert raw.endswith(b"\n") and "прoфиль".encode() in raw  # UTF-8, ensure_ascii=False
    recs = lines(path)
    assert [r["command_key"] for r in recs] == [f"k{i}" for i in range(20_000)]
    assert all(tuple(r) == EXPECTED_FIELDS for r in recs)
    assert b", " not in raw and b": " not in raw  # compact separators
    assert sum(n for r, n in results if r == "written") == 20_000
    status = log.status()
    assert status["written"] == 20_000 and status["dropped"] == 0 and status["failed"] == 0
    assert status["writable"] is True and status["queue_depth"] == 0
    assert isinstance(log.last_write_timestamp, float)
    assert log.last_write_timestamp == status["last_write_timestamp"]
    assert (path.stat().st_mode & 0o777) & ~0o640 == 0
    assert log.submit(outcome()) is False  # after close: dropped
    assert log.status()["dropped"] == 1


def test_close_without_start_flushes_synchronously(tmp_path: Path) -> None:
    log = RiskLog(tmp_path / "r.jsonl")
    for i in range(10):
        log.submit(outcome(i))
    log.close()
    assert len(lines(tmp_path / "r.jsonl")) == 10


@pytest.mark.anyio
async def test_aclose_flushes_from_an_async_lifespan(tmp_path: Path) -> None:
    log = RiskLog(tmp_path / "r.jsonl")
    log.start()
    for i in range(100):
        log.submit(outcome(i))
    await log.aclose()
    assert len(lines(tmp_path / "r.jsonl")) == 100


def test_full_queue_drops_and_counts_without_blocking(
    tmp_path: Path, make_log: Callable[..., RiskLog]
) -> None:
    stall, stalled = threading.Event(), threading.Event()
    dropped = 0

    def on_result(result: str, n: int) -> None:
        nonlocal dropped
        if result == "dropped":
            dropped += n
        elif result == "written":  # runs on the writer thread: stall it there
            stalled.set()
            stall.wait(60)

    log = make_log(tmp_path / "r.jsonl", max_queue=8, on_result=on_result)
    log.start()
    log.submit(outcome(0))
    assert stalled.wait(5)
    started = time.perf_counter()
    accepted = sum(log.submit(outcome(i)) for i in range(1, 100_001))
    elapsed = time.perf_counter() - started
    # A submit that waited for the stalled writer would wait out its 60 s stall: the bound
    # is generous for a busy machine (100k submits take ~0.1 s idle) and still tells.
    assert elapsed < 30.0, f"submit blocked: {elapsed:.2f}s for 100k"
    assert accepted == 8 and dropped == 100_000 - 8
    assert log.status()["dropped"] == dropped and log.status()["queue_depth"] == 8
    stall.set()
    log.close()
    assert log.status()["written"] == 9 == len(lines(tmp_path / "r.jsonl"))


@pytest.mark.parametrize("kind", ["directory", "parent_is_file"])
def test_unwritable_path_counts_failed_and_never_raises(
    tmp_path: Path, make_log: Callable[..., RiskLog], kind: str
) -> None:
    if kind == "directory":
        path, expected = tmp_path, "EISDIR"
    else:
        (tmp_path / "blocker").write_text("x")
        path, expected = tmp_path / "blocker" / "sub" / "r.jsonl", "ENOTDIR"
    failed: list[int] = []
    log = make_log(path, on_result=lambda r, n: failed.append(n) if r == "failed" else None)
    assert log.status()["writable"] is False  # os.access probe before any attempt
    log.start()
    for i in range(50):
        assert log.submit(outcome(i)) is True
    wait_for(lambda: log.status()["failed"] == 50)
    status = log.status()
    assert status["writable"] is False and status["last_error"] == expected
    assert status["written"] == 0 and sum(failed) == 50 and status["last_write_timestamp"] is None


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_dev_full_counts_failed_with_enospc(make_log: Callable[..., RiskLog]) -> None:
    log = make_log("/dev/full")
    log.start()
    for i in range(20):
        log.submit(outcome(i))
    wait_for(lambda: log.status()["failed"] == 20)
    assert log.status()["last_error"] == "ENOSPC" and log.status()["writable"] is False


def test_recovers_when_the_path_becomes_writable(
    tmp_path: Path, make_log: Callable[..., RiskLog]
) -> None:
    blocker = tmp_path / "logs"
    blocker.write_text("not a directory")
    path = blocker / "r.jsonl"
    log = make_log(path)
    log.start()
    for i in range(5):
        log.submit(outcome(i))
    wait_for(lambda: log.status()["failed"] == 5)
    blocker.unlink()  # the fault ends: the next batch re-creates the parent and the file
    for i in range(5, 12):
        log.submit(outcome(i))
    wait_for(lambda: log.status()["written"] == 7)
    status = log.status()
    assert status["writable"] is True and status["last_write_timestamp"] is not None
    assert [r["command_key"] for r in lines(path)] == [f"k{i}" for i in range(5, 12)]


def test_file_rotated_away_is_reopened(tmp_path: Path, make_log: Callable[..., RiskLog]) -> None:
    path = tmp_path / "r.jsonl"
    log = make_log(path)
    log.start()
    log.submit(outcome(1))
    wait_for(lambda: log.status()["written"] == 1)
    path.rename(tmp_path / "r.jsonl.1")
    log.submit(outcome(2))
    wait_for(lambda: log.status()["written"] == 2)
    assert [r["command_key"] for r in lines(path)] == ["k2"]


def test_partial_write_then_failure_never_glues_lines(
    tmp_path: Path, make_log: Callable[..., RiskLog], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "r.jsonl"
    log = make_log(path)
    real_write = os.write
    calls = {"n": 0}

    def flaky(fd: int, data: bytes) -> int:
        if fd != getattr(log, "_fd", None):
            return real_write(fd, data)
        calls["n"] += 1
        if calls["n"] == 1:  # half a batch lands, then the disk fills up
            return real_write(fd, bytes(data)[: len(data) // 2 + 3])  # mid-line
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", flaky)
    for i in range(10):  # queued before start: one batch of 10
        log.submit(outcome(i))
    log.start()
    wait_for(lambda: count(log, "written") + count(log, "failed") == 10)
    written = count(log, "written")
    assert log.status()["last_error"] == "ENOSPC" and 0 < written < 10
    monkeypatch.setattr(os, "write", real_write)
    log.submit(outcome(99))
    log.close()
    text = path.read_text("utf-8").splitlines()
    parsed = [json.loads(t) for t in text if t.endswith("}")]
    assert len(parsed) == written + 1 and parsed[-1]["command_key"] == "k99"
    assert len(text) == len(parsed) + 1  # exactly one torn fragment, on a line of its own


def test_failure_logging_is_throttled_and_never_holds_record_content(
    tmp_path: Path, make_log: Callable[..., RiskLog], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="partial_trust.middleware.risk_log")
    # A directory: every write fails. A short interval: 40 one-record batches stay quick.
    log = make_log(tmp_path, flush_interval_s=0.005)
    log.start()
    for i in range(40):  # one at a time, so each record is its own failing batch
        log.submit(outcome(i, command_key=f"secret-key-{i}"))

        def failed(n: int = i + 1) -> bool:
            return log.status()["failed"] == n

        wait_for(failed)
    warnings = [r for r in caplog.records if r.name == "partial_trust.middleware.risk_log"]
    assert len(warnings) == 1 and "EISDIR" in warnings[0].getMessage()
    log.LOG_INTERVAL_S = 0.0  # the window has passed
    log.submit(outcome(41))
    wait_for(lambda: log.status()["failed"] == 41)
    warnings = [r for r in caplog.records if r.name == "partial_trust.middleware.risk_log"]
    assert len(warnings) == 2
    assert "secret-key" not in caplog.text


def test_threads_submitting_concurrently_lose_nothing(
    tmp_path: Path, make_log: Callable[..., RiskLog]
) -> None:
    path = tmp_path / "r.jsonl"
    log = make_log(path, max_queue=100_000)
    log.start()

    def worker(t: int) -> None:
        for i in range(2_000):
            log.submit(outcome(command_key=f"t{t}-{i}"))

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log.close()
    keys = [r["command_key"] for r in lines(path)]
    assert len(keys) == 8_000 and len(set(keys)) == 8_000


CHILD = """
import sys, time
from partial_trust.outcome import Outcome, Reason, Status
from partial_trust.middleware.risk_log import RiskLog
path, tag, go = sys.argv[1], sys.argv[2], float(sys.argv[3])
log = RiskLog(path, max_queue=10_000)
log.start()
while time.time() < go:
    time.sleep(0.001)
for i in range(5_000):
    log.submit(Outcome(corridor="add_shopping_item", status=Status.ERROR,
                       reason=Reason.LLM_TIMEOUT, sampled=True, sample_rate=1.0,
                       command_key=f"{tag}-{i}", profile_id="p" * 100))
    if i % 50 == 0:
        time.sleep(0)  # let the writer take small batches, so appends really interleave
log.close()
assert log.status()["written"] == 5_000, log.status()
"""


def test_two_processes_append_without_torn_or_interleaved_lines(tmp_path: Path) -> None:
    path = tmp_path / "shared" / "risk.jsonl"
    go = time.time() + 1.0  # both children start appending at the same instant
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [
        subprocess.Popen([sys.executable, "-c", CHILD, str(path), tag, str(go)], env=env, cwd=REPO)
        for tag in ("a", "b")
    ]
    assert [p.wait(timeout=15) for p in procs] == [0, 0]
    raw = path.read_bytes()
    assert raw.endswith(b"\n")
    recs = [json.loads(line) for line in raw.decode("utf-8").splitlines()]
    assert len(recs) == 10_000
    keys = {r["command_key"] for r in recs}
    assert keys == {f"{tag}-{i}" for tag in ("a", "b") for i in range(5_000)}
    assert all(tuple(r) == EXPECTED_FIELDS for r in recs)
