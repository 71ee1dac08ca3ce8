"""The LLM call's HTTP/1.1 in C: ``HttptoolsTransport``, ``LLMClient``'s default.

Why: one h11 exchange (a ``Request`` event with its header validation, send, receive_data,
three ``next_event``) cost ~116 µs of pure Python on the bench machine; a sampled request has
~300 µs of extra CPU in all. Here the request head is bytes rendered once per transport
(method, target, Host, Content-Type) plus the call's Content-Length and headers, checked by
one regular expression so no header can add a line; the answer is parsed by llhttp through
``httptools.HttpResponseParser`` (the parser uvicorn[standard] uses): ~3 µs for both.

Everything else is ``llm_keepalive``'s, shared with ``llm_h11.H11Transport``: the LIFO pool,
the limits, TLS, the stale-connection retry, the quarantine. The guarantees of h11 kept here:
ambiguous framing refused (``ambiguous_framing`` on the raw headers), 1xx answers skipped,
204 and 304 without a body, chunked bodies with trailers, an answer with "Connection: close",
in HTTP/1.0 or read to the connection's end never reused, bytes past the answer never read
as the next call's (and they quarantine the upstream), a head over 100 KiB refused, and
every failure one of httpcore's public exceptions.
"""

from __future__ import annotations

import functools
import re
from collections.abc import AsyncIterator, Mapping

import httpcore
import httptools

from partial_trust.middleware.llm_framing import AmbiguousFraming, ambiguous_framing
from partial_trust.middleware.llm_keepalive import (
    MAX_HEAD,
    READ_SIZE,
    KeepAliveTransport,
    WireConnection,
)

#: The caller's header lines: a token, a colon, a value of visible characters with single
#: inner runs of spaces or tabs (h11's rule), CRLF; never a framing header of its own.
_FIELDS = re.compile(
    rb"(?:(?!(?i:content-length|transfer-encoding|host)\s*:)"
    rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+: (?:[\x21-\x7e\x80-\xff]+(?:[ \t]+[\x21-\x7e\x80-\xff]+)*)?"
    rb"\r\n)*"
)


class _Answer:
    """What llhttp's callbacks saw of one answer (the parser's protocol object).

    It holds no reference to the parser (which holds this object's callbacks): the parser is
    lent to it only while it parses (``HttptoolsConnection.feed``), so a dropped connection
    is freed by reference counting, never left to the cyclic collector.
    """

    __slots__ = (
        "ended",
        "head_done",
        "head_size",
        "headers",
        "informational",
        "keep_alive",
        "leftover",
        "parser",
        "pending",
        "refused",
        "to_close",
    )

    def __init__(self) -> None:
        self.parser: httptools.HttpResponseParser | None = None
        self.headers: list[tuple[bytes, bytes]] = []
        self.pending: list[bytes] = []
        self.reset()

    def reset(self) -> None:
        self.headers.clear()
        self.pending.clear()
        self.head_size = 0
        self.informational = False
        self.to_close = False
        self.refused: httpcore.RemoteProtocolError | None = None
        self.head_done = False
        self.ended = False  # the parser has the whole answer
        self.keep_alive = False
        self.leftover = False

    def on_message_begin(self) -> None:
        if self.ended:  # a second answer behind the first: stop parsing it
            self.leftover = True
            raise _Stop

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self.head_done:  # trailers are read past, as h11 does
            self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code() if self.parser is not None else 0
        if 100 <= status < 200 and status != 101:
            self.headers.clear()  # an interim answer: the final one follows
            self.head_size = 0
            self.informational = True
            return
        self.informational = False
        self.head_done = True
        if ambiguous_framing(self.headers):
            self.refused = AmbiguousFraming("ambiguous framing headers")
        elif status == 101:  # nothing asked to switch protocols (h11 refuses it too)
            self.refused = httpcore.RemoteProtocolError("unrequested protocol switch")
        if self.refused is not None:
            raise _Stop  # llhttp stops here; ``feed`` raises what was refused
        # Neither a length nor chunked: the body runs to the connection's end (llhttp has
        # no call for that end, so ``chunks`` ends it).
        self.to_close = status not in (204, 304) and not any(
            name.strip().lower() in (b"content-length", b"transfer-encoding")
            for name, _ in self.headers
        )

    def on_body(self, body: bytes) -> None:
        self.pending.append(body)

    def on_message_complete(self) -> None:
        if self.informational:
            return
        self.ended = True
        # Asked here: llhttp forgets the answer's connection flags once it has ended.
        parser = self.parser
        if parser is not None:
            self.keep_alive = parser.should_keep_alive() and parser.get_http_version() == "1.1"


