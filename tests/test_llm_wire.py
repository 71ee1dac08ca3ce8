"""The wire protocol of both keep-alive transports (``HttptoolsTransport``, llhttp, the default;
``H11Transport``, h11), answer by answer: what is read, what is refused, and which answers
leave their connection fit for the next call. In process (``InstantStream``: the answer is
there the moment the request is sent), so the parser is all that is tested; the hostile
upstreams on real sockets are ``test_llm_h11.py``'s.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpcore
import pytest

from partial_trust.middleware.llm_client import LLMClient
from partial_trust.middleware.llm_h11 import H11Transport
from partial_trust.middleware.llm_httptools import HttptoolsTransport
from partial_trust.middleware.llm_keepalive import KeepAliveTransport
from partial_trust.outcome import Reason
from tests.support.instant_llm import InstantStream
from tests.support.loopback import BODY, CANDIDATE, REQUEST, failure

pytestmark = pytest.mark.parametrize(
    "anyio_backend",
    [
        pytest.param("asyncio", id="asyncio"),
        pytest.param(("asyncio", {"use_uvloop": True}), id="uvloop"),
    ],
)

Wire = type[KeepAliveTransport[Any]]
LENGTH = str(len(BODY)).encode()
CHUNKED = f"{len(BODY):x}\r\n".encode() + BODY + b"\r\n0\r\nX-Trailer: 1\r\n\r\n"


@pytest.fixture(params=[HttptoolsTransport, H11Transport], ids=["llhttp", "h11"])
def wire(request: pytest.FixtureRequest) -> Wire:
    cls: Wire = request.param
    return cls


class _Scripted(httpcore.AsyncNetworkBackend):
    """Each connection answers every request with ``answer``; connects are counted."""

    def __init__(self, answer: bytes, *, hang: bool = False) -> None:
        self.answer = answer
        self.hang = hang
        self.connects = 0

    async def connect_tcp(self, *args: Any, **kwargs: Any) -> httpcore.AsyncNetworkStream:
        self.connects += 1
        return _Hanging(self.answer) if self.hang else InstantStream(self.answer)


class _Hanging(InstantStream):
    """Its answer, then nothing: no more bytes, no EOF (a head that never ends)."""

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        data = await super().read(max_bytes, timeout)
        if not data:
            await asyncio.Event().wait()
        return data


def _client(
    wire: Wire, answer: bytes, *, hang: bool = False
) -> tuple[LLMClient, KeepAliveTransport[Any], _Scripted]:
    backend = _Scripted(answer, hang=hang)
    transport = wire("http://llm.test/v1/chat/completions", network_backend=backend)
    return LLMClient("http://llm.test/v1", transport=transport), transport, backend


#: An answer the client takes, and whether its connection serves the next call.
TAKEN: dict[str, tuple[bytes, bool]] = {
    "keep-alive": (b"HTTP/1.1 200 OK\r\nContent-Length: " + LENGTH + b"\r\n\r\n" + BODY, True),
    "1xx-first": (
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nContent-Length: " + LENGTH + b"\r\n\r\n" + BODY,
        True,
    ),
    "chunked-trailers": (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + CHUNKED, True),
    "connection-close": (
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: " + LENGTH + b"\r\n\r\n" + BODY,
        False,
    ),
    "http-1.0": (b"HTTP/1.0 200 OK\r\nContent-Length: " + LENGTH + b"\r\n\r\n" + BODY, False),
    "http-1.0-keep-alive": (
        b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: "
        + LENGTH
        + b"\r\n\r\n"
        + BODY,
        False,
    ),
    "until-close": (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n" + BODY, False),
}


@pytest.mark.anyio
@pytest.mark.parametrize("case", sorted(TAKEN))
async def test_an_answer_is_read_and_its_connection_kept_only_when_it_allows(
    case: str, wire: Wire
) -> None:
    answer, kept = TAKEN[case]
    client, transport, backend = _client(wire, answer)
    for _ in range(3):
        assert await client.complete(REQUEST, timeout_s=1.0) == CANDIDATE
    assert backend.connects == (1 if kept else 3), case
    assert transport.idle_count == (1 if kept else 0) and transport.in_use == 0
    assert not transport.quarantined


#: Answers refused as malformed (``httpcore.RemoteProtocolError``: unavailable).
MALFORMED: dict[str, bytes] = {
    "bad-status": b"HTTP/1.1 2x0 OK\r\nContent-Length: 2\r\n\r\n{}",
    "not-http": b"SSH-2.0-OpenSSH_9.6\r\n\r\n",
    "switching-protocols": b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n",
    "head-over-100k": b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 200_000,  # and no end, no EOF
    "truncated-body": b"HTTP/1.1 200 OK\r\nContent-Length: 999\r\n\r\n" + BODY,
    "bad-chunk-size": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
    "no-answer": b"",
}


@pytest.mark.anyio
@pytest.mark.parametrize("case", sorted(MALFORMED))
async def test_a_malformed_answer_is_unavailable_and_its_connection_closed(
    case: str, wire: Wire
) -> None:
    client, transport, backend = _client(wire, MALFORMED[case], hang=case == "head-over-100k")
    for _ in range(2):
        error = await failure(client)
        assert (error.reason, error.detail) == (Reason.LLM_UNAVAILABLE, "RemoteProtocolError")
    assert backend.connects == 2 and (transport.idle_count, transport.in_use) == (0, 0)


@pytest.mark.anyio
@pytest.mark.parametrize(
    "headers",
    [
        {"x-a": "1\r\nInjected: yes"},
        {"x-a": "1\nInjected: yes"},
        {"x-a": "1\rInjected: yes"},
        {"x-a": "nul\x00"},
        {"x-a\r\nInjected": "yes"},
        {"x a": "1"},
        {"x:a": "1"},
        {"": "1"},
        {"x-a": " leading"},
        {"x-a": "trailing "},
    ],
)
async def test_a_header_that_could_add_a_line_is_refused_before_anything_is_sent(
    headers: dict[str, str], wire: Wire
) -> None:
    transport = wire("http://llm.test/v1/chat/completions", network_backend=_Scripted(b""))
    deadline = asyncio.get_running_loop().time() + 1.0
    with pytest.raises(httpcore.LocalProtocolError):
        async with transport.post("", b"{}", headers, deadline):
            pass
    assert transport.in_use == 0


@pytest.mark.anyio
async def test_the_head_is_rendered_as_h11_renders_it(wire: Wire) -> None:
    """Both wires put the same request on the wire, byte for byte."""
    sent: list[bytes] = []

    class Recording(InstantStream):
        async def write(self, buffer: bytes, timeout: float | None = None) -> None:
            sent.append(buffer)
            await super().write(buffer, timeout)

    class Backend(_Scripted):
        async def connect_tcp(self, *args: Any, **kwargs: Any) -> httpcore.AsyncNetworkStream:
            return Recording(self.answer)

    backend = Backend(TAKEN["keep-alive"][0])
    transport = wire("http://llm.test:8080/v1/chat/completions?x=1", network_backend=backend)
    headers = {"Accept": "application/json", "Authorization": "Bearer sk a\tb", "x-empty": ""}
    deadline = asyncio.get_running_loop().time() + 1.0
    async with transport.post("", b'{"a":1}', headers, deadline) as answer:
        assert answer.status == 200 and answer.content_length == LENGTH
        assert b"".join([chunk async for chunk in answer.chunks]) == BODY
    assert b"".join(sent) == (
        b"POST /v1/chat/completions?x=1 HTTP/1.1\r\nHost: llm.test:8080\r\n"
        b"Content-Type: application/json\r\nContent-Length: 7\r\nAccept: application/json\r\n"
        b"Authorization: Bearer sk a\tb\r\nx-empty: \r\n\r\n"
        b'{"a":1}'
    )
