"""docker-compose.monitoring.yaml and deploy/: parsed by real tools, every mount in the repo.

No Docker engine runs here, so the stack is never started; what is checked: the compose file
passes a real compose parser (``docker-compose config``, Debian package ``docker-compose``,
which validates against the compose-spec JSON schema it ships), every host file it mounts
exists, ``promtool check config`` accepts deploy/prometheus.yml, and the mounted paths agree
with what each service reads.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.support.procs import REPO, require_binary

COMPOSE = REPO / "docker-compose.monitoring.yaml"
DEPLOY = REPO / "deploy"


def compose() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return doc


def bind_mounts() -> list[tuple[str, Path, str]]:
    """(service, host path, container path) of every ./relative bind mount."""
    out = []
    for name, service in compose()["services"].items():
        for volume in service.get("volumes", []):
            source, target = volume.split(":")[:2]
            if source.startswith("./"):
                out.append((name, REPO / source, target))
    return out


def test_compose_file_passes_the_compose_parser() -> None:
    binary = require_binary("docker-compose")
    proc = subprocess.run(
        [binary, "-f", str(COMPOSE), "config", "-q"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    resolved = subprocess.run(
        [binary, "-f", str(COMPOSE), "config", "--services"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert set(resolved.stdout.split()) == {
        "prometheus",
        "alertmanager",
        "grafana",
        "flagd",
        "otel-collector",
        "jaeger",
    }


def test_every_mounted_file_exists_in_the_repo() -> None:
    mounts = bind_mounts()
    assert len(mounts) >= 8
    missing = [(svc, str(path)) for svc, path, _ in mounts if not path.exists()]
    assert not missing, missing
    for _, path, _ in mounts:
        assert path.resolve().is_relative_to(REPO), path


def test_mounts_match_what_the_services_read() -> None:
    services = compose()["services"]
    mounted = {(svc, target) for svc, _, target in bind_mounts()}
    assert ("prometheus", "/etc/prometheus/prometheus.yml") in mounted
    assert ("prometheus", "/etc/prometheus/alerts") in mounted
    assert ("alertmanager", "/etc/alertmanager/alertmanager.yml") in mounted
    assert ("flagd", "/etc/flagd/partial-trust.flagd.json") in mounted
    assert "file:/etc/flagd/partial-trust.flagd.json" in services["flagd"]["command"]
    assert ("otel-collector", "/etc/otelcol-contrib/config.yaml") in mounted
    prom = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    assert prom["rule_files"] == ["/etc/prometheus/alerts/partial-trust.rules.yml"]
    targets = [
        t for job in prom["scrape_configs"] for c in job["static_configs"] for t in c["targets"]
    ]
    assert "host.docker.internal:8000" in targets
    assert "host.docker.internal:host-gateway" in services["prometheus"]["extra_hosts"]


def test_prometheus_config_passes_promtool(tmp_path: Path) -> None:
    """promtool also loads the rule files, so point them at the repo's copy."""
    promtool = require_binary("promtool")
    text = (DEPLOY / "prometheus.yml").read_text()
    text = text.replace("/etc/prometheus/alerts/", f"{REPO / 'alerts'}/")
    config = tmp_path / "prometheus.yml"
    config.write_text(text)
    proc = subprocess.run(
        [promtool, "check", "config", str(config)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "rules found" in proc.stdout, proc.stdout


def test_otel_collector_pipeline_is_consistent() -> None:
    """No collector binary here: check the config refers only to what it defines."""
    doc = yaml.safe_load((DEPLOY / "otel-collector.yaml").read_text())
    [pipeline] = doc["service"]["pipelines"].values()
    for kind in ("receivers", "processors", "exporters"):
        assert set(pipeline[kind]) <= set(doc[kind]), kind
    assert doc["exporters"]["otlp/jaeger"]["endpoint"] == "jaeger:4317"
    assert compose()["services"]["jaeger"]["environment"]["COLLECTOR_OTLP_ENABLED"] == "true"
