"""Stream risk-log files (plain, rotated, gzip; paths, globs or folders) into one ``Tally``.

Files are read in fixed-size blocks, never whole, so memory stays flat whatever the input
size. Large plain files are cut into byte ranges on line boundaries that worker processes
count independently (counts merge exactly), because one CPython core tops out well below the
1M lines/s budget. Gzip streams cannot be split, so each is one task. Every input is opened
before any counting starts, so a missing, unreadable or non-regular input (FIFO, device,
directory, socket) fails fast with its name (``source.py``).

Bounds (``limits.py``): a line longer than ``MAX_LINE`` is skipped as it streams past, never
held; a gzip stream may inflate to ``GZIP_RATIO`` times its size plus ``GZIP_ALLOWANCE`` (and
never past ``MAX_GZIP_BYTES``), so a gzip bomb is refused after a bounded read.
"""

from __future__ import annotations

import gzip
import os
import zlib
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import BinaryIO, Final

from partial_trust.apps.analysis.limits import (
    GZIP_ALLOWANCE,
    GZIP_LINE_ALLOWANCE,
    GZIP_LINES_PER_BYTE,
    GZIP_RATIO,
    MAX_GZIP_BYTES,
    MAX_LINE,
    MIN_RECORD_BYTES,
    GiveUp,
    InputError,
)
from partial_trust.apps.analysis.source import expand, open_regular
from partial_trust.apps.analysis.tally import Tally, Window

__all__ = ["InputError", "Task", "count_task", "expand", "plan", "tally_files"]

BLOCK: Final = 1 << 20  # bytes read at a time: big enough for C-speed scans, small for memory
TASK: Final = 64 << 20  # bytes per worker task: progress granularity and load balance
PARALLEL_MIN: Final = 96 << 20  # below this, worker start-up costs more than it saves
_GZIP_MAGIC: Final = b"\x1f\x8b"


@dataclass(frozen=True, slots=True)
class Task:
    path: str
    start: int
    end: int  # exclusive; lines *starting* in [start, end) belong to this task (gzip: size)
    gz: bool


def plan(paths: Sequence[Path], task_size: int = TASK) -> list[Task]:
    """Cut plain files into ~``task_size`` byte ranges; each gzip file is one task."""
    tasks: list[Task] = []
    for path in paths:
        f, size = open_regular(path)
        with f:
            gz = f.read(2) == _GZIP_MAGIC
        if gz or size <= task_size:
            tasks.append(Task(str(path), 0, size, gz))
            continue
        tasks += [
            Task(str(path), s, min(s + task_size, size), False) for s in range(0, size, task_size)
        ]
    return tasks


def gzip_cap(compressed: int) -> int:
    """Most bytes a gzip file of ``compressed`` bytes may inflate to (see ``limits.py``)."""
    return min(MAX_GZIP_BYTES, GZIP_ALLOWANCE + GZIP_RATIO * compressed)


def gzip_line_cap(compressed: int) -> int:
    """Most lines a gzip file of ``compressed`` bytes may inflate to (see ``limits.py``)."""
    return GZIP_LINE_ALLOWANCE + GZIP_LINES_PER_BYTE * compressed


