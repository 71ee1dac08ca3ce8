"""One corridor's share of the risk log and of the audit log: what its gate and clock read.

Every corridor writes to the same risk log (each line has ``corridor``) and the console
writes every corridor's changes to one audit log (each line has the flag ``key``). A corridor's
gate must judge only its own records, and its stage clock only its own rate changes, or a
healthy read corridor could carry a failing write corridor through its gate.

Risk log: a line belongs to the corridor its ``corridor`` field names. A line with no
``corridor`` (the original application's, before corridors) and a line that is not JSON at all
(foreign: the analyzer counts it against the evidence) belong to the shopping corridor, the
only one that existed then; so the shopping corridor's view of a log it alone wrote is the
whole log, exactly as before. The field is found with one anchored-free byte search per line
(an unescaped ``"corridor"`` key cannot occur inside a JSON string: its quotes would be
escaped); a line that spells it otherwise (``\\u0063orridor``, twice) is parsed as JSON.

Audit log: lines about another corridor's keys are dropped and this corridor's keys are
renamed to the shopping corridor's, which is what ``partial_trust.apps.analysis.durations``
reads; lines naming no key (an ignored alert) are dropped.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from partial_trust.apps.analysis.limits import MAX_LINE
from partial_trust.apps.analysis.tally import Tally, Window
from partial_trust.corridors import CORRIDOR_ALLOWLIST, SHOPPING, flag_keys

_FIELD = re.compile(rb'"corridor"\s*:\s*(?:null|"([^"\\]*)")')
_BATCH = 4096  # lines handed to the tally at once (its fast path works per chunk)


def line_corridor(line: bytes) -> str | None:
    """The corridor a risk-log line belongs to (see the module docstring)."""
    if line.count(b'"corridor"') == 1 and b"\\u" not in line:
        m = _FIELD.search(line)
        if m is not None:
            return SHOPPING if m[1] is None else m[1].decode("utf-8", "replace")
    try:
        obj = json.loads(line)
    except (ValueError, RecursionError):
        return SHOPPING  # foreign: the shopping corridor's evidence, as before corridors
    if not isinstance(obj, dict):
        return SHOPPING
    name = obj.get("corridor")
    return SHOPPING if name is None else str(name)


def _lines(f: BinaryIO) -> Iterator[tuple[bytes, bool]]:
    """(line without newline, complete?); a line longer than ``MAX_LINE`` comes back empty
    and marked incomplete, read in bounded pieces, never held whole."""
    while chunk := f.readline(MAX_LINE + 2):
        if chunk.endswith(b"\n"):
            yield chunk[:-1], True
            continue
        if len(chunk) <= MAX_LINE:
            yield chunk, False  # the file's last, unterminated fragment
            continue
        while (more := f.readline(MAX_LINE + 2)) and not more.endswith(b"\n"):
            pass
        yield b"", False


def tally_corridor(path: Path, corridor: str, window: Window) -> Tally:
    """The analyzer's ``Tally`` over ``corridor``'s lines of the risk log at ``path``
    (blocking). An ``OSError`` propagates: the caller reports the gate as not available."""
    tally = Tally(window)
    batch: list[bytes] = []
    with open(path, "rb") as f:
        for line, complete in _lines(f):
            if len(line) > MAX_LINE or (not complete and not line):
                if corridor == SHOPPING:  # overlong: foreign, the shopping corridor's view
                    tally.add_overlong()
            elif complete and line_corridor(line) == corridor:
                batch.append(line + b"\n")
                if len(batch) >= _BATCH:
                    tally.add_chunk(b"".join(batch))
                    batch.clear()
            elif not complete and line_corridor(line) == corridor:
                tally.add_chunk(b"".join(batch))
                batch.clear()
                tally.add_tail(line)  # a torn last line, or a record missing its newline
    if batch:
        tally.add_chunk(b"".join(batch))
    return tally


def audit_for(records: Iterable[dict[str, Any]], corridor: str) -> list[dict[str, Any]]:
    """``corridor``'s audit lines with its keys renamed to the shopping corridor's."""
    own = dict(zip(flag_keys(corridor).all(), flag_keys(SHOPPING).all(), strict=True))
    others = {k for name in CORRIDOR_ALLOWLIST if name != corridor for k in flag_keys(name).all()}
    out = []
    for r in records:
        key = r.get("key")
        if not isinstance(key, str) or key in others:
            continue
        out.append({**r, "key": own[key]} if key in own else r)
    return out
