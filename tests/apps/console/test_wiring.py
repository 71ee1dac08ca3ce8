"""Mounting the console under /flags, configuring it from the environment, the standalone CLI."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from partial_trust.apps.console import cli as console_cli
from partial_trust.apps.console import create_console_app_from_env
from partial_trust.apps.console.audit import AuditLog, record
from partial_trust.environment import Environment
from partial_trust.flags import flagfile
from tests.apps.console.helpers import AUTH, TOKEN, WEBHOOK_TOKEN, alert, make_console, notification

pytestmark = pytest.mark.anyio


async def test_mounted_under_flags(tmp_path: Path, flags: Path) -> None:
    host = Starlette(routes=[Mount("/flags", app=make_console(tmp_path, flags))])
    transport = httpx.ASGITransport(app=host, client=("127.0.0.1", 1))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as c:
        page = await c.get("/flags/")
        assert page.status_code == 200 and "TURN OFF NOW" in page.text
        assert (await c.get("/flags", follow_redirects=True)).status_code == 200
        assert (await c.get("/flags/api/state")).json()["flags"]["ok"] is True
        resp = await c.post("/flags/api/kill", json={"reason": "mounted"}, headers=AUTH)
        assert resp.status_code == 200


async def test_configured_from_the_environment(tmp_path: Path, flags: Path) -> None:
    env = {
        "PARTIAL_TRUST_FLAGS_FILE": str(flags),
        "PARTIAL_TRUST_FLAGS_AUDIT_LOG": str(tmp_path / "env-audit.jsonl"),
        "PARTIAL_TRUST_CONSOLE_TOKEN": TOKEN,
        "PARTIAL_TRUST_WEBHOOK_TOKEN": WEBHOOK_TOKEN,
        "PARTIAL_TRUST_RISK_LOG_PATH": str(tmp_path / "risk.jsonl"),
    }
    app = create_console_app_from_env(Environment.from_mapping(env))
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 1))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c:
        resp = await c.post("/api/resume", json={"reason": "env"}, headers=AUTH)
        assert resp.status_code == 200
        hook = {"Authorization": f"Bearer {WEBHOOK_TOKEN}"}
        resp = await c.post("/alertmanager", json=notification(alert()), headers=hook)
        assert resp.json()["alerts"][0]["result"] == "rolled_back"
    lines = AuditLog(tmp_path / "env-audit.jsonl").records()
    assert [line["source"] for line in lines] == ["ui", "auto-rollback"]


async def test_standalone_refuses_foreign_host_names_when_bound_to_loopback(
    tmp_path: Path, flags: Path
) -> None:
    argv = ["--file", str(flags), "--audit-log", str(tmp_path / "a.jsonl")]
    app = console_cli.build_app(console_cli.parser().parse_args(argv))
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 1))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8090") as c:
        assert (await c.get("/api/state")).status_code == 200
        rebound = await c.get("/api/state", headers={"Host": "attacker.example:8090"})
        assert rebound.status_code == 400  # DNS rebinding: the page never reaches the attacker
    proxied = console_cli.parser().parse_args([*argv, "--allowed-host", "console.example"])
    transport = httpx.ASGITransport(app=console_cli.build_app(proxied), client=("127.0.0.1", 1))
    async with httpx.AsyncClient(transport=transport, base_url="http://console.example") as c:
        assert (await c.get("/api/state")).status_code == 200


def test_standalone_defaults() -> None:
    args = console_cli.parser().parse_args([])
    assert (args.host, args.port) == ("127.0.0.1", 8090)
    assert not args.allow_remote_read and not args.allow_remote_changes


def test_cli_changes_can_be_recorded(tmp_path: Path, flags: Path) -> None:
    change = flagfile.kill(flags, reason="from the shell")
    line = record(tmp_path / "audit.jsonl", change, reason="from the shell", actor="bob")
    assert line["source"] == "cli" and line["actor"] == "bob" and line["new"] is False
    assert json.loads((tmp_path / "audit.jsonl").read_text()) == line
    with pytest.raises(ValueError, match="audit source"):
        record(tmp_path / "audit.jsonl", change, reason="x", source="cron")


async def test_the_rollback_alert_name_is_configurable(tmp_path: Path, flags: Path) -> None:
    flagfile.resume(flags)
    argv = ["--file", str(flags), "--audit-log", str(tmp_path / "a.jsonl")]
    args = console_cli.parser().parse_args([*argv, "--rollback-alertname", "MyCorridorDown"])
    hook = {"Authorization": f"Bearer {WEBHOOK_TOKEN}"}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PARTIAL_TRUST_WEBHOOK_TOKEN", WEBHOOK_TOKEN)
        app = console_cli.build_app(args)
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 1))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8090") as c:
        default = await c.post("/alertmanager", json=notification(alert()), headers=hook)
        assert default.json()["alerts"][0]["result"] == "not_matching"
        mine = notification(alert(alertname="MyCorridorDown"))
        resp = await c.post("/alertmanager", json=mine, headers=hook)
        assert resp.json()["alerts"][0]["result"] == "rolled_back"
