"""``AnswerFraming`` and the stream hand the HTTP parser one answer and not a byte more, in
any split of the bytes as they arrive: the bytes after it stay with the stream, which then
refuses the connection (``settle``) and notes the upstream (quarantine). This replaced a look
into httpcore's private h11 state for the parser's leftover bytes."""

from __future__ import annotations

import asyncio
from typing import Any

import httpcore
import pytest

from partial_trust.middleware.llm_framing import AnswerFraming, Upstream
from partial_trust.middleware.llm_transport import AsyncioStream

LENGTH = b'HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n{"a":1}'
CHUNKED = (
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    b'3;ext=1\r\n{"a\r\n4\r\n":1}\r\n0\r\nX-Trailer: t\r\n\r\n'
)
EMPTY = b"HTTP/1.1 204 No Content\r\n\r\n"
INTERIM = b"HTTP/1.1 100 Continue\r\n\r\n" + LENGTH
ANSWERS = {"length": LENGTH, "chunked": CHUNKED, "no content": EMPTY, "interim": INTERIM}
EXTRA = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"


class _Transport(asyncio.Transport):
    def write(self, data: Any) -> None:
        return None

    def is_closing(self) -> bool:
        return False

    def is_reading(self) -> bool:
        return True


async def _exchange(data: bytes, size: int) -> tuple[bytes, bool, Upstream]:
    """What the parser is handed of ``data`` arriving in pieces of ``size`` bytes, whether
    the connection is then clean, and the upstream's record."""
    upstream = Upstream()
    stream = AsyncioStream(upstream)
    stream.connection_made(_Transport())
    await stream.write(b"POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
    await stream._flush()  # the request goes out: an answer is now awaited
    for i in range(0, len(data), size):
        stream.data_received(data[i : i + size])
    handed = b""
    while len(handed) < len(data):
        try:
            chunk = await asyncio.wait_for(stream.read(65536), 0.05)
        except (TimeoutError, httpcore.ReadError):  # the parser never reads past its answer
            break
        if not chunk:
            break
        handed += chunk
    return handed, stream.settle(), upstream


@pytest.mark.anyio
@pytest.mark.parametrize("name", ANSWERS)
@pytest.mark.parametrize("size", [1, 2, 3, 5, 64])
async def test_the_parser_gets_exactly_one_answer_and_a_clean_connection(
    name: str, size: int
) -> None:
    answer = ANSWERS[name]
    handed, clean, upstream = await _exchange(answer, size)
    assert handed == answer
    assert clean and upstream.stray_bytes_at == -float("inf")


@pytest.mark.anyio
@pytest.mark.parametrize("name", ANSWERS)
@pytest.mark.parametrize("size", [1, 3, 7, 4096])
async def test_bytes_after_the_answer_never_reach_the_parser(name: str, size: int) -> None:
    answer = ANSWERS[name]
    handed, clean, upstream = await _exchange(answer + EXTRA, size)
    assert handed == answer, "the parser was handed bytes past the answer"
    assert not clean, "a connection that carried extra bytes must not be reused"
    assert upstream.stray_bytes_at > -float("inf"), "the upstream was not noted"


@pytest.mark.parametrize(
    "head",
    [
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",  # not a chunk size
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + b"1" * 5000,  # endless
        b"HTTP/1.1 200 OK\r\n\r\nuntil close",  # no length: read to the close
    ],
)
def test_framing_it_cannot_follow_runs_to_the_close(head: bytes) -> None:
    framing = AnswerFraming()
    assert framing.feed(head) == len(head)
    assert framing.feed(EXTRA) == len(EXTRA)
    assert not framing.done


def test_ambiguous_framing_is_flagged() -> None:
    framing = AnswerFraming()
    framing.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n")
    assert framing.ambiguous and not framing.done
