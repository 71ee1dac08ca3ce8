"""`partial-trust serve` against slowloris, stalled uploads and idle connections (real uvicorn).

Both HTTP parsers (h11, and httptools from uvicorn[standard]) run the same cases. Timeouts are
set short (2 s) so that the test is quick; bounds are generous (the machine is busy).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from partial_trust.apps.reference import serve_limits
from partial_trust.environment import Environment
from tests.apps.console.helpers import TOKEN, console_process, copy_flags
from tests.integration.slow_clients import Held, Probe, hold, probe_health, request_slowly
from tests.support.procs import REPO, Server, free_port, partial_trust, run_server

pytestmark = pytest.mark.integration
TIMEOUT_S = 2.0
SLACK_S = 8.0
HOSTILE = 60  # of each kind


@contextmanager
def start(tmp: Path, *options: str) -> Iterator[Server]:
    port = free_port()
    env = {
        "PARTIAL_TRUST_FLAGS_PROVIDER": "env",
        "PARTIAL_TRUST_HASH_KEY": "serve-limits-test",
        "PARTIAL_TRUST_RISK_LOG_PATH": str(tmp / "risk.jsonl"),
        "PARTIAL_TRUST_FLAGS_FILE": str(REPO / "flags" / "partial-trust.flagd.json"),
        "PARTIAL_TRUST_FLAGS_AUDIT_LOG": str(tmp / "audit.jsonl"),
    }
    argv = partial_trust("serve", "--port", str(port), "--log-level", "warning", *options)
    log = tmp / "serve.log"
    with run_server(argv, port=port, ready_path="/health", log_path=log, env=env) as server:
        yield server


@pytest.fixture(scope="module", params=["h11", "httptools"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp(f"serve-{request.param}")
    limits = ["--header-timeout", "2", "--body-timeout", "2", "--keep-alive", "1"]
    with start(tmp, *limits, "--max-header-bytes", "4096", "--http", request.param) as srv:
        yield srv


def test_slowloris_stalled_uploads_and_idle_connections_are_closed(server: Server) -> None:
    async def run() -> tuple[list[Held], Probe]:
        probe, stop = Probe(), asyncio.Event()
        prober = asyncio.create_task(probe_health(server.port, probe, stop))
        give_up = TIMEOUT_S + SLACK_S + 2
        kinds = ["slowloris"] * HOSTILE + ["upload"] * HOSTILE + ["idle"] * 20
        held = await asyncio.gather(*(hold(server.port, k, give_up_s=give_up) for k in kinds))
        stop.set()
        await prober
        return list(held), probe

    started = time.monotonic()
    held, probe = asyncio.run(run())
    assert time.monotonic() - started < 30
    output = server.output()[-2000:]
    for h in held:
        assert h.closed is not None, f"{h.kind} still open after {h.held_s:.1f} s\n{output}"
        assert TIMEOUT_S - 0.5 <= h.held_s <= TIMEOUT_S + SLACK_S, (h.kind, h.held_s)
        assert h.status == 408, (h.kind, h.received[:200])
        assert b"connection: close" in h.received.lower()
    slow = [h for h in held if h.kind == "slowloris"]
    assert all(h.sent >= 1 for h in slow)  # they did trickle: each byte used to reset uvicorn
    assert b"request head did not arrive" in slow[0].received
    assert b"request body did not arrive" in next(h for h in held if h.kind == "upload").received
    assert "Exception in ASGI" not in server.output()  # a cut-off upload is no app error
    # /health kept answering while 140 hostile connections were held
    assert len(probe.statuses) >= 4 and set(probe.statuses) == {200}, probe.statuses
    assert max(probe.latencies) < 2.0, probe.latencies


def test_slow_but_in_time_requests_are_answered_on_one_connection(server: Server) -> None:
    async def run() -> list[bytes]:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        get = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        answers = [await request_slowly(writer, reader, get, over_s=1.2)]
        await asyncio.sleep(0.5)  # idle, shorter than the keep-alive
        answers.append(await request_slowly(writer, reader, get, over_s=1.2))
        body = b'{"not": "a command"}'
        post = (
            b"POST /route HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        answers.append(await request_slowly(writer, reader, post, over_s=1.2))
        # then idle: the keep-alive (1 s) closes it
        closed_after = time.monotonic()
        assert await asyncio.wait_for(reader.read(), timeout=TIMEOUT_S + SLACK_S) == b""
        answers.append(b"%.2f" % (time.monotonic() - closed_after))
        writer.close()
        return answers

    first, second, route, idle_s = asyncio.run(run())
    # 3 x 1.2 s on one connection: more than the 2 s head timeout in total, each within it
    assert first.startswith(b"HTTP/1.1 200") and second.startswith(b"HTTP/1.1 200")
    assert route.startswith(b"HTTP/1.1 422"), route[:200]
    assert float(idle_s) < 1 + SLACK_S


def test_pipelined_requests_and_a_body_split_anywhere_are_answered(server: Server) -> None:
    body = b'{"not": "a command"}'
    post = (
        b"POST /route HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    get = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    last = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"

    async def run() -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        whole = get + post + get + post + last
        for i in range(0, len(whole), 37):  # heads and bodies split at awkward places
            writer.write(whole[i : i + 37])
            await asyncio.sleep(0.01)
        answer = await asyncio.wait_for(reader.read(), timeout=TIMEOUT_S + SLACK_S)
        writer.close()
        return answer

    answer = asyncio.run(run())
    statuses = [int(code) for code in re.findall(rb"HTTP/1\.1 (\d{3}) ", answer)]
    assert statuses == [200, 422, 200, 422, 200], answer[:500]


def test_an_oversized_head_is_refused(server: Server) -> None:
    async def run() -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 20000)
        data = await asyncio.wait_for(reader.read(), timeout=TIMEOUT_S + SLACK_S)
        writer.close()
        return data

    data = asyncio.run(run())
    assert data.split()[1] in {b"431", b"400"}, data[:200]  # 400: h11's own limit, same size


def test_the_console_host_check_is_on_in_serve(server: Server) -> None:
    async def get(host: bytes) -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        head = b"GET /flags/api/state HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n"
        writer.write(head % host)
        data = await asyncio.wait_for(reader.read(), timeout=10)
        writer.close()
        return data

    assert asyncio.run(get(b"attacker.example")).startswith(b"HTTP/1.1 400")
    assert asyncio.run(get(b"127.0.0.1:%d" % server.port)).startswith(b"HTTP/1.1 200")


def test_the_concurrency_limit_sheds_and_recovers(tmp_path: Path) -> None:
    limits = ["--header-timeout", "2", "--limit-concurrency", "20", "--http", "h11"]
    with start(tmp_path, *limits) as srv:

        async def run() -> tuple[int, int]:
            conns = [await asyncio.open_connection("127.0.0.1", srv.port) for _ in range(25)]
            await asyncio.sleep(0.3)
            during = await status_of(srv.port)
            for reader, _ in conns:  # the header timeout frees them
                await asyncio.wait_for(reader.read(), timeout=TIMEOUT_S + SLACK_S)
            after = await status_of(srv.port)
            for _, writer in conns:
                writer.close()
            return during, after

        assert asyncio.run(run()) == (503, 200)


async def status_of(port: int) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    data = await asyncio.wait_for(reader.read(), timeout=10)
    writer.close()
    return int(data.split()[1])


def test_options_over_variables_over_defaults() -> None:
    import argparse

    parser = argparse.ArgumentParser()
    serve_limits.add_arguments(parser)
    env = {"PARTIAL_TRUST_SERVE_HEADER_TIMEOUT_S": "7", "PARTIAL_TRUST_SERVE_BODY_TIMEOUT_S": "9"}
    limits = serve_limits.from_args(
        parser.parse_args(["--body-timeout", "3"]), Environment.from_mapping(env)
    )
    assert (limits.header_timeout_s, limits.body_timeout_s) == (7.0, 3.0)
    assert limits.limit_concurrency == serve_limits.ServeLimits().limit_concurrency == 1000
    exported = limits.env_vars()
    assert serve_limits.from_env(Environment.from_mapping(exported)) == limits
    options = limits.uvicorn_options()
    assert options["timeout_keep_alive"] == 5 and options["ws"] == "none"
    assert options["http"].startswith("partial_trust.apps.reference.serve_protocol")


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        (["--header-timeout", "0"], {}, "--header-timeout"),
        (["--limit-concurrency", "-1"], {}, "--limit-concurrency"),
        (["--http", "zttp"], {}, "--http"),
        ([], {"PARTIAL_TRUST_SERVE_BODY_TIMEOUT_S": "soon"}, "PARTIAL_TRUST_SERVE_BODY_TIMEOUT_S"),
    ],
)
def test_bad_limits_stop_serve_before_it_starts(
    argv: list[str],
    env: dict[str, str],
    message: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from partial_trust.apps.reference import serve

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as exc:
        serve.main(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_the_standalone_console_has_the_same_limits(tmp_path: Path) -> None:
    flags = copy_flags(tmp_path)
    options = ("--header-timeout", "1", "--body-timeout", "1")
    with console_process(tmp_path, flags, tmp_path / "risk.jsonl", *options) as console:

        async def run() -> list[Held]:
            kinds = ["idle", "slowloris", "upload"]
            auth = b"Authorization: Bearer %s\r\n" % TOKEN.encode()
            held = (
                hold(console.port, k, give_up_s=12, path="/api/kill", headers=auth) for k in kinds
            )
            return list(await asyncio.gather(*held))

        for h in asyncio.run(run()):
            assert h.closed is not None and h.held_s <= 1 + SLACK_S, (h.kind, h.held_s)
            assert h.status == 408, (h.kind, h.received[:200])
        assert "Exception in ASGI" not in console.output()

        async def state(host: bytes) -> int:
            reader, writer = await asyncio.open_connection("127.0.0.1", console.port)
            head = b"GET /api/state HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n"
            writer.write(head % host)
            data = await asyncio.wait_for(reader.read(), timeout=10)
            writer.close()
            return int(data.split()[1])

        assert asyncio.run(state(b"attacker.example:8090")) == 400
        assert asyncio.run(state(b"localhost:%d" % console.port)) == 200
