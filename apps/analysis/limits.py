"""Every bound the analyzer enforces on its input, in one place, with the reason for each.

A risk log is evidence for a rollout decision, and hostile or broken input (a FIFO, a device,
a gzip bomb, one 100 MB line, garbage bytes) must end in a clear "cannot evaluate", never in
a verdict, a hang or a memory blow-up. These numbers are generous for real logs (the writer's
lines are ~400 bytes, its numbers are rounded, a rollout spans days) and small enough that any
input is read in bounded time and memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

#: Longest line judged at all. The writer's lines are ~400 bytes; a longer line is counted
#: as foreign and skipped in bounded chunks, never held whole.
MAX_LINE: Final = 64 << 10

#: A ``.gz`` input may decompress to at most this many bytes in total ...
MAX_GZIP_BYTES: Final = 16 << 30
#: ... and to at most ``GZIP_RATIO`` times its compressed size plus ``GZIP_ALLOWANCE``.
#: JSONL risk logs compress ~10-25x; a gzip bomb compresses ~1000x. The allowance lets small
#: but legitimate files (highly repetitive test logs) through.
GZIP_RATIO: Final = 200
GZIP_ALLOWANCE: Final = 64 << 20
#: ... and to at most ``GZIP_LINES_PER_BYTE`` lines per compressed byte plus
#: ``GZIP_LINE_ALLOWANCE``. The byte cap alone lets a small file of newlines or short junk
#: lines (~1000x) inflate to 10^8 lines, each a step in Python: minutes for a megabyte. A
#: real log's ~400-byte lines are ~0.05 lines per compressed byte, at most 0.5 at ``GZIP_RATIO``.
GZIP_LINES_PER_BYTE: Final = 2
GZIP_LINE_ALLOWANCE: Final = 1 << 20

#: No valid risk record (the original application's schema-less lines included) is shorter
#: than this many bytes (without its newline): an upper bound of how many records an input of
#: N bytes can hold, for ``foreign_limit``.
MIN_RECORD_BYTES: Final = 48

#: ``latency_ms`` and ``baseline_latency_ms`` must be finite, >= 0 and below one hour: every
#: corridor call is bounded by a timeout far below that, so a larger value is not a latency.
LATENCY_CAP_MS: Final = 3_600_000.0
#: ``items_baseline`` / ``items_llm``: a shopping command has a handful of items.
MAX_ITEMS: Final = 999
#: Identifiers (corridor, command_key, profile_id), as the writer's own bound.
MAX_IDENT: Final = 128

#: Distinct (status, latency) values kept exactly. The writer rounds to 0.01 ms, so a real log
#: has far fewer; past this, latencies fall into log-spaced buckets 0.1% wide (the p95 is then
#: exact to within 0.1% and the report says ``latency_p95_exact: false``).
MAX_LATENCY_KEYS: Final = 200_000
LATENCY_BUCKET_RATIO: Final = 1.001

#: Distinct (UTC hour, status, reason, intent, entity) groups. ~15 per hour is typical, so
#: this is years of traffic; more means timestamps spread at random (garbage), or a span too
#: long for one decision: the input is refused (narrow it with --since/--until).
MAX_RECORD_KEYS: Final = 100_000

#: The gate cannot evaluate a log in which more than this share of the non-blank lines are
#: not valid risk records (foreign or torn): the log is not what it claims to be.
MAX_FOREIGN_SHARE: Final = 0.01
#: ... nor one with fewer valid records than this in the window (wrong file or window).
#: Between this and a stage's sampled minimum the verdict is NO-GO: keep collecting.
MIN_RECORDS: Final = 10
#: ``analyze`` stops reading once more than this share of the non-blank lines are sure to be
#: foreign (a report on such input says only that it is not a risk log); ``gate`` stops at
#: ``MAX_FOREIGN_SHARE``. Foreign lines are the slow ones (each is validated and refused).
ANALYZE_GIVE_UP_SHARE: Final = 0.5


#: A reader also stops once at least this many foreign lines are more than its share of the
#: lines it has read: a stretch of 100,000 bad lines that outnumber the records around them
#: is not a risk log, and reading on to the end of a crafted gzip of short junk lines (a few
#: MB that inflate to millions of lines, each validated and refused) would take minutes.
PREFIX_FOREIGN_FLOOR: Final = 100_000


@dataclass(frozen=True, slots=True)
class GiveUp:
    """When a reader stops: past ``limit`` foreign lines in all (``foreign_limit``), or once
    ``PREFIX_FOREIGN_FLOOR`` or more foreign lines are over ``share`` of the lines read."""

    limit: int
    share: float

    @classmethod
    def at(cls, share: float, max_records: int) -> GiveUp:
        return cls(foreign_limit(share, max_records), share)


def foreign_limit(share: float, max_records: int) -> int:
    """The most foreign lines that still allow a foreign share of at most ``share`` in input
    holding at most ``max_records`` records: past it the share is over, whatever follows.

    With F foreign lines and R <= ``max_records`` records, the share F / (F + R) exceeds
    ``share`` once F * (1 - share) > share * R; counted in one task, F is a lower bound of
    the whole input's, so every worker may stop on its own.
    """
    return int(share * max_records / (1.0 - share)) + 1


class InputError(Exception):
    """An input that cannot be analyzed; the CLI prints it on one line (analyze 2, gate 3)."""
