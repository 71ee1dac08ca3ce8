"""Shared pieces of the console tests: the app in-process, its credentials, alert payloads."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from starlette.applications import Starlette

from partial_trust.apps.console import create_console_app
from partial_trust.environment import Environment
from tests.support.procs import PYTHON, Server, free_port, run_server

REPO = Path(__file__).resolve().parents[3]
SHIPPED = REPO / "flags" / "partial-trust.flagd.json"
TOKEN = "console-token-0123456789abcdef"
WEBHOOK_TOKEN = "webhook-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
HOOK_AUTH = {"Authorization": f"Bearer {WEBHOOK_TOKEN}"}
CORRIDOR = "add_shopping_item"


def copy_flags(tmp_path: Path) -> Path:
    path = tmp_path / "partial-trust.flagd.json"
    shutil.copy(SHIPPED, path)
    return path


def make_console(tmp_path: Path, flags: Path, **kwargs: Any) -> Starlette:
    options: dict[str, Any] = {
        "audit_path": tmp_path / "audit.jsonl",
        "token": TOKEN,
        "webhook_token": WEBHOOK_TOKEN,
        "risk_log_path": tmp_path / "risk.jsonl",
        "env": Environment.from_mapping({}),
    }
    options.update(kwargs)
    return create_console_app(flags, **options)


def client(app: Starlette, host: str = "127.0.0.1") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(host, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8090")


def audit_lines(tmp_path: Path) -> list[dict[str, Any]]:
    path = tmp_path / "audit.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def served(flags: Path, key: str) -> object:
    doc = json.loads(flags.read_text())
    flag = doc["flags"][key]
    return flag["variants"][flag["defaultVariant"]]


def alert(
    status: str = "firing",
    *,
    fingerprint: str = "3f1c2a9b8d7e6f50",
    starts_at: str = "2026-11-23T03:00:00Z",
    corridor: str = CORRIDOR,
    alertname: str = "PartialTrustErrorRateHigh",
    severity: str = "critical",
) -> dict[str, Any]:
    return {
        "status": status,
        "labels": {"alertname": alertname, "severity": severity, "corridor": corridor},
        "annotations": {"summary": "LLM error rate above 5% - roll back now"},
        "startsAt": starts_at,
        "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else "2026-11-23T03:10:00Z",
        "generatorURL": "http://prometheus/graph",
        "fingerprint": fingerprint,
    }


def notification(*alerts: dict[str, Any]) -> dict[str, Any]:
    """Alertmanager's webhook body, version 4."""
    firing = any(a["status"] == "firing" for a in alerts)
    return {
        "version": "4",
        "groupKey": '{}/{severity="critical"}:{alertname="PartialTrustErrorRateHigh"}',
        "truncatedAlerts": 0,
        "status": "firing" if firing else "resolved",
        "receiver": "pager",
        "groupLabels": {"alertname": "PartialTrustErrorRateHigh", "corridor": CORRIDOR},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": list(alerts),
    }


@contextmanager
def console_process(
    tmp: Path, flags: Path, risk_log: Path, *options: str, **env: str
) -> Iterator[Server]:
    port = free_port()
    argv = [
        PYTHON,
        "-m",
        "partial_trust.apps.console",
        "--port",
        str(port),
        "--file",
        str(flags),
        "--audit-log",
        str(tmp / "audit.jsonl"),
        "--risk-log",
        str(risk_log),
        "--log-level",
        "warning",
        *options,
    ]
    with run_server(
        argv,
        port=port,
        ready_path="/health",
        log_path=tmp / "console.log",
        env={"PARTIAL_TRUST_CONSOLE_TOKEN": TOKEN, **env},
    ) as server:
        yield server
