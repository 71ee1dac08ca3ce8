"""Bad request bodies over real HTTP: real uvicorn, real llm-sim, corridor on vs. off.

Two reference apps run side by side, one with the corridor enabled (sample rate 1) and one
with it disabled: the disabled one gives the baseline's own answer. For every bad body both
must answer the same status, bytes and content type (a 4xx, never a 5xx), llm-sim must see
no call, the enabled app must write exactly one ``skipped/invalid_command`` line and the
disabled one none.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.stack import (
    BASE_ENV,
    llm_sim,
    metric_value,
    read_lines,
    reference_app,
    shopping_command,
    sim_calls,
    wait_lines,
)
from tests.support.bad_input import BAD_BODIES, crashing_router
from tests.support.procs import PYTHON, Server, free_port, run_server

pytestmark = pytest.mark.integration

HTTP_CASES = [
    "empty",
    "not-json-braces",
    "trailing-garbage",
    "plain-text",
    "binary",
    "null",
    "array-of-command",
    "command-id-int",
    "text-object",
    "capabilities-string",
    "empty-object",
    "missing-text",
    "extra-top-level",
    "extra-in-context",
    "text-too-long",
    "oversized-1mb-text",
    "oversized-10mb-text",
    "nested-100k-arrays-open",
    "nested-100k-arrays",
    "nested-100k-objects",
    "invalid-utf8-ff",
    "invalid-utf8-in-text",
    "overlong-utf8-slash",
    "utf16-json",
    "lone-surrogate-escape",
    "nan-literal",
]


@pytest.fixture(scope="module")
def tmp_module(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("bad_input_http")


@pytest.fixture(scope="module")
def sim(tmp_module: Path) -> Iterator[Server]:
    with llm_sim(tmp_module) as server:
        yield server


@pytest.fixture(scope="module")
def on(tmp_module: Path, sim: Server) -> Iterator[tuple[Server, Path]]:
    with reference_app(tmp_module, f"{sim.url}/v1", "on") as pair:
        yield pair


@pytest.fixture(scope="module")
def off(tmp_module: Path, sim: Server) -> Iterator[tuple[Server, Path]]:
    with reference_app(tmp_module, f"{sim.url}/v1", "off", PARTIAL_TRUST_ENABLED="false") as pair:
        yield pair


def post(
    server: Server, content: bytes | Iterable[bytes], headers: dict[str, str] | None = None
) -> httpx.Response:
    hdrs = {"content-type": "application/json"} if headers is None else headers
    return httpx.post(f"{server.url}/route", content=content, headers=hdrs, timeout=60)


def chunks(body: bytes, size: int) -> Iterator[bytes]:
    for i in range(0, len(body), size):
        yield body[i : i + size]


def check_pair(
    on: tuple[Server, Path],
    off: tuple[Server, Path],
    sim: Server,
    send: Any,
    *,
    reason: str = "invalid_command",
) -> tuple[httpx.Response, httpx.Response]:
    (app_on, log_on), (app_off, log_off) = on, off
    before = len(read_lines(log_on))
    counted = metric_value(
        app_on, "partial_trust_decisions_total", {"status": "skipped", "reason": reason}
    )
    calls = sim_calls(sim)
    baseline = send(app_off)
    answer = send(app_on)
    assert answer.status_code == baseline.status_code
    assert answer.content == baseline.content
    assert answer.headers.get("content-type") == baseline.headers.get("content-type")
    assert answer.headers.get("content-length") == baseline.headers.get("content-length")
    lines = wait_lines(log_on, before + 1)
    assert [(x["status"], x["reason_code"]) for x in lines[before:]] == [("skipped", reason)]
    assert lines[-1]["sampled"] is False and lines[-1]["latency_ms"] is None
    assert (
        metric_value(
            app_on, "partial_trust_decisions_total", {"status": "skipped", "reason": reason}
        )
        == counted + 1
    )
    assert sim_calls(sim) == calls, "no LLM call for a bad body"
    assert not log_off.exists(), "a disabled corridor writes no risk log"
    return answer, baseline


@pytest.mark.parametrize("name", HTTP_CASES)
def test_bad_body_over_http(
    on: tuple[Server, Path], off: tuple[Server, Path], sim: Server, name: str
) -> None:
    body = BAD_BODIES[name]
    answer, _ = check_pair(on, off, sim, lambda s: post(s, body))
    assert 400 <= answer.status_code < 500, answer.content[:300]
    assert answer.json()["error"] == "invalid_command"


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", ""])
def test_wrong_content_type_over_http(
    on: tuple[Server, Path], off: tuple[Server, Path], sim: Server, content_type: str
) -> None:
    headers = {"content-type": content_type} if content_type else {}
    body = b"command_id=c-1&text=add+milk+to+my+shopping+list"
    answer, _ = check_pair(on, off, sim, lambda s: post(s, body, headers))
    assert answer.status_code == 422


@pytest.mark.parametrize(
    ("name", "size"),
    [("unterminated-object", 1), ("nested-100k-arrays", 8192), ("oversized-1mb-text", 65_536)],
)
def test_chunked_bad_body_over_http(
    on: tuple[Server, Path], off: tuple[Server, Path], sim: Server, name: str, size: int
) -> None:
    body = BAD_BODIES[name]
    answer, _ = check_pair(on, off, sim, lambda s: post(s, chunks(body, size)))
    assert 400 <= answer.status_code < 500


def test_chunked_valid_command_over_http(
    on: tuple[Server, Path], off: tuple[Server, Path], sim: Server
) -> None:
    """A valid command in 1-byte chunks is read whole: the corridor asks the LLM once and the
    answer has exactly the baseline's keys (llm-sim accepts by default)."""
    (app_on, log_on), (app_off, _) = on, off
    body = json.dumps(shopping_command("cmd-chunked")).encode()
    before, calls = len(read_lines(log_on)), sim_calls(sim)
    baseline = post(app_off, chunks(body, 1))
    answer = post(app_on, chunks(body, 1))
    assert baseline.status_code == answer.status_code == 200
    assert answer.json().keys() == baseline.json().keys()
    lines = wait_lines(log_on, before + 1)
    assert len(lines) == before + 1 and lines[-1]["sampled"] is True
    assert lines[-1]["status"] in {"accepted_llm", "fallback_deterministic", "error"}
    assert sim_calls(sim) == calls + 1


