"""What makes an answer on a keep-alive connection safe to take: its framing, read as sent.

A response's end is decided by its framing headers; when they can be read two ways, a client
and a proxy (or two clients) can disagree on where one answer ends and the next begins, and
the bytes left over become the next user's answer (request/response smuggling). The stream
(``llm_transport.AsyncioStream``) checks the raw header block with ``ambiguous_framing`` and
notes stray bytes on ``Upstream``; the pool (``llm_keepalive``) stops reusing connections to
an upstream that has sent any.
"""

from __future__ import annotations

from collections.abc import Iterable

import httpcore

#: The most of a response's header block looked at for its framing headers.
HEAD_LIMIT = 64 * 1024
#: The longest chunk-size or trailer line accepted; longer is a framing error.
_LINE_LIMIT = 4096


class AmbiguousFraming(httpcore.RemoteProtocolError):
    """The answer's framing headers can be read two ways; its end would be a guess."""


class Upstream:
    """What the connections to one upstream have seen: when one last got stray bytes.

    Shared by the streams of one backend, so the pool can stop reusing connections to an
    upstream that has shown it sends what nobody asked for (``KeepAliveTransport.quarantined``).
    """

    def __init__(self) -> None:
        self.stray_bytes_at = -float("inf")


def ambiguous_framing(headers: Iterable[tuple[bytes, bytes]]) -> bool:
    """Whether a response's framing headers could be read two ways (RFC 9112 section 6.3).

    Two ``Content-Length`` headers (even equal ones: a proxy in between may pick the other),
    a list of lengths, a length that is not plain digits, ``Content-Length`` together with
    ``Transfer-Encoding``, or any transfer coding but a lone ``chunked``: where the answer
    ends is then a guess, and a wrong guess leaves one answer's bytes on the connection for
    the next user. Such an answer is refused and its connection closed.
    """
    lengths = 0
    codings: list[bytes] = []
    for name, value in headers:
        key = name.strip().lower()
        if key == b"content-length":
            lengths += 1
            if not value.strip().isdigit():
                return True
        elif key == b"transfer-encoding":
            codings.append(value.strip().lower())
    if codings:
        return lengths > 0 or codings != [b"chunked"]
    return lengths > 1


def head_fields(head: bytes) -> list[tuple[bytes, bytes]]:
    """The header fields of a raw response head (status line dropped), as sent."""
    fields = []
    for line in head.split(b"\r\n")[1:]:
        name, colon, value = line.partition(b":")
        if colon:
            fields.append((name, value))
    return fields


class AnswerFraming:
    """Where the answer to one request ends, read from the bytes as they arrive.

    Why: the HTTP/1.1 parser above the stream (h11 or llhttp) may keep whatever it was
    handed past the end of an answer, and the next call on the connection would read those
    bytes as its own answer. Counting the answer's bytes here (head, then a ``Content-Length``
    body or ``chunked`` chunks and trailers) lets the stream hand the parser exactly one
    answer and keep anything after it, which makes the connection dirty (``settle``).
    ``feed`` returns how many bytes of ``data`` belong to the answer; ``ambiguous`` is set
    when its framing headers can be read two ways, ``broken`` when the framing cannot be
    followed (the answer then runs to the connection's close, which is never reused).
    """

    def __init__(self) -> None:
        self.ambiguous = False
        self.broken = False
        self.done = False
        self._line = bytearray()  # the head, or the chunk-size/trailer line being read
        self._state = "head"  # head | length | size | data | crlf | trailer | close
        self._left = 0  # bytes left in the body (length) or the chunk (data, crlf)

    def feed(self, data: bytes) -> int:
        taken = 0
        while taken < len(data) and not self.done:
            if self._state in ("length", "data", "crlf"):
                step = min(self._left, len(data) - taken)
                taken += step
                self._left -= step
                if not self._left:
                    self._next_after_bytes()
            elif self._state == "close":
                return len(data)
            else:
                end = data.find(b"\n", taken)
                stop = len(data) if end < 0 else end + 1
                self._line += data[taken:stop]
                taken = stop
                if end >= 0 or self._state == "head":
                    self._line_done(complete=end >= 0)
        return taken

    def _next_after_bytes(self) -> None:
        if self._state == "length":
            self.done = True
        elif self._state == "data":
            self._state, self._left = "crlf", 2
        else:
            self._state = "size"

    def _line_done(self, *, complete: bool) -> None:
        if self._state == "head":
            self._head()
        elif len(self._line) > _LINE_LIMIT:
            self._broken()
        elif complete and self._state == "size":
            size = bytes(self._line).split(b";", 1)[0].strip()
            self._line.clear()
            try:
                self._left = int(size, 16) if size else -1
            except ValueError:
                self._left = -1
            if self._left < 0:
                self._broken()
            else:
                self._state = "data" if self._left else "trailer"
        elif complete:  # a trailer line; the empty one ends the answer
            line, self._line = bytes(self._line), bytearray()
            self.done = line.strip() == b""

    def _head(self) -> None:
        # Called at every line end of the head (and on any partial read): the head is
        # complete when its buffer ends with the empty line.
        if not self._line.endswith(b"\r\n\r\n"):
            if len(self._line) > HEAD_LIMIT:
                self.ambiguous = True
                self._broken()
            return
        head = bytes(self._line[:-4])
        self._line.clear()
        status = head[9:12]
        if head.startswith(b"HTTP/1.1 1") and status != b"101":
            return  # an interim 1xx answer: the final one follows
        fields = head_fields(head)
        if ambiguous_framing(fields):
            self.ambiguous = True
            self._broken()
            return
        names = {name.strip().lower(): value.strip() for name, value in fields}
        if status in (b"204", b"304"):
            self.done = True
        elif b"transfer-encoding" in names:
            self._state = "size"
        elif names.get(b"content-length", b"").isdigit():
            self._state, self._left = "length", int(names[b"content-length"])
            self.done = not self._left
        else:
            self._state = "close"  # read until the server closes: never reused

    def _broken(self) -> None:
        self.broken = True
        self._state = "close"
