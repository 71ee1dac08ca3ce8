"""Stream risk-log files (plain, rotated, gzip; paths, globs or folders) into one ``Tally``.

Files are read in fixed-size blocks, never whole, so memory stays flat whatever the input
size. Large plain files are cut into byte ranges on line boundaries that worker processes
count independently (counts merge exactly), because one CPython core tops out well below the
1M lines/s budget. Gzip streams cannot be split, so each is one task. Every input is opened
before any counting starts, so a missing or unreadable file fails fast with its name.
"""

from __future__ import annotations

import glob
import gzip
import os
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import BinaryIO, Final

from middleware.analysis.tally import Tally, Window

BLOCK: Final = 1 << 20  # bytes read at a time: big enough for C-speed scans, small for memory
TASK: Final = 64 << 20  # bytes per worker task: progress granularity and load balance
PARALLEL_MIN: Final = 96 << 20  # below this, worker start-up costs more than it saves
_GZIP_MAGIC: Final = b"\x1f\x8b"


class InputError(Exception):
    """A risk-log argument that cannot be read; the CLI reports it and exits 2."""


@dataclass(frozen=True, slots=True)
class Task:
    path: str
    start: int
    end: int  # exclusive; lines *starting* in [start, end) belong to this task
    gz: bool


def expand(patterns: Iterable[str]) -> list[Path]:
    """Paths from files, globs and folders (a folder means its ``*.jsonl*`` files), in order."""
    out: list[Path] = []
    for pattern in patterns:
        if glob.has_magic(pattern):
            found = sorted(Path(p) for p in glob.glob(pattern) if Path(p).is_file())
            if not found:
                raise InputError(f"no risk log matches {pattern!r}")
        elif Path(pattern).is_dir():
            found = sorted(p for p in Path(pattern).glob("*.jsonl*") if p.is_file())
            if not found:
                raise InputError(f"no risk log (*.jsonl*) in folder {pattern!r}")
        else:
            found = [Path(pattern)]
        out += [p for p in found if p not in out]
    for path in out:
        _check_readable(path)
    return out


def _check_readable(path: Path) -> None:
    try:
        with path.open("rb") as f:
            f.read(1)
    except OSError as exc:
        raise InputError(f"cannot read risk log {str(path)!r}: {exc.strerror or exc}") from exc


def plan(paths: Sequence[Path], task_size: int = TASK) -> list[Task]:
    """Cut plain files into ~``task_size`` byte ranges; each gzip file is one task."""
    tasks: list[Task] = []
    for path in paths:
        size = path.stat().st_size
        with path.open("rb") as f:
            gz = f.read(2) == _GZIP_MAGIC
        if gz or size <= task_size:
            tasks.append(Task(str(path), 0, size, gz))
            continue
        tasks += [
            Task(str(path), s, min(s + task_size, size), False) for s in range(0, size, task_size)
        ]
    return tasks


def count_task(task: Task, window: Window) -> Tally:
    """Count the lines that start inside ``task``'s range (the whole stream for gzip)."""
    tally = Tally(window)
    try:
        if task.gz:
            with gzip.open(task.path, "rb") as f:
                _count_stream(f, 0, None, tally)
        else:
            with open(task.path, "rb") as f:
                _count_stream(f, task.start, task.end, tally)
    except (OSError, EOFError) as exc:  # EOFError: a gzip stream cut short
        raise InputError(f"cannot read risk log {task.path!r}: {exc}") from exc
    return tally


def _count_stream(f: BinaryIO | gzip.GzipFile, start: int, end: int | None, tally: Tally) -> None:
    """Lines starting in [start, end) of ``f``; each block is scanned in place, not copied."""
    pos = 0  # file offset of the first byte not yet consumed (the start of ``rest``)
    if start > 0:
        f.seek(start - 1)
        pos = start - 1 + len(f.readline())  # finish the line that began in the previous range
    rest = b""
    limit = end if end is not None else 1 << 62
    while pos < limit:
        block = f.read(BLOCK)
        if not block:
            tally.add_tail(rest)  # starts before ``limit``: the loop condition guarantees it
            return
        first = block.find(b"\n") + 1
        if not first:
            rest += block
            continue
        tally.add_chunk(rest + block[:first])  # the line that straddled two blocks
        base = pos + len(rest)  # file offset of block[0]
        cut = block.rfind(b"\n") + 1
        if limit - base < cut:  # the range ends inside this block
            if limit - base > first:
                tally.add_chunk(block, first, block.find(b"\n", limit - base - 1) + 1)
            return
        tally.add_chunk(block, first, cut)
        rest, pos = block[cut:], base + cut


def _count_one(args: tuple[Task, Window]) -> Tally:
    return count_task(*args)


def tally_files(
    paths: Sequence[Path],
    window: Window,
    *,
    jobs: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> Tally:
    """Count every line of ``paths``. ``jobs`` 0 = automatic; ``progress(done, total)`` bytes."""
    tasks = plan(paths)
    total = sum(t.end - t.start for t in tasks)
    if jobs <= 0:
        jobs = min(os.cpu_count() or 1, 8) if total >= PARALLEL_MIN else 1
    jobs = min(jobs, len(tasks)) or 1
    tally, done = Tally(), 0
    if jobs == 1:
        results: Iterable[Tally] = (count_task(t, window) for t in tasks)
    else:
        # spawn, not fork: forking a process that may hold threads (OTel, flag watchers) is unsafe.
        pool = ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn"))
        results = pool.map(_count_one, [(t, window) for t in tasks])
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