def test_bad_bodies_leave_no_user_data_in_logs(
    on: tuple[Server, Path], off: tuple[Server, Path], sim: Server
) -> None:
    """Bad bodies carrying a marker in every field: the marker reaches neither the risk log,
    nor /metrics, nor the server's own output (uvicorn + the app's loggers)."""
    (app_on, log_on), _ = on, off
    marker = "ЖZqприватно"
    body = shopping_command(f"{marker}-id", text=f"add {marker} to my shopping list")
    bodies = [
        json.dumps({**body, "user_id": 5}, ensure_ascii=False).encode(),
        json.dumps({**body, marker: marker}, ensure_ascii=False).encode(),
        json.dumps(body, ensure_ascii=False).encode()[:-3],
        json.dumps({**body, "text": marker * 300}, ensure_ascii=False).encode(),
        marker.encode("utf-16"),
    ]
    for raw in bodies:
        assert post(app_on, raw).status_code == 422
    lines = wait_lines(log_on, len(read_lines(log_on)))
    metrics = httpx.get(f"{app_on.url}/metrics", timeout=5).text
    for text in (json.dumps(lines, ensure_ascii=False), metrics, app_on.output()):
        for window in (marker[i : i + 4] for i in range(len(marker) - 3)):
            assert window.casefold() not in text.casefold()


def crashing_app() -> Any:
    """uvicorn factory: the corridor (configured from the environment) around a baseline that
    crashes on commands containing "crash" and answers that with its own JSON 500."""
    import contextlib

    from partial_trust.middleware.factory import CorridorStack

    stack = CorridorStack.from_env()
    router = crashing_router()

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> Any:
        await stack.start()
        try:
            yield
        finally:
            await stack.stop()

    router.router.lifespan_context = lifespan
    return stack.wrap(router, paths=["/route"])


def test_baseline_own_500_reaches_the_client_over_http(tmp_module: Path, sim: Server) -> None:
    """A baseline that fails with its own 500 answer: the client gets that answer, corridor
    on or off (Starlette sends the handler's response, then re-raises to the server)."""
    answers = []
    for name, enabled in (("crash-off", "false"), ("crash-on", "true")):
        port = free_port()
        env = {
            **BASE_ENV,
            "PARTIAL_TRUST_ENABLED": enabled,
            "LLM_BASE_URL": f"{sim.url}/v1",
            "PARTIAL_TRUST_RISK_LOG_PATH": str(tmp_module / f"{name}.jsonl"),
        }
        argv = [
            PYTHON, "-m", "uvicorn", "tests.integration.test_bad_input_http:crashing_app",
            "--factory", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
        ]  # fmt: skip
        with run_server(
            argv, port=port, ready_path="/health", log_path=tmp_module / f"{name}.log", env=env
        ) as server:
            body = shopping_command("cmd-crash", text="add crash to my shopping list")
            answers.append(post(server, json.dumps(body).encode()))
    off, on = answers
    assert off.status_code == 500 and off.json() == {"error": "baseline_failed"}
    assert (on.status_code, on.content, on.headers.get("content-type")) == (
        off.status_code,
        off.content,
        off.headers.get("content-type"),
    )
