"""Raw LLM traffic never reaches a log at any level (``partial_trust.middleware.log_privacy``).

Logging is configured at DEBUG on the root logger, and real calls go through ``LLMClient`` to
a real HTTP server on 127.0.0.1 whose answer carries a secret in its content, a custom reason
phrase and a private header; the request carries another secret in its text and an API key.
Every captured record (formatted, and its ``msg``, ``args`` and ``exc_info``) is searched.
The same run without the filter shows those secrets do get logged, so the search can fail.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from partial_trust.environment import Environment
from partial_trust.middleware import log_privacy
from partial_trust.middleware.factory import CorridorStack
from partial_trust.middleware.llm_client import CandidateError, LLMClient
from tests.support.loopback import CANDIDATE, Conn, Loopback, completion_body

MARKER = "zq-user-secret-7731"  # in the request's text and in the model's answer
PHRASE = "Quietly-Leaking-Phrase-4412"  # the status line's reason phrase
HEADER = "hv-private-9930"  # a response header's value
API_KEY = "sk-private-5521"  # the request's Authorization header
SECRETS = (MARKER, PHRASE, HEADER, API_KEY)
REQUEST: dict[str, Any] = {"model": "m", "messages": [{"role": "user", "content": MARKER}]}


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def texts(self) -> Iterator[str]:
        formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
        for record in self.records:
            yield formatter.format(record) + repr(vars(record))

    def leaks(self) -> set[str]:
        return {secret for text in self.texts() for secret in SECRETS if secret in text}

    def names(self) -> set[str]:
        return {record.name for record in self.records}


@pytest.fixture
def capture() -> Iterator[Capture]:
    root = logging.getLogger()
    handler, level = Capture(), root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


@pytest.fixture
def unprotected() -> Iterator[None]:
    """White box: the filter off every logger for one test, whoever holds it, then back."""
    loggers = [lg for lg in log_privacy.protected_loggers() if log_privacy._FILTER in lg.filters]
    for lg in loggers:
        lg.removeFilter(log_privacy._FILTER)
    try:
        yield
    finally:
        for lg in loggers:
            lg.addFilter(log_privacy._FILTER)


async def leaky(conn: Conn, body: bytes) -> bool:
    content = completion_body({**CANDIDATE, "note": MARKER})
    head = (
        f"HTTP/1.1 200 {PHRASE}\r\nContent-Type: application/json\r\n"
        f"X-Private: {HEADER}\r\nContent-Length: {len(content)}\r\n\r\n"
    )
    conn.writer.write(head.encode() + content)
    return True


async def broken(conn: Conn, body: bytes) -> bool:
    # Unparseable: h11's error quotes the offending line, which httpcore traces with the error.
    conn.writer.write(f"HTTP/1.1 200 OK\r\nno colon {MARKER} {HEADER}\r\n\r\n".encode())
    return False


async def calls(url: str, client: httpx.AsyncClient | None = None) -> None:
    """Two calls: over the default transport (llhttp driven directly, which logs nothing) or
    an injected httpx client, whose httpcore and httpx tracing is what the filter must redact."""
    async with LLMClient(url, api_key=API_KEY, client=client) as llm:
        for _ in range(2):  # the second reuses the keep-alive connection
            assert (await llm.complete(REQUEST, timeout_s=5))["note"] == MARKER


@pytest.mark.anyio
@pytest.mark.usefixtures("unprotected")
async def test_without_the_filter_the_http_libraries_do_log_the_traffic(
    capture: Capture,
) -> None:
    async with Loopback(leaky) as server, httpx.AsyncClient() as client:
        await calls(server.url, client)
    assert capture.leaks() == {PHRASE, HEADER}  # what the check below must not find
    assert {"httpcore.http11", "httpcore.connection", "httpx"} <= capture.names()


@pytest.mark.anyio
async def test_no_record_carries_the_traffic_through_default_or_httpx(capture: Capture) -> None:
    log_privacy.install()
    try:
        async with Loopback(leaky) as server, httpx.AsyncClient() as client:
            await calls(server.url)
            await calls(server.url, client)
        async with Loopback(broken) as server, httpx.AsyncClient() as client:
            for injected in (None, client):  # the default transport, then httpx's tracing
                async with LLMClient(server.url, api_key=API_KEY, client=injected) as llm:
                    with pytest.raises(CandidateError):
                        await llm.complete(REQUEST, timeout_s=5)
    finally:
        log_privacy.uninstall()
    assert capture.leaks() == set()
    messages = [record.getMessage() for record in capture.records]
    assert "receive_response_headers.complete" in messages  # the phases are still traced
    assert "receive_response_headers.failed exception=RemoteProtocolError" in messages
    assert "HTTP Request: POST -> 200" in messages
    http = [r for r in capture.records if r.name.split(".")[0] in log_privacy.PREFIXES]
    assert len(http) > 20 and all(not r.args and r.exc_info is None for r in http)


@pytest.mark.anyio
async def test_corridor_stack_redacts_while_started(tmp_path: Path, capture: Capture) -> None:
    env = {
        "PARTIAL_TRUST_FLAGS_PROVIDER": "env",
        "PARTIAL_TRUST_RISK_LOG_PATH": str(tmp_path / "risk.jsonl"),
    }
    async with Loopback(leaky) as server:
        env["LLM_BASE_URL"] = server.url
        env["LLM_API_KEY"] = API_KEY
        stacks = [CorridorStack.from_env(Environment.from_mapping(env)) for _ in range(2)]
        before = log_privacy.installed()
        for stack in stacks:
            await stack.start()
        await stacks[0].start()  # idempotent: still one hold for this stack
        assert log_privacy.installed()
        for stack in stacks:
            assert (await stack.llm.complete(REQUEST, timeout_s=5))["note"] == MARKER
        await stacks[0].stop()
        assert log_privacy.installed()  # the other stack still runs
        assert (await stacks[1].llm.complete(REQUEST, timeout_s=5))["note"] == MARKER
        await stacks[1].stop()
    assert log_privacy.installed() is before  # off again unless someone else holds it
    assert capture.leaks() == set()
    # The stack's default transport drives llhttp directly: no HTTP library record at all.
    assert not any(record.name.startswith("httpcore.") for record in capture.records)


def test_every_http_library_logger_is_covered_and_filter_is_reference_counted() -> None:
    late = logging.getLogger("httpcore.some_future_module")  # created before install
    holders_before = log_privacy.installed()
    log_privacy.install()
    log_privacy.install()
    try:
        names = set(logging.Logger.manager.loggerDict)
        ours = [n for n in names if n.split(".")[0] in log_privacy.PREFIXES]
        assert {"httpcore.http11", "httpcore.connection", "httpcore.proxy", "httpx"} <= set(ours)
        for name in ours:
            assert log_privacy._FILTER in logging.getLogger(name).filters, name
        assert log_privacy._FILTER in late.filters
        log_privacy.uninstall()
        assert log_privacy._FILTER in late.filters  # one holder left
    finally:
        log_privacy.uninstall()
    assert (log_privacy._FILTER in late.filters) is holders_before


@pytest.mark.parametrize(
    ("msg", "args", "expected"),
    [
        ('HTTP Request: %s %s "%s %d %s"', ("POST", "u", "HTTP/1.1", 200, PHRASE), "POST -> 200"),
        ('HTTP Request: %s %s "%s %d %s"', ([MARKER], "u", "x", MARKER, PHRASE), "? -> ?"),
        (f"send_request_headers.started request=<{MARKER}>", (), "send_request_headers.started"),
        (f"x.failed exception=ValueError('{MARKER}')", (), "x.failed exception=ValueError"),
        (f"x.failed exception={MARKER}", (), "x.failed exception=?"),
        (f"{MARKER} free text", (), "httpcore.http11: record redacted"),
        (json.dumps({"k": MARKER}), (), "httpcore.http11: record redacted"),
    ],
)
def test_redacted_message_is_built_only_from_code_names(
    msg: str, args: tuple[Any, ...], expected: str
) -> None:
    record = logging.LogRecord("httpcore.http11", logging.DEBUG, "f", 1, msg, args, None)
    assert log_privacy.redaction_filter().filter(record) is True
    assert expected in record.getMessage() and MARKER not in repr(vars(record))