def max_records(tasks: Sequence[Task]) -> int:
    """The most records ``tasks`` can hold: every record is ``MIN_RECORD_BYTES`` long or more,
    and a gzip stream inflates to no more than its caps."""
    most = 0
    for task in tasks:
        if task.gz:
            most += min(gzip_cap(task.end) // (MIN_RECORD_BYTES + 1), gzip_line_cap(task.end))
        else:
            most += (task.end - task.start) // (MIN_RECORD_BYTES + 1) + 1
    return most


def count_task(task: Task, window: Window, give_up: GiveUp | None = None) -> Tally:
    """Count the lines that start inside ``task``'s range (the whole stream for gzip);
    ``give_up``: when to stop with ``InputError`` for too many foreign lines."""
    tally = Tally(window, give_up=give_up)
    f, size = open_regular(task.path)
    try:
        with f:
            if task.gz:
                cap = gzip_cap(max(size, task.end))
                lines = gzip_line_cap(max(size, task.end))
                with gzip.GzipFile(fileobj=f, mode="rb") as gz:
                    if _count_stream(gz, 0, None, tally, cap, lines):
                        raise InputError(
                            f"risk log {task.path!r} inflates to more than {cap:,} bytes "
                            f"({GZIP_RATIO}x its size + {GZIP_ALLOWANCE >> 20} MiB) or "
                            f"{lines:,} lines ({GZIP_LINES_PER_BYTE} per byte + "
                            f"{GZIP_LINE_ALLOWANCE:,}): refused as a possible gzip bomb"
                        )
            else:
                _count_stream(f, task.start, task.end, tally)
    except (OSError, EOFError, zlib.error) as exc:  # EOFError: a gzip stream cut short
        raise InputError(f"cannot read risk log {task.path!r}: {exc}") from exc
    return tally


def _skip_line(f: BinaryIO | gzip.GzipFile) -> int:
    """Consume up to and including the next newline, in bounded reads; the bytes consumed."""
    used = 0
    while block := f.read(BLOCK):
        at = block.find(b"\n")
        if at >= 0:
            f.seek(at + 1 - len(block), os.SEEK_CUR)
            return used + at + 1
        used += len(block)
    return used


def _count_stream(
    f: BinaryIO | gzip.GzipFile,
    start: int,
    end: int | None,
    tally: Tally,
    cap: int | None = None,
    line_cap: int | None = None,
) -> bool:
    """Lines starting in [start, end) of ``f``; True if ``cap`` bytes or ``line_cap`` lines
    were read first.

    Each block is scanned in place, not copied. A line longer than ``MAX_LINE`` is dropped as
    it streams past (``long``), so neither memory nor time depends on line length.
    """
    offset = start  # stream offset of the next block's first byte
    if start > 0:
        f.seek(start - 1)
        offset = start - 1 + _skip_line(f)  # finish the line that began in the previous range
    line_start = offset  # where the pending line (``rest``) begins
    rest, long = b"", False
    limit = end if end is not None else 1 << 62
    while line_start < limit:
        if cap is not None and offset > cap:
            return True
        if line_cap is not None and tally.lines > line_cap:
            return True
        block = f.read(BLOCK)
        if not block:
            if long:
                tally.add_overlong(final=True)
            else:
                tally.add_tail(rest)  # starts before ``limit``: the loop condition says so
            return False
        first = block.find(b"\n") + 1
        if not first:
            offset += len(block)
            long = long or len(rest) + len(block) > MAX_LINE
            rest = b"" if long else rest + block  # bounded: at most MAX_LINE + BLOCK
            continue
        if long or len(rest) + first - 1 > MAX_LINE:
            tally.add_overlong()
        else:
            tally.add_chunk(rest + block[:first])  # the line that straddled two blocks
        long = False
        cut = block.rfind(b"\n") + 1
        if limit - offset < cut:  # the range ends inside this block
            if limit - offset > first:
                tally.add_chunk(block, first, block.find(b"\n", limit - offset - 1) + 1)
            return False
        tally.add_chunk(block, first, cut)
        rest = block[cut:]
        offset += len(block)
        line_start = offset - len(rest)
    return False


def _count_one(args: tuple[Task, Window, GiveUp | None]) -> Tally:
    return count_task(*args)


def tally_files(
    paths: Sequence[Path],
    window: Window,
    *,
    jobs: int = 0,
    progress: Callable[[int, int], None] | None = None,
    give_up_share: float | None = None,
) -> Tally:
    """Count every line of ``paths``. ``jobs`` 0 = automatic; ``progress(done, total)`` bytes;
    ``give_up_share``: stop (``InputError``) once the foreign share must end above it."""
    tasks = plan(paths)
    give_up = None if give_up_share is None else GiveUp.at(give_up_share, max_records(tasks))
    total = sum(t.end - t.start for t in tasks)
    if jobs <= 0:
        jobs = min(os.cpu_count() or 1, 8) if total >= PARALLEL_MIN else 1
    jobs = min(jobs, len(tasks)) or 1
    tally, done = Tally(), 0
    if jobs == 1:
        results: Iterable[Tally] = (count_task(t, window, give_up) for t in tasks)
    else:
        # spawn, not fork: forking a process that may hold threads (OTel, flag watchers) is unsafe.
        pool = ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn"))
        results = pool.map(_count_one, [(t, window, give_up) for t in tasks])
    try:
        for task, part in zip(tasks, results, strict=True):
            tally.merge(part)
            done += task.end - task.start
            if progress is not None:
                progress(done, total)
    finally:
        if jobs > 1:
            pool.shutdown(cancel_futures=True)
    return tally
