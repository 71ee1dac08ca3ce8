"""Real Prometheus, Alertmanager, webhook receivers and app traffic for the monitoring tests.

Everything binds 127.0.0.1 on a free port and runs from the Debian packages ``prometheus`` and
``prometheus-alertmanager`` (``require_binary``: skipped locally when missing, a failure under
``CI=true``).
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import shutil
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import yaml

from tests.support.procs import REPO, Server, free_port, require_binary, run_server

ALERTS_DIR = REPO / "alerts"
RULES = ALERTS_DIR / "partial-trust.rules.yml"
ALERTMANAGER_YML = ALERTS_DIR / "alertmanager.yml"
DASHBOARD = REPO / "dashboards" / "partial-trust-corridor.json"
CORRIDOR = "add_shopping_item"


def load_generator() -> ModuleType:
    """``alerts/generate.py`` (alerts/ is not a package)."""
    spec = importlib.util.spec_from_file_location("alerts_generate", ALERTS_DIR / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their module while being created
    spec.loader.exec_module(module)
    return module


def alertmanager_binary() -> str:
    """Upstream calls it ``alertmanager``; Debian ships ``prometheus-alertmanager``."""
    return shutil.which("alertmanager") or require_binary("prometheus-alertmanager")


# -- webhook receivers -----------------------------------------------------------------------


@dataclass
class Received:
    at: float  # time.monotonic() on arrival
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)  # names in lower case

    def alerts(self) -> list[dict[str, Any]]:
        return list(self.body.get("alerts", []))


@dataclass
class WebhookReceiver:
    """A tiny HTTP server recording every Alertmanager webhook POST."""

    name: str
    port: int = field(default_factory=free_port)
    received: list[Received] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/{self.name}"

    def alerts(self, status: str | None = None) -> list[dict[str, Any]]:
        found = [a for r in list(self.received) for a in r.alerts()]
        return [a for a in found if status is None or a.get("status") == status]

    def wait_for(self, predicate: Any, timeout_s: float) -> Received | None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for item in list(self.received):
                if predicate(item):
                    return item
            time.sleep(0.05)
        return None

    @contextmanager
    def running(self) -> Iterator[WebhookReceiver]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                headers = {k.lower(): v for k, v in self.headers.items()}
                receiver.received.append(Received(time.monotonic(), body, headers))
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)


# -- config copies for tests -----------------------------------------------------------------


def alertmanager_test_config(
    pager_url: str,
    chat_url: str,
    *,
    rollback_url: str | None = None,
    token_file: Path | None = None,
    fast: bool = True,
) -> str:
    """``alerts/alertmanager.yml`` with the receivers' URLs pointed at local webhooks.

    Routing, grouping and inhibition stay exactly as committed; ``fast`` only shortens the
    waits (group_wait/group_interval) so a test sees notifications within seconds. The
    ``auto-rollback`` receiver goes to ``rollback_url`` with its bearer token read from
    ``token_file`` (the committed path is a container path); without ``rollback_url`` it keeps
    its route but delivers nowhere (a receiver with no integration).
    """
    doc = yaml.safe_load(ALERTMANAGER_YML.read_text())
    urls = {"pager": pager_url, "chat": chat_url}
    for receiver in doc["receivers"]:
        if receiver["name"] == "auto-rollback":
            if rollback_url is None:
                receiver.pop("webhook_configs")
                continue
            for hook in receiver["webhook_configs"]:
                hook["url"] = rollback_url
                if token_file is not None:
                    hook["http_config"]["authorization"]["credentials_file"] = str(token_file)
            continue
        for hook in receiver.get("webhook_configs", []):
            hook["url"] = urls[receiver["name"]]
    if fast:
        routes = [doc["route"], *doc["route"].get("routes", [])]
        for route in routes:
            for key, value in (("group_wait", "0s"), ("group_interval", "1s")):
                if key in route or route is doc["route"]:
                    route[key] = value
    return yaml.safe_dump(doc, sort_keys=False)


def prometheus_config(
    *, targets: Sequence[str], rule_files: Sequence[Path], alertmanager: str | None, interval: str
) -> str:
    doc: dict[str, Any] = {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "rule_files": [str(p) for p in rule_files],
        "scrape_configs": [
            {"job_name": "partial-trust", "static_configs": [{"targets": list(targets)}]}
        ],
    }
    if alertmanager:
        doc["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]}
    return yaml.safe_dump(doc, sort_keys=False)


# -- processes ---------------------------------------------------------------------------------


@contextmanager
def run_prometheus(workdir: Path, config_text: str) -> Iterator[Server]:
    binary = require_binary("prometheus")
    port = free_port()
    config = workdir / "prometheus.yml"
    config.write_text(config_text)
    argv = [
        binary,
        f"--config.file={config}",
        f"--storage.tsdb.path={workdir / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--log.level=warn",
    ]
    with run_server(
        argv, port=port, ready_path="/-/ready", log_path=workdir / "prometheus.log"
    ) as server:
        yield server


@contextmanager
def run_alertmanager(workdir: Path, config_text: str) -> Iterator[Server]:
    binary = alertmanager_binary()
    port = free_port()
    config = workdir / "alertmanager.yml"
    config.write_text(config_text)
    argv = [
        binary,
        f"--config.file={config}",
        f"--storage.path={workdir / 'am-data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",
        "--log.level=warn",
    ]
    with run_server(
        argv, port=port, ready_path="/-/ready", log_path=workdir / "alertmanager.log"
    ) as server:
        yield server


def query(prometheus: Server, expr: str) -> dict[str, Any]:
    """``/api/v1/query``; returns the whole JSON answer (``status``, ``data``, ``error``)."""
    resp = httpx.post(f"{prometheus.url}/api/v1/query", data={"query": expr}, timeout=10)
    result: dict[str, Any] = resp.json()
    return result


def wait_until(predicate: Any, timeout_s: float, step_s: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step_s)
    return False


# -- traffic -----------------------------------------------------------------------------------

_ids = itertools.count()


def command(prefix: str) -> dict[str, Any]:
    """The DESIGN's CommandDTO with a unique command_id."""
    return {
        "command_id": f"{prefix}-{next(_ids)}-{time.monotonic_ns()}",
        "user_id": "u-1",
        "text": "add milk and two eggs to my shopping list",
        "capabilities": ["start_job"],
        "context": {"default_list_id": "l-1", "lists": ["l-1", "l-2"]},
    }


class Traffic:
    """Posts commands to the app's /route from a background thread until stopped."""

    def __init__(self, app_url: str, *, prefix: str, per_second: float = 40.0) -> None:
        self.app_url = app_url
        self.prefix = prefix
        self.period = 1.0 / per_second
        self.sent = 0
        self.statuses: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(timeout=5) as client:
            while not self._stop.is_set():
                started = time.monotonic()
                resp = client.post(f"{self.app_url}/route", json=command(self.prefix))
                self.sent += 1
                self.statuses[resp.status_code] = self.statuses.get(resp.status_code, 0) + 1
                self._stop.wait(max(0.0, self.period - (time.monotonic() - started)))

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
