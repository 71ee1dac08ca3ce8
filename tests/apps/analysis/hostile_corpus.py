"""Hostile risk logs, generated on demand (the big ones into a temp dir, never committed).

Each maker writes its case under ``d`` and returns the ``--risk-log`` argument. ``HOSTILE``
are logs the gate must never pass (exit 3: not evidence); ``TOLERATED`` are odd but valid
logs it must still judge normally (BOM, CRLF, schema-less lines, foreign lines under the
bound, one over-long line among many records).
"""

from __future__ import annotations

import gzip
import os
import socket
from collections.abc import Callable
from pathlib import Path

from partial_trust.apps.analysis import selftest
from partial_trust.apps.analysis.limits import MAX_LINE

Maker = Callable[[Path], str]


def healthy(n: int = 200, *, latency: str = "100.0") -> list[str]:
    """n accepted records over two days, GO for stage 1 (the same shape as test_cli's)."""
    out = []
    for i in range(n):
        ts = f"2026-11-2{3 + i % 2}T09:{i % 60:02d}:00.000Z"
        line = selftest.canonical((ts, "accepted_llm", "accepted", 100.0, True, True))
        out.append(line.replace('"latency_ms":100.0', f'"latency_ms":{latency}'))
    return out


def _write(d: Path, name: str, lines: list[str] | bytes, end: bytes = b"\n") -> str:
    path = d / name
    data = lines if isinstance(lines, bytes) else b"".join(x.encode() + end for x in lines)
    path.write_bytes(data)
    return str(path)


def _retimed(stamp: str, n: int = 60) -> list[str]:
    return [x.replace(x[14:38], stamp) for x in healthy(n)]


