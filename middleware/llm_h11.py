"""The LLM call's HTTP/1.1 driven straight through h11's public API: ``H11Transport``.

Why: the profile of a sampled request put httpcore's request model and its three lock round
trips (each an event-loop turn) among the top costs of the LLM call, and the private-attribute
shortcut that skipped the locks is gone for good. A connection here carries one request at a
time (the pool's checkout is the only lock it needs), so the HTTP state machine is h11's own
``Connection`` (the parser under httpcore, used through its public API) and nothing else.

It was ``LLMClient``'s default until llhttp took over (``llm_httptools``: the same pool,
~116 µs of h11's pure Python per exchange against ~3 µs); it stays as a measured alternative
(``bench/bench_llm_client.py``). The pool, the stale-connection retry, the limits and TLS are
``llm_keepalive``'s, shared by both.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping

import h11
import httpcore

from partial_trust.middleware.llm_framing import AmbiguousFraming, ambiguous_framing
from partial_trust.middleware.llm_keepalive import (
    MAX_HEAD,
    READ_SIZE,
    KeepAliveTransport,
    WireConnection,
)

#: A request as h11 sends it: its head, then its body.
H11Request = tuple[h11.Request, bytes]


class H11Connection(WireConnection[H11Request]):
    """One keep-alive connection: a network stream and the h11 state machine over it."""

    __slots__ = ("parser",)

    def __init__(self, stream: httpcore.AsyncNetworkStream) -> None:
        super().__init__(stream)
        self.parser = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD)

    async def exchange(self, request: H11Request) -> tuple[int, bytes]:
        head, body = request
        parser = self.parser
        try:
            out = parser.send(head) or b""
            out += parser.send(h11.Data(data=body)) or b""
            out += parser.send(h11.EndOfMessage()) or b""
            await self.stream.write(out)
            while True:
                event = parser.next_event()
                if event is h11.NEED_DATA:
                    data = await self.stream.read(READ_SIZE)
                    self.received = self.received or bool(data)
                    parser.receive_data(data)
                elif isinstance(event, h11.Response):
                    if ambiguous_framing(event.headers.raw_items()):
                        raise AmbiguousFraming("ambiguous framing headers")
                    declared = b""
                    for name, value in event.headers:  # h11 lower-cases names
                        if name == b"content-length":
                            declared = value.strip()
                    return event.status_code, declared
                elif not isinstance(event, h11.InformationalResponse):
                    raise httpcore.RemoteProtocolError("no response from the server")
        except h11.RemoteProtocolError:
            raise httpcore.RemoteProtocolError("malformed response") from None

    def body(self) -> _Body:
        return _Body(self)

    def answer_state(self) -> tuple[bool, bool, bool]:
        parser = self.parser
        leftover, closed = parser.trailing_data
        done = parser.our_state is h11.DONE and parser.their_state is h11.DONE
        return done, bool(leftover), closed

    def next_cycle(self) -> None:
        self.parser.start_next_cycle()


class H11Transport(KeepAliveTransport[H11Request]):
    """Keep-alive connections to the LLM's one origin, newest idle first (LIFO), h11 on
    the wire."""

    def render(self, body: bytes, headers: Mapping[str, str]) -> H11Request:
        fields = [
            (b"Host", self.host_header),
            (b"Content-Type", b"application/json"),
            (b"Content-Length", str(len(body)).encode("ascii")),
            *((k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()),
        ]
        try:
            request = h11.Request(method=b"POST", target=self.target, headers=fields)
        except h11.LocalProtocolError:
            raise httpcore.LocalProtocolError("invalid request header") from None
        return request, body

    def connection(self, stream: httpcore.AsyncNetworkStream) -> H11Connection:
        return H11Connection(stream)


class _Body:
    """The body's chunks from h11, noting whether they were read to the end."""

    __slots__ = ("_conn", "complete")

    def __init__(self, conn: H11Connection) -> None:
        self._conn = conn
        self.complete = False

    async def chunks(self) -> AsyncIterator[bytes]:
        parser, stream = self._conn.parser, self._conn.stream
        while True:
            try:
                event = parser.next_event()
                if event is h11.NEED_DATA:
                    parser.receive_data(await stream.read(READ_SIZE))
                    continue
            except h11.RemoteProtocolError:
                raise httpcore.RemoteProtocolError("malformed response body") from None
            if isinstance(event, h11.Data):
                yield bytes(event.data)
            elif isinstance(event, h11.EndOfMessage):
                self.complete = True
                return
            else:
                raise httpcore.RemoteProtocolError("the connection closed inside the body")
