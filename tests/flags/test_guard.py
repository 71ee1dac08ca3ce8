"""The flag file guard: content hashes (not mtimes), the private snapshot, errors, deadlines."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import time
from pathlib import Path

import pytest

import partial_trust.flags.guard
import partial_trust.flags.saferead
from partial_trust.flags import flagfile
from partial_trust.flags.guard import NO_CONTENT, SNAPSHOT_FLAG, FlagFileGuard


def snapshot_digest(guard: FlagFileGuard) -> str:
    raw = json.loads(guard.snapshot_path.read_text())
    value: str = raw["flags"][SNAPSHOT_FLAG]["variants"]["v"]
    return value


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_snapshot_is_private_and_names_the_content_it_holds(flag_file: Path) -> None:
    guard = FlagFileGuard(flag_file)
    guard.start()
    try:
        assert stat.S_IMODE(guard.snapshot_path.parent.stat().st_mode) == 0o700
        state = guard.state()
        assert state.error is None and state.digest == sha(flag_file)
        assert snapshot_digest(guard) == state.digest
        raw = json.loads(guard.snapshot_path.read_text())
        assert (
            raw["flags"][flagfile.ENABLED]
            == json.loads(flag_file.read_text())["flags"][flagfile.ENABLED]
        )
    finally:
        guard.stop()


def test_a_same_size_change_with_an_older_mtime_is_seen(flag_file: Path) -> None:
    guard = FlagFileGuard(flag_file)
    guard.poll()
    first = guard.state().digest
    before = flag_file.stat()
    text = flag_file.read_text().replace('"defaultVariant": "off"', '"defaultVariant": "on" ')
    assert len(text) == before.st_size
    flag_file.write_text(text)
    os.utime(flag_file, ns=(before.st_mtime_ns - 10**10, before.st_mtime_ns - 10**10))
    snapshot_mtime = guard.snapshot_path.stat().st_mtime_ns
    guard.poll()
    assert guard.state().digest == sha(flag_file) != first
    assert snapshot_digest(guard) == sha(flag_file)
    assert guard.snapshot_path.stat().st_mtime_ns > snapshot_mtime  # flagd reloads on it


def test_two_writes_in_one_clock_tick_are_both_seen(flag_file: Path) -> None:
    guard = FlagFileGuard(flag_file, reread_s=3600)
    original = flag_file.read_bytes()
    for _ in range(20):  # in place, same size: stat may not change at all between the two
        flag_file.write_bytes(original.replace(b'"off"\n', b'"on" \n', 1))
        guard.poll()
        flag_file.write_bytes(original)
        guard.poll()
        assert guard.state().digest == sha(flag_file)


def test_a_broken_file_is_an_error_and_the_last_good_content_stays(flag_file: Path) -> None:
    guard = FlagFileGuard(flag_file)
    calls: list[None] = []
    guard.add_listener(lambda: calls.append(None))
    guard.poll()
    good = guard.state()
    assert len(calls) == 1
    flag_file.unlink()
    os.mkfifo(flag_file)
    start = time.monotonic()
    for _ in range(5):
        guard.poll()
    assert time.monotonic() - start < 0.5  # never blocked on the FIFO
    state = guard.state()
    assert state.error is not None and "FIFO" in state.error
    assert state.digest == good.digest and snapshot_digest(guard) == good.digest
    assert len(calls) == 2  # one change, not one per poll


def test_invalid_content_keeps_the_snapshot_and_recovers(flag_file: Path) -> None:
    guard = FlagFileGuard(flag_file)
    guard.poll()
    good = flag_file.read_bytes()
    flag_file.write_text("{ nope")
    guard.poll()
    assert "not valid JSON" in (guard.state().error or "")
    flag_file.write_bytes(good)
    guard.poll()
    assert guard.state().error is None and snapshot_digest(guard) == sha(flag_file)


def test_a_missing_snapshot_is_written_again(flag_file: Path) -> None:
    guard = FlagFileGuard(flag_file)
    guard.poll()
    guard.snapshot_path.unlink()
    guard.snapshot_path.parent.rmdir()  # a /tmp cleaner
    guard.poll()
    assert snapshot_digest(guard) == sha(flag_file)
    guard.cleanup()
    assert not guard.snapshot_path.parent.exists()


def test_before_any_good_read_the_snapshot_serves_nothing(tmp_path: Path) -> None:
    guard = FlagFileGuard(tmp_path / "absent.json")
    guard.start()
    try:
        assert snapshot_digest(guard) == NO_CONTENT
        assert "No such file" in (guard.state().error or "")
    finally:
        guard.stop()


def test_a_read_that_does_not_return_is_reported_too_slow(
    flag_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = partial_trust.flags.saferead.read_regular  # what guard imports by this name

    def stuck(path: Path, **kwargs: object) -> bytes:
        time.sleep(0.6)  # a read stuck in the kernel: no deadline check runs meanwhile
        return real(path)

    monkeypatch.setattr(partial_trust.flags.guard, "read_regular", stuck)
    guard = FlagFileGuard(flag_file, deadline_s=0.1, poll_s=0.01)
    start = time.monotonic()
    guard.start()  # waits for the first read at most deadline + poll
    assert time.monotonic() - start < 0.5
    try:
        assert "too slow" in (guard.state().error or "")
        deadline = time.monotonic() + 5
        while guard.state().error is not None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert guard.state().digest == sha(flag_file)  # it caught up when the read returned
    finally:
        guard.stop()
