"""The LLM client's transport (``llm_transport``) over TLS, against a real loopback server
with a certificate made for the test: a trusted one keeps its connection alive like plain
TCP, and one the client does not trust fails the handshake as ``llm_unavailable`` before any
request is sent.

The certificate is the conftest's ``certificate`` (made by ``tests.support.tls``), and the
server is ``tests.support.loopback``'s, so each handshake is a real one.
"""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from partial_trust.middleware.llm_client import LLMClient
from partial_trust.outcome import Reason
from tests.support.loopback import CANDIDATE, REQUEST, Loopback, failure, sees_eof
from tests.support.tls import server_context


@pytest.mark.anyio
async def test_tls_with_a_trusted_certificate(certificate: tuple[Path, Path]) -> None:
    trusting = ssl.create_default_context(cafile=str(certificate[0]))
    async with Loopback(ssl_context=server_context(certificate)) as server:
        async with LLMClient(server.url, ssl_context=trusting) as client:
            for _ in range(3):
                assert await client.complete(REQUEST, timeout_s=2.0) == CANDIDATE
            assert client.origin_pool().idle_count == 1
        assert len(server.conns) == 1  # TLS keep-alive too
        assert server.conns[0].requests == 3
        assert await sees_eof(server.conns[0]), "aclose left the TLS connection open"


@pytest.mark.anyio
async def test_tls_with_an_untrusted_certificate_is_unavailable(
    certificate: tuple[Path, Path],
) -> None:
    untrusting = ssl.create_default_context()  # the system's CAs only
    async with (
        Loopback(ssl_context=server_context(certificate)) as server,
        LLMClient(server.url, ssl_context=untrusting) as client,
    ):
        error = await failure(client)
        assert (error.reason, error.detail) == (Reason.LLM_UNAVAILABLE, "ConnectError")
        pool = client.origin_pool()
        assert (pool.idle_count, pool.in_use) == (0, 0)
    assert server.requests == []
