"""Bytes through the LLM client's transport (``llm_transport``) in the pieces a real socket
makes of them, against real loopback servers (``tests.support.loopback``): an answer in a
thousand writes or in chunks is read whole, a big request to a slow reader waits for the
socket instead of buffering, reading pauses while the client's buffer is full, and a request
leaves in one write.

Flow control both ways is what keeps a slow or runaway peer from filling the app's memory.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from typing import Any

import pytest

from partial_trust.middleware.llm_client import LLMClient
from partial_trust.middleware.llm_transport import AsyncioStream
from tests.support.loopback import BODY, CANDIDATE, REQUEST, Conn, Loopback, completion_body

# --- bodies in many pieces, back-pressure --------------------------------------------------------


@pytest.mark.anyio
async def test_large_response_in_1k_writes_is_read_completely(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    big = {"intent": "x", "pad": "a" * 200_000}
    body = completion_body(big)
    assert 200_000 < len(body) < 256_000  # under the client's default max_response_bytes
    received = 0
    original = AsyncioStream.data_received

    def counting(self: AsyncioStream, data: bytes) -> None:
        nonlocal received
        received += 1
        original(self, data)

    monkeypatch.setattr(AsyncioStream, "data_received", counting)

    async def dribble(conn: Conn, request: bytes) -> bool:
        head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        conn.writer.write(head)
        for i in range(0, len(body), 1024):
            conn.writer.write(body[i : i + 1024])
            await conn.writer.drain()
            await asyncio.sleep(0)
        return True

    async with Loopback(dribble) as server, LLMClient(server.url) as client:
        assert await client.complete(REQUEST, timeout_s=5.0) == big
        assert received >= 50, f"the body came in only {received} reads: not a chunking test"
        assert await client.complete(REQUEST, timeout_s=5.0) == big
    assert len(server.conns) == 1


@pytest.mark.anyio
async def test_chunked_responses_are_read_and_keep_the_connection() -> None:
    async def chunked(conn: Conn, request: bytes) -> bool:
        conn.writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for i in range(0, len(BODY), 7):
            piece = BODY[i : i + 7]
            conn.writer.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            await conn.writer.drain()
            await asyncio.sleep(0)
        conn.writer.write(b"0\r\n\r\n")
        return True

    async with Loopback(chunked) as server, LLMClient(server.url) as client:
        for _ in range(3):
            assert await client.complete(REQUEST, timeout_s=2.0) == CANDIDATE
    assert len(server.conns) == 1
    assert server.conns[0].requests == 3


@pytest.mark.anyio
async def test_big_request_to_a_slow_reader_waits_for_the_socket(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pauses = resumes = 0
    pause, resume = AsyncioStream.pause_writing, AsyncioStream.resume_writing

    def counting_pause(self: AsyncioStream) -> None:
        nonlocal pauses
        pauses += 1
        pause(self)

    def counting_resume(self: AsyncioStream) -> None:
        nonlocal resumes
        resumes += 1
        resume(self)

    monkeypatch.setattr(AsyncioStream, "pause_writing", counting_pause)
    monkeypatch.setattr(AsyncioStream, "resume_writing", counting_resume)
    big_request = {"model": "m", "messages": [{"role": "user", "content": "y" * 5_000_000}]}
    sent = json.dumps(big_request, separators=(",", ":")).encode()

    async with (
        Loopback(rcvbuf=16 * 1024, body_delay_s=0.05) as server,
        LLMClient(server.url) as client,
    ):
        assert await client.complete(big_request, timeout_s=5.0) == CANDIDATE
        assert await client.complete(REQUEST, timeout_s=2.0) == CANDIDATE
    assert pauses >= 1, "the transport never pushed back: the test did not exercise it"
    assert resumes == pauses
    [(_, received), _] = server.requests
    assert hashlib.sha256(received).digest() == hashlib.sha256(sent).digest()
    assert len(server.conns) == 1


# --- reading pauses, one write per request -------------------------------------------------------


class _RecordingTransport(asyncio.Transport):
    """Only what the flow-control path touches: whether reading is paused."""

    def __init__(self) -> None:
        super().__init__()
        self.reading = True
        self.pauses = 0

    def pause_reading(self) -> None:
        self.reading = False
        self.pauses += 1

    def resume_reading(self) -> None:
        self.reading = True

    def is_reading(self) -> bool:
        return self.reading

    def is_closing(self) -> bool:
        return False

    def write(self, data: Any) -> None:
        self.written = bytes(data)


@pytest.mark.anyio
async def test_reading_pauses_while_the_buffer_is_full_and_resumes_when_drained() -> None:
    """A runaway answer must not fill memory faster than the client reads it."""
    stream = AsyncioStream()
    transport = _RecordingTransport()
    stream.connection_made(transport)
    await stream.write(b"POST / HTTP/1.1\r\n\r\n")
    await stream._flush()  # what the first read does: the request is out, an answer is due
    assert transport.written
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 500000\r\n\r\n"
    stream.data_received(head)
    for _ in range(5):
        stream.data_received(b"x" * 100_000)
    assert transport.pauses >= 1 and not transport.reading
    data = await stream.read(1_000_000)
    assert len(data) == len(head) + 500_000
    assert transport.reading


@pytest.mark.anyio
async def test_a_request_goes_out_in_one_write(monkeypatch: pytest.MonkeyPatch) -> None:
    """Headers, body and end-of-message leave in one system call, not one each."""
    writes: list[int] = []
    made = AsyncioStream.connection_made

    def counting(self: AsyncioStream, transport: asyncio.BaseTransport) -> None:
        made(self, transport)
        assert isinstance(transport, asyncio.Transport)
        original = transport.write

        def write(data: Any) -> None:
            writes.append(len(data))
            original(data)

        transport.write = write  # type: ignore[method-assign]  # a spy on the transport's writes

    monkeypatch.setattr(AsyncioStream, "connection_made", counting)
    async with Loopback() as server, LLMClient(server.url) as client:
        for _ in range(3):
            assert await client.complete(REQUEST, timeout_s=2.0) == CANDIDATE
    assert len(server.requests) == 3
    assert len(writes) == 3, f"expected one write per request, got sizes {writes}"
