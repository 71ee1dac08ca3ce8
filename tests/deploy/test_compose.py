"""docker-compose.monitoring.yaml and deploy/: what the stack needs to work as shipped.

No Docker engine runs here, so the stack is never started. Checked, on the configuration a real
compose parser resolves (tests/deploy/compose.py): every service has a healthcheck that its
image can run; the Grafana password comes from the environment (no default); no port or admin
endpoint listens on a public interface; every file mounted is in the repository; and the
mounts agree with what each service reads. The flag directory mount is in test_flag_mount.py,
the Alertmanager side in tests/alerts/test_auto_rollback_route.py.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from tests.deploy.compose import (
    COMPOSE,
    DEPLOY,
    GRAFANA_TEST_PASSWORD,
    SERVICES,
    Mount,
    bind_mounts,
    command_args,
    mounts,
    published,
    raw,
    run_config,
    services,
)
from tests.support.procs import REPO, require_binary

# (service, port its healthcheck must probe): the port each service listens on, as configured
HEALTH_PORTS = {
    "prometheus": 9090,  # --web.listen-address
    "alertmanager": 9093,  # --web.listen-address
    "grafana": 3000,  # GF_SERVER_HTTP_PORT
    "flagd": 8014,  # flagd's management port (default), /readyz
    "otel-collector": 13133,  # deploy/otel-collector.yaml health_check extension
    "jaeger": 14269,  # all-in-one admin port, / is its health status
}
ONE_SHOT = "healthcheck-tools"


def test_compose_file_passes_the_compose_parser() -> None:
    proc = run_config("-q", env={"GRAFANA_ADMIN_PASSWORD": GRAFANA_TEST_PASSWORD})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    listed = run_config("--services", env={"GRAFANA_ADMIN_PASSWORD": GRAFANA_TEST_PASSWORD})
    assert set(listed.stdout.split()) == SERVICES


def test_grafana_admin_password_comes_from_the_environment() -> None:
    proc = run_config("-q")
    assert proc.returncode != 0, "compose accepted the file without GRAFANA_ADMIN_PASSWORD"
    assert "GRAFANA_ADMIN_PASSWORD" in proc.stderr, proc.stderr
    declared = raw()["services"]["grafana"]["environment"]["GF_SECURITY_ADMIN_PASSWORD"]
    assert declared.startswith("${GRAFANA_ADMIN_PASSWORD:?"), declared
    grafana = services()["grafana"]["environment"]
    assert grafana["GF_SECURITY_ADMIN_PASSWORD"] == GRAFANA_TEST_PASSWORD
    assert grafana["GF_USERS_ALLOW_SIGN_UP"] == "false"
    assert grafana["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    for text in (COMPOSE.read_text(), (DEPLOY / "README.md").read_text()):
        assert "admin/admin" not in text
        assert "GF_SECURITY_ADMIN_PASSWORD: admin" not in text


def test_every_service_has_a_healthcheck_its_image_can_run() -> None:
    found = services()
    assert set(found) - {ONE_SHOT} == set(HEALTH_PORTS)
    for name, port in HEALTH_PORTS.items():
        service = found[name]
        assert "healthcheck" in service, f"{name} has no healthcheck"
        test = service["healthcheck"]["test"]
        # exec form: no shell needed (flagd and the collector have none)
        assert test[0] == "CMD", (name, test)
        assert test[-1].startswith(f"http://127.0.0.1:{port}/"), (name, test)
        if test[1].startswith("/healthcheck/"):
            # images without wget: the static busybox copied by the one-shot service
            targets = {m.target: m.source for m in _volumes(name)}
            assert targets.get("/healthcheck") == ONE_SHOT, (name, targets)
            condition = service["depends_on"][ONE_SHOT]["condition"]
            assert condition == "service_completed_successfully", name
        else:
            assert test[1] in {"wget", "curl"}, (name, test)
    tools = found[ONE_SHOT]
    assert tools["restart"] == "no"
    assert tools["image"].endswith("-uclibc"), "the statically linked busybox variant"
    script = tools["command"][-1]
    assert script.startswith("cp /bin/busybox /healthcheck/"), script
    assert script.endswith(" /healthcheck/busybox"), "the path the healthchecks run"


def _volumes(service: str) -> list[Mount]:
    return [m for m in mounts() if m.service == service]


def test_dependants_wait_for_healthy_services() -> None:
    found = services()
    assert found["prometheus"]["depends_on"]["alertmanager"]["condition"] == "service_healthy"
    for dependency in ("prometheus", "alertmanager"):
        assert found["grafana"]["depends_on"][dependency]["condition"] == "service_healthy"
    assert found["otel-collector"]["depends_on"]["jaeger"]["condition"] == "service_healthy"


def test_nothing_listens_on_a_public_interface() -> None:
    found = services()
    for name, service in found.items():
        for address, port in published(service):
            assert address == "127.0.0.1", f"{name} publishes {port} on all interfaces"
    host_network = {n for n, s in found.items() if s.get("network_mode") == "host"}
    assert host_network == {"prometheus", "alertmanager", "grafana"}
    for name in host_network:
        assert not found[name].get("ports"), f"{name}: ports mean nothing on the host network"
    prometheus = command_args(found["prometheus"])
    assert "--web.listen-address=127.0.0.1:9090" in prometheus
    # admin endpoints (reload/shutdown, TSDB deletion) stay off
    admin = ("--web.enable-lifecycle", "--web.enable-admin")
    assert not [a for a in prometheus if a.startswith(admin)], prometheus
    alertmanager = command_args(found["alertmanager"])
    assert "--web.listen-address=127.0.0.1:9093" in alertmanager
    assert "--cluster.listen-address=" in alertmanager  # else gossip on 0.0.0.0:9094
    assert found["grafana"]["environment"]["GF_SERVER_HTTP_ADDR"] == "127.0.0.1"
    datasources = yaml.safe_load(
        (REPO / "dashboards/provisioning/datasources/partial-trust.yaml").read_text()
    )
    urls = {d["type"]: d["url"] for d in datasources["datasources"]}
    assert urls == {"prometheus": "http://127.0.0.1:9090", "alertmanager": "http://127.0.0.1:9093"}


def test_every_mounted_file_exists_in_the_repo() -> None:
    binds = bind_mounts()
    assert len(binds) >= 8
    missing = [(m.service, m.source) for m in binds if not m.path.exists()]
    assert not missing, missing
    for mount in binds:
        assert mount.path.resolve().is_relative_to(REPO), mount


def test_mounts_match_what_the_services_read() -> None:
    found = services()
    mounted = {(m.service, m.target): m.path for m in bind_mounts()}
    assert mounted[("prometheus", "/etc/prometheus/prometheus.yml")] == DEPLOY / "prometheus.yml"
    assert mounted[("prometheus", "/etc/prometheus/alerts")] == REPO / "alerts"
    assert mounted[("alertmanager", "/etc/alertmanager/alertmanager.yml")] == (
        REPO / "alerts" / "alertmanager.yml"
    )
    assert mounted[("alertmanager", "/etc/alertmanager/secrets")] == DEPLOY / "secrets"
    assert "--config.file=/etc/alertmanager/alertmanager.yml" in command_args(found["alertmanager"])
    assert mounted[("otel-collector", "/etc/otelcol-contrib/config.yaml")] == (
        DEPLOY / "otel-collector.yaml"
    )
    prom = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    assert prom["rule_files"] == ["/etc/prometheus/alerts/partial-trust.rules.yml"]
    targets = {
        job["job_name"]: t
        for job in prom["scrape_configs"]
        for c in job["static_configs"]
        for t in c["targets"]
    }
    # host network: the app on its default loopback bind, the others on their published ports
    assert targets["partial-trust"] == targets["partial-trust-flag-console"] == "127.0.0.1:8000"
    assert targets["flagd"] == "127.0.0.1:8014"
    assert targets["otel-collector"] == "127.0.0.1:8888"
    assert prom["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == [
        "127.0.0.1:9093"
    ]
    published_ports = {p for s in found.values() for _, p in published(s)}
    assert {"8014", "8888"} <= published_ports


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
    assert services()["jaeger"]["environment"]["COLLECTOR_OTLP_ENABLED"] == "true"
    # the healthcheck's endpoint is an enabled extension
    assert doc["service"]["extensions"] == ["health_check"]
    endpoint = doc["extensions"]["health_check"]["endpoint"]
    assert endpoint.endswith(f":{HEALTH_PORTS['otel-collector']}")
