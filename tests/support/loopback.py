"""A hand-written HTTP/1.1 server on 127.0.0.1 for the LLM client's transport and pool tests.

``asyncio.start_server`` speaking HTTP/1.1 written by hand, so what a test asserts is what
really crossed a socket: how many TCP connections were accepted, which connection carried
which request, and when the client closed one (the server reads EOF).
"""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import pytest

from partial_trust.middleware.llm_client import CandidateError, LLMClient
from partial_trust.middleware.llm_seam import LLMTransport

REQUEST: dict[str, Any] = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
CANDIDATE: dict[str, Any] = {"intent": "add_shopping_item", "job": {"job_type": "x"}}


def completion_body(candidate: dict[str, Any] = CANDIDATE) -> bytes:
    envelope = {"choices": [{"index": 0, "message": {"content": json.dumps(candidate)}}]}
    return json.dumps(envelope).encode()


BODY = completion_body()


def response(body: bytes = BODY, *, headers: bytes = b"") -> bytes:
    head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return head.encode() + headers + b"\r\n" + body


# --- a hand-written HTTP/1.1 server ---------------------------------------------------------


@dataclass(eq=False)
class Conn:
    """One accepted TCP connection, server side."""

    index: int
    writer: asyncio.StreamWriter
    requests: int = 0
    client_closed: asyncio.Event = field(default_factory=asyncio.Event)


# Writes the answer to one request (or nothing, to hang); returns False to close the connection.
Respond = Callable[[Conn, bytes], Awaitable[bool]]


async def answer_ok(conn: Conn, body: bytes) -> bool:
    conn.writer.write(response())
    return True


async def never_answer(conn: Conn, body: bytes) -> bool:
    return True  # the handler goes back to reading: it sees the client's EOF when it comes


def answer_when_in_flight(count: int) -> Respond:
    """Hold every answer until ``count`` requests are in flight at once, then answer all."""
    all_in = asyncio.Event()
    arrived = 0

    async def respond(conn: Conn, body: bytes) -> bool:
        nonlocal arrived
        arrived += 1
        if arrived == count:
            all_in.set()
        await all_in.wait()
        conn.writer.write(response())
        return True

    return respond


class Loopback:
    """HTTP/1.1 on 127.0.0.1:0 (TLS with ``ssl_context``); records connections and requests."""

    def __init__(
        self,
        respond: Respond = answer_ok,
        *,
        ssl_context: ssl.SSLContext | None = None,
        rcvbuf: int | None = None,
        body_delay_s: float = 0.0,
    ) -> None:
        self.respond = respond
        self.conns: list[Conn] = []
        self.requests: list[tuple[int, bytes]] = []  # (connection index, request body)
        self.heads: list[bytes] = []  # each request's head, as it crossed the socket
        self._ssl = ssl_context
        self._rcvbuf = rcvbuf
        self._body_delay_s = body_delay_s
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        self.port = 0

    @property
    def url(self) -> str:
        if self._ssl is not None:
            return f"https://localhost:{self.port}/v1"
        return f"http://127.0.0.1:{self.port}/v1"

    async def __aenter__(self) -> Loopback:
        if self._rcvbuf is None:
            self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0, ssl=self._ssl)
        else:  # a small receive window, inherited by accepted sockets: the client must wait
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self._rcvbuf)
            sock.bind(("127.0.0.1", 0))
            self._server = await asyncio.start_server(self._handle, sock=sock, ssl=self._ssl)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        conn = Conn(len(self.conns), writer)
        self.conns.append(conn)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except asyncio.IncompleteReadError as exc:
                    if not exc.partial:
                        conn.client_closed.set()  # a clean EOF between requests
                    return
                body = await self._read_body(reader, content_length(head))
                conn.requests += 1
                self.requests.append((conn.index, body))
                self.heads.append(head)
                keep = await self.respond(conn, body)
                await writer.drain()
                if not keep:
                    return
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            conn.client_closed.set()
        except asyncio.CancelledError:
            pass  # the test is over (``__aexit__``); asyncio would log a cancelled handler
        finally:
            writer.close()

    async def _read_body(self, reader: asyncio.StreamReader, length: int) -> bytes:
        if not self._body_delay_s:
            return await reader.readexactly(length)
        # A slow reader: let the client's buffers fill first, then take 64 KiB at a time.
        await asyncio.sleep(self._body_delay_s)
        body = bytearray()
        while len(body) < length:
            chunk = await reader.read(min(64 * 1024, length - len(body)))
            if not chunk:
                raise asyncio.IncompleteReadError(bytes(body), length)
            body += chunk
            await asyncio.sleep(0.001)
        return bytes(body)


def content_length(head: bytes) -> int:
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


# --- helpers --------------------------------------------------------------------------------


async def eventually(predicate: Callable[[], bool], what: str, timeout_s: float = 2.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s}s: {what}")
        await asyncio.sleep(0.005)


async def sees_eof(conn: Conn, timeout_s: float = 1.0) -> bool:
    """Whether the server reads the client's EOF on ``conn`` within ``timeout_s``."""
    try:
        await asyncio.wait_for(conn.client_closed.wait(), timeout_s)
    except TimeoutError:
        return False
    return True


async def failure(client: LLMClient, timeout_s: float = 1.0, **kwargs: Any) -> CandidateError:
    with pytest.raises(CandidateError) as info:
        await client.complete(REQUEST, timeout_s=timeout_s, **kwargs)
    return info.value


async def post_raw(transport: LLMTransport, url: str, content: bytes = b"{}") -> bytes:
    """One exchange through ``transport`` directly, as a caller other than LLMClient would
    make it: the body of a 200 answer, read to its end (so the connection may be kept)."""
    deadline = asyncio.get_running_loop().time() + 2.0
    async with transport.post(url, content, {}, deadline) as answer:
        assert answer.status == 200
        return b"".join([chunk async for chunk in answer.chunks])
