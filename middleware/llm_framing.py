"""What makes an answer on a keep-alive connection safe to take: its framing, read as sent.

A response's end is decided by its framing headers; when they can be read two ways, a client
and a proxy (or two clients) can disagree on where one answer ends and the next begins, and
the bytes left over become the next user's answer (request/response smuggling). The stream
(``llm_transport.AsyncioStream``) checks the raw header block with ``ambiguous_framing`` and
notes stray bytes on ``Upstream``; the pool (``llm_pool``) stops reusing connections to an
upstream that has sent any.
"""

from __future__ import annotations

from collections.abc import Iterable

import httpcore


class AmbiguousFraming(httpcore.RemoteProtocolError):
    """The answer's framing headers can be read two ways; its end would be a guess."""


class Upstream:
    """What the connections to one upstream have seen: when one last got stray bytes.

    Shared by the streams of one backend, so the pool can stop reusing connections to an
    upstream that has shown it sends what nobody asked for (``OriginPool.quarantined``).
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
