"""The console's Host allow-list (DNS rebinding), mounted in the reference app and standalone."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry
from starlette.types import ASGIApp, Message

from partial_trust.apps.console import cli as console_cli
from partial_trust.apps.console import hosts
from partial_trust.apps.reference.app import create_app
from partial_trust.environment import BIND_HOST_ENV, Environment
from tests.apps.console.helpers import AUTH, SHIPPED, TOKEN

pytestmark = pytest.mark.anyio
ATTACKER_HOSTS = [
    "attacker.example",
    "attacker.example:8000",
    "127.0.0.1.attacker.example",
    "localhost.attacker.example:8000",
    "127.0.0.2",  # another loopback address is not one of the names
    "[::2]:8000",
    "127.0.0.1@attacker.example",
    "LOCALHOST.",
    "",
]


def app_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    flags = tmp_path / "flags.json"
    flags.write_text(SHIPPED.read_text())
    audit = tmp_path / "audit.jsonl"
    line = {"source": "ui", "actor": "alice", "client": "10.1.2.3", "reason": "secret reason"}
    audit.write_text(json.dumps(line) + "\n")
    return {
        "PARTIAL_TRUST_FLAGS_PROVIDER": "file",
        "PARTIAL_TRUST_FLAGS_FILE": str(flags),
        "PARTIAL_TRUST_FLAGS_AUDIT_LOG": str(audit),
        "PARTIAL_TRUST_RISK_LOG_PATH": str(tmp_path / "risk.jsonl"),
        "PARTIAL_TRUST_CONSOLE_TOKEN": TOKEN,
        "PARTIAL_TRUST_HASH_KEY": "test-key",
        **extra,
    }


async def get(app: ASGIApp, path: str, host: str | None, method: str = "GET") -> tuple[int, str]:
    """One request with exactly this Host header (None: no Host at all), from loopback."""
    headers = [
        (b"content-type", b"application/json"),
        (b"authorization", AUTH["Authorization"].encode()),
    ]
    if host is not None:
        headers.append((b"host", host.encode()))
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8000),
    }
    body = json.dumps({"reason": "rebinding"}).encode() if method == "POST" else b""
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    text = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return int(status), text.decode(errors="replace")


@pytest.fixture
def served(tmp_path: Path) -> ASGIApp:
    return create_app(Environment.from_mapping(app_env(tmp_path)), registry=CollectorRegistry())


@pytest.mark.parametrize("host", [*ATTACKER_HOSTS, None])
@pytest.mark.parametrize("path", ["/flags/", "/flags/api/state"])
async def test_mounted_console_refuses_foreign_hosts_and_shows_nothing(
    served: ASGIApp, host: str | None, path: str
) -> None:
    status, text = await get(served, path, host)
    assert status == 400
    assert "alice" not in text and "10.1.2.3" not in text and "secret" not in text
    assert "TURN OFF NOW" not in text


async def test_mounted_console_refuses_a_rebinding_page_changing_things(
    served: ASGIApp, tmp_path: Path
) -> None:
    before = (tmp_path / "flags.json").read_bytes()
    status, _ = await get(served, "/flags/api/kill", "attacker.example", method="POST")
    assert status == 400
    assert (tmp_path / "flags.json").read_bytes() == before


@pytest.mark.parametrize(
    "host", ["127.0.0.1:8000", "127.0.0.1", "localhost:8000", "LocalHost", "[::1]:8000", "[::1]"]
)
async def test_mounted_console_answers_its_loopback_names(served: ASGIApp, host: str) -> None:
    status, text = await get(served, "/flags/api/state", host)
    assert status == 200 and "alice" in text


async def test_machine_paths_and_the_corridor_are_not_host_checked(served: ASGIApp) -> None:
    # Prometheus and Alertmanager reach these by deployment names (host.docker.internal)
    assert (await get(served, "/flags/metrics", "host.docker.internal:8000"))[0] == 200
    assert (await get(served, "/flags/health", "host.docker.internal:8000"))[0] == 200
    status, text = await get(served, "/flags/alertmanager", "attacker.example", "POST")
    assert status == 403 and "webhook" in text  # reached the console: no webhook token here
    assert (await get(served, "/health", "attacker.example"))[0] == 200
    assert (await get(served, "/route", "attacker.example", method="POST"))[0] == 422


async def test_configured_and_bind_hosts_are_allowed(tmp_path: Path) -> None:
    env = app_env(
        tmp_path,
        **{
            hosts.ALLOWED_HOSTS_ENV: " console.example.org , *.corp.example",
            BIND_HOST_ENV: "10.0.0.5",
        },
    )
    app = create_app(Environment.from_mapping(env), registry=CollectorRegistry())
    for host in ["console.example.org:443", "ops.corp.example", "10.0.0.5:8000", "localhost"]:
        assert (await get(app, "/flags/api/state", host))[0] == 200, host
    for host in ["example.org", "corp.example.evil", "10.0.0.6:8000", "attacker.example"]:
        assert (await get(app, "/flags/api/state", host))[0] == 400, host


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ("LocalHost:8090", "localhost"),
        ("::1", "[::1]"),
        ("[0:0::1]:8000", "[::1]"),
        ("10.0.0.5:80", "10.0.0.5"),
        ("*.corp.example", "*.corp.example"),
        ("*", "*"),
        ("0.0.0.0", None),
        ("::", None),
        ("", None),
    ],
)
def test_host_entries_are_normalised(entry: str, expected: str | None) -> None:
    assert hosts.normalise(entry) == expected


@pytest.mark.parametrize("entry", ["a b", "evil/x", "*evil.com", "a.*.com", "x\u202e", "h:1:2:x"])
def test_malformed_host_entries_are_refused(entry: str) -> None:
    with pytest.raises(ValueError, match="not a host name"):
        hosts.normalise(entry)


async def test_standalone_checks_hosts_on_any_bind(tmp_path: Path, flags: Path) -> None:
    argv = ["--file", str(flags), "--audit-log", str(tmp_path / "a.jsonl")]
    wide = ["--host", "0.0.0.0", "--allow-remote-read"]
    app = console_cli.build_app(console_cli.parser().parse_args([*argv, *wide]))
    transport = httpx.ASGITransport(app=app, client=("192.0.2.7", 1))
    async with httpx.AsyncClient(transport=transport, base_url="http://192.0.2.1:8090") as c:
        assert (await c.get("/api/state", headers={"Host": "attacker.example"})).status_code == 400
        assert (await c.get("/api/state")).status_code == 400  # the machine's IP: not named
        assert (await c.get("/metrics")).status_code == 200  # a scrape by any name
    named = console_cli.parser().parse_args([*argv, *wide, "--allowed-host", "192.0.2.1"])
    transport = httpx.ASGITransport(app=console_cli.build_app(named), client=("192.0.2.7", 1))
    async with httpx.AsyncClient(transport=transport, base_url="http://192.0.2.1:8090") as c:
        assert (await c.get("/api/state")).status_code == 200


async def test_standalone_bind_address_is_a_console_name(tmp_path: Path, flags: Path) -> None:
    argv = ["--file", str(flags), "--audit-log", str(tmp_path / "a.jsonl"), "--host", "127.0.0.5"]
    app = console_cli.build_app(console_cli.parser().parse_args(argv))
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 1))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.5:8090") as c:
        assert (await c.get("/api/state")).status_code == 200
        assert (await c.get("/api/state", headers={"Host": "evil.example"})).status_code == 400
