"""The framing rule on its own, and the stream's scan of a raw answer head in any split."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from partial_trust.middleware.llm_framing import (
    AmbiguousFraming,
    Upstream,
    ambiguous_framing,
    head_fields,
)
from partial_trust.middleware.llm_transport import AsyncioStream


@pytest.mark.parametrize(
    ("fields", "ambiguous"),
    [
        ([(b"Content-Length", b"12")], False),
        ([(b"Transfer-Encoding", b"chunked")], False),
        ([(b"transfer-encoding", b" Chunked ")], False),
        ([], False),  # read to close: h11 never keeps such a connection
        ([(b"Content-Length", b"12"), (b"content-length", b"12")], True),
        ([(b"Content-Length", b"12, 12")], True),
        ([(b"Content-Length", b"-1")], True),
        ([(b"Content-Length", b"0x10")], True),
        ([(b"Content-Length", b"12"), (b"Transfer-Encoding", b"chunked")], True),
        ([(b"Transfer-Encoding", b"gzip, chunked")], True),
        ([(b"Transfer-Encoding", b"chunked"), (b"Transfer-Encoding", b"chunked")], True),
        ([(b"Transfer-Encoding", b"identity")], True),
        ([(b"Content-Length ", b"12"), (b"Content-Length", b"12")], True),
    ],
)
def test_ambiguous_framing(fields: list[tuple[bytes, bytes]], ambiguous: bool) -> None:
    assert ambiguous_framing(fields) is ambiguous


def test_head_fields_keeps_duplicates_as_sent() -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nX: y\r\ncontent-length: 3"
    assert head_fields(head) == [
        (b"Content-Length", b" 3"),
        (b"X", b" y"),
        (b"content-length", b" 3"),
    ]


class _Transport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.sent = b""

    def write(self, data: Any) -> None:
        self.sent += bytes(data)

    def is_closing(self) -> bool:
        return False

    def is_reading(self) -> bool:
        return True


async def _answered(*pieces: bytes) -> tuple[AsyncioStream, Upstream]:
    upstream = Upstream()
    stream = AsyncioStream(upstream)
    stream.connection_made(_Transport())
    await stream.write(b"POST / HTTP/1.1\r\n\r\n")
    await stream._flush()
    for piece in pieces:
        stream.data_received(piece)
    return stream, upstream


DOUBLED = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n{}"


@pytest.mark.anyio
@pytest.mark.parametrize("size", [1, 2, 7, len(DOUBLED)])
async def test_a_doubled_length_is_seen_in_any_split(size: int) -> None:
    pieces = [DOUBLED[i : i + size] for i in range(0, len(DOUBLED), size)]
    stream, _ = await _answered(*pieces)
    with pytest.raises(AmbiguousFraming):
        await stream.read(65536)


@pytest.mark.anyio
async def test_an_interim_answer_is_skipped_and_the_final_head_checked() -> None:
    good = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"
    stream, _ = await _answered(good)
    assert await stream.read(65536) == good
    bad = b"HTTP/1.1 103 Early Hints\r\n\r\n" + DOUBLED
    stream, _ = await _answered(bad)
    with pytest.raises(AmbiguousFraming):
        await stream.read(65536)


@pytest.mark.anyio
async def test_a_head_without_end_is_refused_past_the_limit() -> None:
    stream, _ = await _answered(b"HTTP/1.1 200 OK\r\nX: " + b"a" * 70_000)
    with pytest.raises(AmbiguousFraming):
        await stream.read(65536)


@pytest.mark.anyio
async def test_bytes_after_the_answer_are_stray_and_noted_on_the_upstream() -> None:
    stream, upstream = await _answered(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
    await stream.read(65536)
    assert stream.settle() and upstream.stray_bytes_at == -float("inf")
    stream.data_received(b"HTTP/1.1 200 OK\r\n")  # nobody asked
    assert upstream.stray_bytes_at > 0
    assert stream.get_extra_info("is_readable")
    assert not stream.settle()