def _mixed(d: Path, share: float, n: int = 400) -> str:
    lines = healthy(n)
    bad = max(1, round(n * share))
    for i in range(bad):
        lines.insert(i * (len(lines) // bad), "NOT JSON")
    return _write(d, f"mixed-{share}.jsonl", lines)


def _long_line(d: Path) -> str:
    path = d / "line100mb.jsonl"
    with path.open("wb") as f:
        chunk = b'{"timestamp":"' + b"A" * ((1 << 20) - 14)
        for _ in range(100):
            f.write(chunk)
            chunk = b"A" * (1 << 20)
        f.write(b"\n")
    return str(path)


def _bomb(d: Path) -> str:
    path = d / "bomb.jsonl.gz"
    with gzip.open(path, "wb", compresslevel=9) as f:
        block = b"\0" * (1 << 20)
        for _ in range(400):  # 400 MB of zeros: ~400 KB compressed
            f.write(block)
    return str(path)


def _newline_bomb(d: Path) -> str:
    path = d / "blank.jsonl.gz"
    with gzip.open(path, "wb", compresslevel=9) as f:
        block = b"\n" * (1 << 20)
        for _ in range(16):  # 16M blank lines in ~16 KB: under the byte cap, over the line cap
            f.write(block)
    return str(path)


def _fifo(d: Path) -> str:
    os.mkfifo(d / "fifo.jsonl")
    return str(d / "fifo.jsonl")


def _socket(d: Path) -> str:
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(d / "sock.jsonl"))
    s.close()  # the socket file stays: still not a regular file
    return str(d / "sock.jsonl")


def _zero(d: Path) -> str:
    (d / "zero.jsonl").symlink_to("/dev/zero")
    return str(d / "zero.jsonl")


def _glob_with_fifo(d: Path) -> str:
    _write(d, "a.jsonl", healthy())
    os.mkfifo(d / "b.jsonl")
    return str(d / "*.jsonl")


def _dir_in_glob(d: Path) -> str:
    _write(d, "a.jsonl", healthy())
    (d / "b.jsonl").mkdir()
    return str(d / "*.jsonl")


def _empty_dir(d: Path) -> str:
    (d / "logs").mkdir()
    return str(d / "logs")


HOSTILE: dict[str, Maker] = {
    "nul_ff": lambda d: _write(d, "nul.jsonl", (b"\x00\xff" * 40 + b"\n") * 100),
    "not_json": lambda d: _write(d, "nj.jsonl", ["NOT JSON"] * 100),
    "bad_timestamps": lambda d: _write(d, "ts.jsonl", _retimed("9999-99-99T99:00:00.000Z")),
    "bad_timestamps_nul_not_json": lambda d: _write(
        d, "mix.jsonl", b"\x00\xff\n" * 3 + b"NOT JSON\n" * 3 + b"\n".join(
            x.encode() for x in _retimed("9999-99-99T99:59:59.000Z", 60)) + b"\n"),
    "feb_30": lambda d: _write(d, "f30.jsonl", _retimed("2026-02-30T10:00:00.000Z")),
    "latency_1-2": lambda d: _write(d, "l12.jsonl", healthy(latency="1-2")),
    "latency_1e999": lambda d: _write(d, "linf.jsonl", healthy(latency="1e999")),
    "latency_-1e308": lambda d: _write(d, "lneg.jsonl", healthy(latency="-1e308")),
    "latency_NaN": lambda d: _write(d, "lnan.jsonl", healthy(latency="NaN")),
    "latency_huge_int": lambda d: _write(d, "lint.jsonl", healthy(60, latency="9" * 5000)),
    "deep_json": lambda d: _write(d, "deep.jsonl", ["[" * 30_000 + "]" * 30_000] * 20),
    "deeper_than_max_line": lambda d: _write(d, "deeper.jsonl", ["{" * (MAX_LINE + 5)] * 5),
    "line_100mb": _long_line,
    "gzip_bomb": _bomb,
    "gzip_newline_bomb": _newline_bomb,
    "fifo": _fifo,
    "socket": _socket,
    "dev_zero_symlink": _zero,
    "glob_matching_a_fifo": _glob_with_fifo,
    "glob_matching_a_directory": _dir_in_glob,
    "folder_without_logs": _empty_dir,
    "empty_file": lambda d: _write(d, "empty.jsonl", b""),
    "blank_lines": lambda d: _write(d, "blank.jsonl", b"\n \r\n\t\n" * 100),
    "too_few_records": lambda d: _write(d, "few.jsonl", healthy(9)),
    "foreign_2_percent": lambda d: _mixed(d, 0.02),
    "foreign_50_percent": lambda d: _mixed(d, 0.5),
    "one_foreign_too_many": lambda d: _mixed(d, 0.0126),  # 5 of 405 lines: just over 1%
    "torn_and_foreign": lambda d: _write(d, "torn.jsonl", b"".join(
        x.encode() + b"\n" for x in [*healthy(100), "NOT JSON", "NOT JSON"]) + b'{"timest'),
    "utf16": lambda d: _write(d, "u16.jsonl", "\n".join(healthy(60)).encode("utf-16")),
}  # fmt: skip

TOLERATED: dict[str, Maker] = {
    "clean": lambda d: _write(d, "clean.jsonl", healthy()),
    "bom": lambda d: _write(d, "bom.jsonl", b"\xef\xbb\xbf" + b"".join(
        x.encode() + b"\n" for x in healthy())),
    "crlf": lambda d: _write(d, "crlf.jsonl", healthy(), end=b"\r\n"),
    "schema_less": lambda d: _write(d, "nos.jsonl", [
        x.replace('"schema":"partial_trust_risk/v1",', "") for x in healthy()]),
    "foreign_under_1_percent": lambda d: _mixed(d, 0.005),
    "foreign_just_under_the_bound": lambda d: _mixed(d, 0.01),  # 4 of 404 lines
    "one_long_line_among_many": lambda d: _write(d, "long.jsonl", [
        *healthy(), "x" * (3 * MAX_LINE)]),
    "truncated_last_line": lambda d: _write(d, "trunc.jsonl", b"".join(
        x.encode() + b"\n" for x in healthy()) + healthy(1)[0][:40].encode()),
}  # fmt: skip
