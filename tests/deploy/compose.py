"""docker-compose.monitoring.yaml as a real compose parser resolves it, for the deploy tests.

``docker-compose config`` (Debian package ``docker-compose``) validates the file against the
compose-spec schema it ships, interpolates ``${VAR:?message}`` and makes bind-mount sources
absolute; the tests read that resolved form, so what they check is what ``up`` would use.
"""

from __future__ import annotations

import functools
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.support.procs import REPO, require_binary

COMPOSE = REPO / "docker-compose.monitoring.yaml"
DEPLOY = REPO / "deploy"
SERVICES = {
    "prometheus",
    "alertmanager",
    "grafana",
    "flagd",
    "otel-collector",
    "jaeger",
    "healthcheck-tools",
}
# A test value for the variable the file requires; never a real password.
GRAFANA_TEST_PASSWORD = "compose-test-only-3f9c1a"


def run_config(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    binary = require_binary("docker-compose")
    base = {k: v for k, v in os.environ.items() if k != "GRAFANA_ADMIN_PASSWORD"}
    return subprocess.run(
        [binary, "-f", str(COMPOSE), "config", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env={**base, **(env or {})},
    )


@functools.cache
def resolved() -> dict[str, Any]:
    """The resolved configuration, with the Grafana password set as an operator would."""
    proc = run_config(env={"GRAFANA_ADMIN_PASSWORD": GRAFANA_TEST_PASSWORD})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc: dict[str, Any] = yaml.safe_load(proc.stdout)
    return doc


def raw() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return doc


def services() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = resolved()["services"]
    return found


@dataclass(frozen=True)
class Mount:
    service: str
    source: str  # absolute host path for a bind mount, the volume name otherwise
    target: str
    bind: bool

    @property
    def path(self) -> Path:
        return Path(self.source)


def _mount(service: str, volume: str | dict[str, Any]) -> Mount:
    """docker-compose 1.x prints ``src:dst[:mode]``; Compose v2 prints the long form."""
    if isinstance(volume, dict):
        return Mount(service, volume["source"], volume["target"], volume["type"] == "bind")
    source, target = volume.split(":")[:2]
    return Mount(service, source, target, source.startswith("/"))


def mounts() -> list[Mount]:
    return [
        _mount(name, volume)
        for name, service in services().items()
        for volume in service.get("volumes", [])
    ]


def bind_mounts() -> list[Mount]:
    return [m for m in mounts() if m.bind]


def command_args(service: dict[str, Any]) -> list[str]:
    """The service's command as a list of arguments (a shell script is split on blanks)."""
    command = service.get("command", [])
    parts = [command] if isinstance(command, str) else list(command)
    return [word for part in parts for word in str(part).split()]


def published(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(host address, host port) of every published port; address "" means all interfaces."""
    out = []
    for port in service.get("ports", []):
        if isinstance(port, dict):
            out.append((str(port.get("host_ip", "")), str(port.get("published", ""))))
            continue
        spec = str(port).split("/")[0]
        parts = spec.split(":")
        if len(parts) == 3:
            out.append((parts[0], parts[1]))
        elif len(parts) == 2:
            out.append(("", parts[0]))
        else:
            out.append(("", parts[0]))  # container port only: a random port on all interfaces
    return out
