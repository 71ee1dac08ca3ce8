"""Bad request bodies, in process: the baseline's own answer, untouched, with the corridor skipped.

Every body in ``BAD_BODIES`` (``tests.support.bad_input``), whole or in chunks, gets the
baseline's own 4xx, never a 5xx, byte for byte the same with the corridor on as off, and no
LLM call; a command padded past the corridor's size cap and a valid command sent a byte per
chunk still reach the baseline whole.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from partial_trust.middleware.corridor import MAX_COMMAND_BYTES
from tests.corridor_harness import completion, good_candidate, harness
from tests.support.bad_input import (
    BAD_BODIES,
    VALID,
    assert_skipped_invalid,
    llm_calls,
    off_then_on,
    same_response,
)

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("name", list(BAD_BODIES))
async def test_bad_body_gets_the_baselines_own_4xx(tmp_path: Path, llm: Any, name: str) -> None:
    body = BAD_BODIES[name]
    async with harness(tmp_path) as h:
        off, on = await off_then_on(h, body)
        assert 400 <= off.status_code < 500, (off.status_code, off.content[:200])
        same_response(on, off)
        assert off.json()["error"] == "invalid_command"
        assert_skipped_invalid(h)
        assert llm_calls(llm) == 0


async def test_whitespace_padded_command_over_the_corridor_cap(tmp_path: Path, llm: Any) -> None:
    """A valid command padded past the corridor's size cap: the baseline still answers it
    (200), the corridor stays out of it (no LLM call) and passes the bytes through."""
    body = VALID + b" " * (MAX_COMMAND_BYTES + 1)
    async with harness(tmp_path) as h:
        off, on = await off_then_on(h, body)
        assert off.status_code == 200
        same_response(on, off)
        records = h.lines()
        assert len(records) == 1 and records[0]["status"] == "skipped"
        assert llm_calls(llm) == 0


def _chunks(body: bytes, size: int) -> Any:
    async def gen() -> AsyncIterator[bytes]:
        for i in range(0, len(body), size):
            yield body[i : i + size]

    return gen


@pytest.mark.parametrize(
    ("name", "size"),
    [
        ("unterminated-object", 1),
        ("nested-100k-arrays", 4096),
        ("oversized-1mb-text", 65_536),
        ("invalid-utf8-in-text", 7),
        ("empty-object", 1),
    ],
)
async def test_chunked_bad_body(tmp_path: Path, llm: Any, name: str, size: int) -> None:
    async with harness(tmp_path) as h:
        off, on = await off_then_on(h, _chunks(BAD_BODIES[name], size))
        assert 400 <= off.status_code < 500
        same_response(on, off)
        assert_skipped_invalid(h)
        assert llm_calls(llm) == 0


async def test_chunked_valid_command_is_read_whole(tmp_path: Path, llm: Any) -> None:
    """One byte per chunk: the corridor sees the whole command and the baseline still gets it."""
    llm.post("/chat/completions").mock(return_value=completion(good_candidate(confidence=0.1)))
    async with harness(tmp_path) as h:
        off, on = await off_then_on(h, _chunks(VALID, 1))
        assert off.status_code == 200
        same_response(on, off)
        assert [(r["status"], r["reason_code"]) for r in h.lines()] == [
            ("fallback_deterministic", "low_confidence")
        ]
        assert llm_calls(llm) == 1
