"""The reader's bounds, in process: line length, gzip inflation, non-regular files, counters.

Each bound is checked at its edge (just inside is read, just outside is refused or skipped)
and for the property it protects: byte ranges still count every line exactly once when a
range boundary falls inside an over-long line, and bucketed latencies keep the p95 within
the documented 0.1%.
"""

from __future__ import annotations

import gzip
import os
import random
import socket
import threading
import time
from pathlib import Path

import pytest

from partial_trust.apps.analysis import limits, reader, selftest, tally
from partial_trust.apps.analysis.figures import from_tally, percentile
from partial_trust.apps.analysis.limits import MAX_LINE, InputError
from partial_trust.apps.analysis.reader import count_task, plan, tally_files
from partial_trust.apps.analysis.source import expand, open_regular
from partial_trust.apps.analysis.tally import Tally, Window


def rows(n: int, hour: int = 9) -> list[str]:
    return [
        selftest.canonical((f"2026-11-23T{hour:02d}:{i % 60:02d}:00.000Z", "accepted_llm",
                            "accepted", 100.0 + i % 7, True, True))
        for i in range(n)
    ]  # fmt: skip


def count(path: Path) -> Tally:
    return tally_files([path], Window(), jobs=1)


@pytest.mark.parametrize("extra", [1, 5 * MAX_LINE, 3 << 20])
def test_a_long_line_is_foreign_and_its_neighbours_still_count(tmp_path: Path, extra: int) -> None:
    path = tmp_path / "long.jsonl"
    long = b"x" * (MAX_LINE + extra)
    path.write_bytes(
        "\n".join(rows(5)).encode() + b"\n" + long + b"\n" + "\n".join(rows(5)).encode()
    )
    t = count(path)
    assert (sum(t.records.values()), t.foreign, t.overlong, t.lines) == (10, 1, 1, 11)


def test_a_line_of_exactly_max_line_is_judged_not_skipped(tmp_path: Path) -> None:
    path = tmp_path / "edge.jsonl"
    path.write_bytes(b" " * (MAX_LINE - 1) + b"x\n")
    t = count(path)
    assert (t.foreign, t.overlong) == (1, 0)


def test_an_unterminated_long_tail_is_torn(tmp_path: Path) -> None:
    path = tmp_path / "tail.jsonl"
    path.write_bytes("\n".join(rows(3)).encode() + b"\n" + b"y" * (2 * MAX_LINE))
    t = count(path)
    assert (sum(t.records.values()), t.torn, t.foreign, t.overlong) == (3, 1, 0, 1)


def test_byte_ranges_split_inside_long_lines_count_each_line_once(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    parts = rows(40)
    for at in (3, 17, 30):
        parts.insert(at, "z" * (MAX_LINE * 3 + at))
    path.write_text("\n".join(parts) + "\n")
    (whole,) = plan([path], task_size=1 << 40)
    want = count_task(whole, Window())
    assert (sum(want.records.values()), want.overlong, want.lines) == (40, 3, 43)
    for size in (1000, MAX_LINE - 7, MAX_LINE * 2 + 11):
        got = Tally()
        for task in plan([path], task_size=size):
            got.merge(count_task(task, Window()))
        assert (got.records, got.foreign, got.lines) == (want.records, 3, 43), size


def test_gzip_inflating_past_its_cap_is_refused(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.jsonl.gz"
    bomb.write_bytes(gzip.compress(b"\0" * (limits.GZIP_ALLOWANCE + (32 << 20)), 9))
    cap = reader.gzip_cap(bomb.stat().st_size)
    assert cap < limits.GZIP_ALLOWANCE + (32 << 20)
    with pytest.raises(InputError, match="gzip bomb"):
        count(bomb)
    fine = tmp_path / "fine.jsonl.gz"
    fine.write_bytes(gzip.compress(("\n".join(rows(500)) + "\n").encode()))
    assert sum(count(fine).records.values()) == 500


def test_corrupt_gzip_is_an_input_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl.gz"
    bad.write_bytes(gzip.compress(b"x" * 10_000)[:20] + b"\x00" * 50)
    with pytest.raises(InputError, match="cannot read"):
        count(bad)


def test_non_regular_files_are_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo.jsonl"
    os.mkfifo(fifo)
    sock_path = tmp_path / "sock.jsonl"
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(sock_path))
    zero = tmp_path / "zero.jsonl"
    zero.symlink_to("/dev/zero")
    (tmp_path / "dir.jsonl").mkdir()
    outcome: dict[str, str] = {}

    def probe() -> None:  # in a thread: a blocking open would hang here, not the test
        for name in ("fifo.jsonl", "sock.jsonl", "zero.jsonl", "dir.jsonl"):
            try:
                open_regular(tmp_path / name)
                outcome[name] = "opened"
            except InputError as exc:
                outcome[name] = str(exc)

    worker = threading.Thread(target=probe, daemon=True)
    worker.start()
    worker.join(10)
    sock.close()
    assert not worker.is_alive(), "opening a non-regular file blocked"
    assert "is a FIFO" in outcome["fifo.jsonl"] and "is a socket" in outcome["sock.jsonl"]
    assert "character device" in outcome["zero.jsonl"] and "directory" in outcome["dir.jsonl"]
    for pattern in (str(tmp_path / "*.jsonl"), str(tmp_path)):  # a glob and a folder
        with pytest.raises(InputError, match="not a regular file"):
            expand([pattern])


def test_latencies_are_bucketed_past_the_cap_and_p95_stays_within_a_tenth_percent(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(tally, "MAX_LATENCY_KEYS", 500)
    rng = random.Random(5)
    values = [round(rng.uniform(1, 2000), 2) for _ in range(5000)]
    lines = [
        selftest.canonical((f"2026-11-23T09:{i % 60:02d}:00.000Z", "error", "llm_timeout", v,
                            None, None))
        for i, v in enumerate(values)
    ]  # fmt: skip
    half = len(lines) // 2
    (tmp_path / "a.jsonl").write_text("\n".join(lines[:half]) + "\n")
    (tmp_path / "b.jsonl").write_text("\n".join(lines[half:]) + "\n")
    t = tally_files(sorted(tmp_path.glob("*.jsonl")), Window(), jobs=1)
    assert not t.latency_exact and len(t.latencies) < 5000
    fig = from_tally(t)
    exact = percentile({v: values.count(v) for v in set(values)}, 0.95)
    assert exact is not None and fig.latency_p95 is not None
    assert abs(fig.latency_p95 - exact) <= exact * 0.001
    assert fig.latency_count == 5000 and fig.to_json()["input"]["latency_p95_exact"] is False


def test_too_many_distinct_groups_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(tally, "MAX_RECORD_KEYS", 100)
    path = tmp_path / "spread.jsonl"
    days = [f"2026-{1 + h // 672:02d}-{1 + h // 24 % 28:02d}" for h in range(200)]
    lines = [rows(1, hour=h % 24)[0].replace("2026-11-23", day) for h, day in enumerate(days)]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match="distinct"):
        count(path)


def test_a_huge_single_line_is_read_in_linear_time(tmp_path: Path) -> None:
    path = tmp_path / "huge.jsonl"
    with path.open("wb") as f:
        for _ in range(32):
            f.write(b"A" * (1 << 20))
        f.write(b"\n")
    start = time.process_time()
    t = count(path)
    assert (t.foreign, t.overlong) == (1, 1)
    assert time.process_time() - start < 5  # quadratic concatenation took ~0.5 s per 10 MB