class HttptoolsConnection(WireConnection[bytes]):
    """One keep-alive connection: a network stream and llhttp's response parser over it.

    The parser's callbacks note what they see on an ``_Answer``; ``feed`` turns what they
    noted, and llhttp's errors, into httpcore's exceptions.
    """

    __slots__ = ("_answer", "_parser", "closed", "complete")

    def __init__(self, stream: httpcore.AsyncNetworkStream) -> None:
        super().__init__(stream)
        self._answer = _Answer()
        self._parser = httptools.HttpResponseParser(self._answer)
        self.complete = False  # ``chunks`` has handed all of the answer on
        self.closed = False

    def feed(self, data: bytes) -> None:
        answer = self._answer
        answer.parser = self._parser
        try:
            self._parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade):
            if answer.ended:  # bytes past the answer (or past its "Connection: close")
                answer.leftover = True
                return
            if answer.refused is not None:
                raise answer.refused from None
            raise httpcore.RemoteProtocolError("malformed response") from None
        finally:
            answer.parser = None
        if not answer.head_done:
            answer.head_size += len(data)
            if answer.head_size > MAX_HEAD:
                raise httpcore.RemoteProtocolError("response head too large")

    async def exchange(self, request: bytes) -> tuple[int, bytes]:
        await self.stream.write(request)
        answer = self._answer
        while not answer.head_done:
            data = await self.stream.read(READ_SIZE)
            if not data:
                raise httpcore.RemoteProtocolError("no response from the server")
            self.received = True
            self.feed(data)
        declared = b""
        for name, value in answer.headers:
            if name.lower() == b"content-length":
                declared = value.strip()
        return self._parser.get_status_code(), declared

    def body(self) -> HttptoolsConnection:
        return self

    async def chunks(self) -> AsyncIterator[bytes]:
        answer = self._answer
        pending = answer.pending
        while True:
            if pending:
                data = pending[0] if len(pending) == 1 else b"".join(pending)
                pending.clear()
                yield data
            if answer.ended:
                self.complete = True
                return
            data = await self.stream.read(READ_SIZE)
            if data:
                self.feed(data)
            elif answer.to_close:  # the connection's end is the body's: never reused
                answer.ended, answer.keep_alive, self.closed = True, False, True
            else:
                raise httpcore.RemoteProtocolError("the connection closed inside the body")

    def answer_state(self) -> tuple[bool, bool, bool]:
        answer = self._answer
        return answer.keep_alive, answer.leftover, self.closed

    def next_cycle(self) -> None:
        self._answer.reset()
        self.complete = False
        self.closed = False


class HttptoolsTransport(KeepAliveTransport[bytes]):
    """Keep-alive connections to the LLM's one origin, newest idle first (LIFO), llhttp on
    the wire."""

    @functools.cached_property
    def _head(self) -> bytes:
        """The request head up to the call's Content-Length, rendered once."""
        return (
            b"POST " + self.target + b" HTTP/1.1\r\nHost: " + self.host_header
            + b"\r\nContent-Type: application/json\r\nContent-Length: "
        )  # fmt: skip

    def render(self, body: bytes, headers: Mapping[str, str]) -> bytes:
        fields = "".join([f"{name}: {value}\r\n" for name, value in headers.items()])
        extra = fields.encode("latin-1")
        # one line a header: a value that holds a CRLF would match as two lines
        if extra.count(b"\n") != len(headers) or _FIELDS.fullmatch(extra) is None:
            raise httpcore.LocalProtocolError("invalid request header")
        return b"%s%d\r\n%s\r\n%s" % (self._head, len(body), extra, body)

    def connection(self, stream: httpcore.AsyncNetworkStream) -> HttptoolsConnection:
        return HttptoolsConnection(stream)


class _Stop(Exception):
    """Raised inside llhttp's callback to stop it: a second answer, or ambiguous framing."""
