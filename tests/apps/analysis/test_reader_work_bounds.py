"""The reader's work bounds: a small input must not cost minutes of Python per line.

The byte caps alone let a megabyte of gzip inflate to 10^8 newlines or short foreign lines,
each a step in Python (a blank line ~0.3 us, a foreign one up to ~25 us: it is validated and
refused), so ``gate`` ran for minutes with flat memory. Two bounds close that class: a gzip
stream's line count is capped per compressed byte, and reading stops once so many lines are
foreign that the share must end above the bound whatever follows (``limits.foreign_limit``).
The stop must be sound: a log just under the gate's bound is still read to the end.
"""

from __future__ import annotations

import gzip
import itertools
from pathlib import Path

import pytest

from partial_trust.apps.analysis import limits, selftest
from partial_trust.apps.analysis.limits import MAX_FOREIGN_SHARE, InputError
from partial_trust.apps.analysis.reader import gzip_line_cap, max_records, plan, tally_files
from partial_trust.apps.analysis.records import parse_line
from partial_trust.apps.analysis.tally import Window
from partial_trust.outcome import Reason, Status


def rows(n: int) -> list[bytes]:
    return [
        selftest.canonical(
            (f"2026-11-23T09:{i % 60:02d}:00.000Z", "accepted_llm", "accepted", 100.0, True, True)
        ).encode()
        for i in range(n)
    ]


def gz(path: Path, line: bytes, lines: int) -> Path:
    with gzip.open(path, "wb", compresslevel=6) as f:
        block = line * 65536
        for _ in range(lines // 65536):
            f.write(block)
    return path


def test_no_record_is_shorter_than_min_record_bytes() -> None:
    shortest = None
    for status, reason in itertools.product(Status, Reason):
        line = (
            f'{{"timestamp":"2026-11-23T09:00:00Z","status":"{status.value}",'
            f'"reason_code":"{reason.value}"}}'
        ).encode()
        if parse_line(line) is not None and (shortest is None or len(line) < len(shortest)):
            shortest = line
    assert shortest is not None  # the shortest legacy record this schema allows
    assert len(shortest) >= limits.MIN_RECORD_BYTES, shortest
    assert parse_line(shortest[: limits.MIN_RECORD_BYTES - 1]) is None


def test_a_gzip_of_short_foreign_lines_stops_early(tmp_path: Path) -> None:
    path = gz(tmp_path / "objects.jsonl.gz", b'{"a":1}\n', 1 << 21)  # 2M lines, ~30 KB
    with pytest.raises(InputError, match="stopped reading") as caught:
        tally_files([path], Window(), jobs=2, give_up_share=MAX_FOREIGN_SHARE)
    said = int(str(caught.value).split("more than ")[1].split(" lines")[0].replace(",", ""))
    assert said < 20_000, said  # the old reader went through all 2M (about a minute)


def test_a_gzip_of_newlines_is_refused_by_its_line_count(tmp_path: Path) -> None:
    path = gz(tmp_path / "blank.jsonl.gz", b"\n", 1 << 23)  # 8M blank lines in ~8 KB
    assert gzip_line_cap(path.stat().st_size) < 1 << 23
    with pytest.raises(InputError, match="possible gzip bomb"):
        tally_files([path], Window(), jobs=1)  # blank lines are never foreign: no early stop


def test_the_stop_is_sound_just_under_the_bound(tmp_path: Path) -> None:
    good = rows(990)
    lines = [*good[:495], *([b"NOT JSON"] * 10), *good[495:]]  # 10 of 1000: exactly 1%
    path = tmp_path / "edge.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    counted = tally_files([path], Window(), jobs=1, give_up_share=MAX_FOREIGN_SHARE)
    assert (counted.foreign, counted.lines) == (10, 1000)  # read to the end, judged normally
    assert max_records(plan([path])) >= 990


def test_a_repetitive_real_gzip_log_is_read_whole(tmp_path: Path) -> None:
    # identical records compress far better than a real log: still under both gzip caps
    path = gz(tmp_path / "real.jsonl.gz", rows(1)[0] + b"\n", 1 << 18)
    counted = tally_files([path], Window(), jobs=1, give_up_share=MAX_FOREIGN_SHARE)
    assert counted.lines == counted.foreign + sum(counted.records.values()) == 1 << 18
    assert counted.foreign == 0


def test_analyze_stops_once_foreign_lines_outnumber_the_records_read(tmp_path: Path) -> None:
    """A gzip of junk lines big enough that the whole-input bound is millions of lines away:
    ``analyze`` (give-up share 50%) stops after ``PREFIX_FOREIGN_FLOOR`` of them, not at the
    end of the stream."""
    junk = b'{"schema":"partial_trust_risk/v1","status":"nope"}\n'
    path = gz(tmp_path / "junk.jsonl.gz", junk, 1 << 22)  # 4M foreign lines
    old_bound = limits.foreign_limit(limits.ANALYZE_GIVE_UP_SHARE, max_records(plan([path])))
    assert old_bound > 20 * limits.PREFIX_FOREIGN_FLOOR  # millions of lines away
    with pytest.raises(InputError, match="lines read are not valid risk records") as caught:
        tally_files([path], Window(), jobs=1, give_up_share=limits.ANALYZE_GIVE_UP_SHARE)
    foreign = int(str(caught.value).split("cannot evaluate: ")[1].split(" of")[0].replace(",", ""))
    assert foreign == limits.PREFIX_FOREIGN_FLOOR  # stopped at the floor


def test_the_prefix_stop_is_sound_when_records_keep_up(tmp_path: Path) -> None:
    """More than the floor of foreign lines, but never more than half of what was read:
    read to the end and counted."""
    floor = limits.PREFIX_FOREIGN_FLOOR
    good = rows(1)[0]
    path = tmp_path / "mixed.jsonl"
    with path.open("wb") as f:
        for _ in range(floor + 1000):
            f.write(good + b"\nNOT JSON\n")  # records first in each pair: never over 50%
    counted = tally_files([path], Window(), jobs=1, give_up_share=limits.ANALYZE_GIVE_UP_SHARE)
    assert counted.foreign == floor + 1000 and counted.lines == 2 * (floor + 1000)
