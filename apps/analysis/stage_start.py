"""When the latest unbroken run of risk records at one sample rate started (and ended).

The fallback clock of ``durations`` when the flag audit log has no answer. One streaming pass
over the same files the gate reads (plain, rotated, gzip; the gzip-bomb bound of ``reader``),
in 1 MiB blocks: a C regex pulls ``(timestamp, sample_rate)`` out of every line, and a block
whose lines all carry the rate already being followed costs no per-line Python, so the pass
stays close to disk speed. Only the first and last timestamp of each same-rate segment is
parsed. Lines that do not start with ``{"timestamp"`` (foreign lines, another key order) and
records whose rate is ``null`` are ignored: they say nothing about the rate in force.

Files are segmented independently and the segments merged in time order, so rotated files
may be given in any order.
"""

from __future__ import annotations

import gzip
import re
import zlib
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from operator import itemgetter
from pathlib import Path
from typing import BinaryIO, Final

from partial_trust.apps.analysis.durations import Run, same_rate
from partial_trust.apps.analysis.limits import MAX_LINE, InputError
from partial_trust.apps.analysis.reader import BLOCK, gzip_cap
from partial_trust.apps.analysis.source import open_regular
from partial_trust.apps.analysis.tally import parse_time

_PAIR: Final = re.compile(
    rb'^\{\s*"timestamp"\s*:\s*"([^"\n]{1,64})"[^\n]*?"sample_rate"\s*:\s*(null|[-+0-9.eE]{1,32})',
    re.MULTILINE,
)
#: (timestamp, mode); the mode is b"" when the line has none (canary)
_MODE: Final = re.compile(
    rb'^\{\s*"timestamp"\s*:\s*"([^"\n]{1,64})"[^\n]*?(?:"mode"\s*:\s*"([a-z]{1,16})"|$)',
    re.MULTILINE,
)
_RATE: Final = itemgetter(1)

Segment = list[bytes]  # [rate token, first timestamp, last timestamp]


def _blocks(f: BinaryIO | gzip.GzipFile, cap: int | None, name: str) -> Iterator[bytes]:
    """Line-aligned blocks; an overlong line is dropped as it streams past."""
    rest = b""
    read = 0
    while chunk := f.read(BLOCK):
        read += len(chunk)
        if cap is not None and read > cap:
            raise InputError(f"risk log {name!r} inflates past {cap:,} bytes: refused")
        data = rest + chunk
        cut = data.rfind(b"\n") + 1
        if cut:
            yield data[:cut]
            rest = data[cut:]
        else:
            rest = data
        if len(rest) > MAX_LINE:
            rest = b""  # an overlong line (or the tail of one) is never a record
    if rest:
        yield rest


def _segments(path: Path, pattern: re.Pattern[bytes] = _PAIR) -> list[Segment]:
    f, size = open_regular(path)
    segments: list[Segment] = []
    try:
        with f:
            gz = f.read(2) == b"\x1f\x8b"
            f.seek(0)
            stream: BinaryIO | gzip.GzipFile = gzip.GzipFile(fileobj=f, mode="rb") if gz else f
            for block in _blocks(stream, gzip_cap(size) if gz else None, str(path)):
                pairs = pattern.findall(block)
                if not pairs:
                    continue
                cur = segments[-1] if segments else None
                if cur is not None and set(map(_RATE, pairs)) == {cur[0]}:
                    cur[2] = pairs[-1][0]  # the common case: the rate in force goes on
                    continue
                for ts, rate in pairs:
                    if rate == b"null":
                        continue
                    if cur is None or rate != cur[0]:
                        cur = [rate, ts, ts]
                        segments.append(cur)
                    else:
                        cur[2] = ts
    except (OSError, EOFError, zlib.error) as exc:
        raise InputError(f"cannot read risk log {str(path)!r}: {exc}") from exc
    return segments


def risk_log_run(paths: Sequence[Path], rate: float, until: datetime) -> Run | None:
    """The latest unbroken run of records at ``rate`` that started before ``until``."""
    return _latest_run(paths, _PAIR, lambda token: same_rate(float(token), rate), until)


def risk_log_mode_run(paths: Sequence[Path], mode: str, until: datetime) -> Run | None:
    """The latest unbroken run of records in ``mode`` that started before ``until`` (a
    line without ``mode`` is canary: it ends a shadow run)."""
    wanted = mode.encode()
    return _latest_run(paths, _MODE, lambda token: (token or b"canary") == wanted, until)


def _latest_run(
    paths: Sequence[Path],
    pattern: re.Pattern[bytes],
    wanted: Callable[[bytes], bool],
    until: datetime,
) -> Run | None:
    timed: list[tuple[datetime, datetime, bool]] = []
    for path in paths:
        for token, first, last in _segments(path, pattern):
            try:
                value = wanted(token)
            except ValueError:
                continue
            start = parse_time(first.decode("utf-8", "replace"))
            end = parse_time(last.decode("utf-8", "replace"))
            if start is not None and end is not None and start < until:
                timed.append((start, end, value))
    timed.sort(key=itemgetter(0))
    run: Run | None = None
    for start, _end, value in timed:
        if value:
            if run is None or run[1] is not None:
                run = (start, None)
        elif run is not None and run[1] is None:
            run = (run[0], start)  # records at another rate: the run ended here
    return run
