"""deploy/prometheus.yml scrapes the flag console's metrics (``/flags/metrics``).

The console (``apps/console``) has its own registry, served on its own ``/metrics``: mounted
at ``/flags`` in the reference app that is ``/flags/metrics``, which the app's ``/metrics`` does
not include. PartialTrustRollbackStorm reads it, so without the ``partial-trust-flag-console``
job the storm alert could never fire.

Checked here: the shipped job's path and target; the path answers with the storm gauge on the
real reference app (in process), and only to loopback or with
``PARTIAL_TRUST_CONSOLE_ALLOW_REMOTE_READ``, and the webhook only to loopback: why the compose
file runs Prometheus and Alertmanager on the host network, scraping and posting from 127.0.0.1
with nothing opened; and, with real processes, a real Prometheus running the shipped scrape
jobs (the target pointed at a free port) and the committed rules pages
PartialTrustRollbackStorm after three auto-rollbacks through the console's Alertmanager webhook.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from partial_trust.environment import Environment
from tests.alerts.monitoring import load_generator, query, run_prometheus, wait_until
from tests.support.procs import REPO, free_port, partial_trust, run_server

PROMETHEUS_YML = REPO / "deploy" / "prometheus.yml"
JOB = "partial-trust-flag-console"
STORM = "PartialTrustRollbackStorm"
CORRIDOR = "add_shopping_item"
WEBHOOK_TOKEN = "scrape-test-webhook-token"


def scrape_jobs() -> dict[str, dict[str, Any]]:
    doc = yaml.safe_load(PROMETHEUS_YML.read_text())
    return {job["job_name"]: job for job in doc["scrape_configs"]}


def targets(job: Mapping[str, Any]) -> list[str]:
    return [t for c in job["static_configs"] for t in c["targets"]]


def console_env(tmp_path: Path) -> dict[str, str]:
    """The reference app on the committed flag file (a copy) with its own audit log."""
    flags = tmp_path / "partial-trust.flagd.json"
    flags.write_text((REPO / "flags" / "partial-trust.flagd.json").read_text())
    return {
        "PARTIAL_TRUST_FLAGS_PROVIDER": "file",
        "PARTIAL_TRUST_FLAGS_FILE": str(flags),
        "PARTIAL_TRUST_FLAGS_AUDIT_LOG": str(tmp_path / "audit.jsonl"),
        "PARTIAL_TRUST_RISK_LOG_PATH": str(tmp_path / "risk.jsonl"),
        "PARTIAL_TRUST_WEBHOOK_TOKEN": WEBHOOK_TOKEN,
    }


def test_the_console_job_scrapes_the_apps_flags_metrics() -> None:
    jobs = scrape_jobs()
    assert JOB in jobs, f"no {JOB} job in deploy/prometheus.yml"
    console = jobs[JOB]
    assert console["metrics_path"] == "/flags/metrics"
    # the same app (the reference app mounts the console at /flags) ...
    # on the app's default loopback bind: Prometheus runs on the host network
    assert targets(console) == targets(jobs["partial-trust"]) == ["127.0.0.1:8000"]
    # ... and a job of its own: `up{job=...}` tells a console that refuses the scrape apart
    assert jobs["partial-trust"].get("metrics_path", "/metrics") == "/metrics"
    assert (
        console["static_configs"][0]["labels"]
        == jobs["partial-trust"]["static_configs"][0]["labels"]
    )


async def _get(app: Any, path: str, client_host: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=app, client=(client_host, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
        return await client.get(path)


@pytest.mark.anyio
async def test_the_job_path_serves_the_storm_gauge_on_the_reference_app(tmp_path: Path) -> None:
    from prometheus_client import CollectorRegistry

    from partial_trust.apps.reference.app import create_app

    path = scrape_jobs()[JOB]["metrics_path"]
    env = console_env(tmp_path)
    app = create_app(Environment.from_mapping(env), registry=CollectorRegistry())
    resp = await _get(app, path, "127.0.0.1")
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("text/plain")
    assert f'partial_trust_console_rollback_storm{{corridor="{CORRIDOR}"}} 0.0' in resp.text
    assert f'partial_trust_console_auto_rollbacks_total{{corridor="{CORRIDOR}"}} 0.0' in resp.text
    # the app's own /metrics does not carry them: the job is needed
    assert "partial_trust_console_" not in (await _get(app, "/metrics", "127.0.0.1")).text

    # a Prometheus on a bridge network is another host: refused unless remote reading is on
    assert (await _get(app, path, "172.17.0.2")).status_code == 403
    open_app = create_app(
        Environment.from_mapping({**env, "PARTIAL_TRUST_CONSOLE_ALLOW_REMOTE_READ": "true"}),
        registry=CollectorRegistry(),
    )
    assert (await _get(open_app, path, "172.17.0.2")).status_code == 200


@pytest.mark.anyio
async def test_the_webhook_is_accepted_from_loopback_only(tmp_path: Path) -> None:
    """An Alertmanager on a bridge network could never roll back through the app's console,
    whatever the environment says; on the host network (loopback) it can."""
    from prometheus_client import CollectorRegistry

    from partial_trust.apps.reference.app import create_app

    env = {**console_env(tmp_path), "PARTIAL_TRUST_CONSOLE_ALLOW_REMOTE_READ": "true"}
    app = create_app(Environment.from_mapping(env), registry=CollectorRegistry())
    hook = {"Authorization": f"Bearer {WEBHOOK_TOKEN}"}
    body = _notification("2026-11-23T03:00:00Z")
    for client, status in (("172.17.0.2", 403), ("127.0.0.1", 200)):
        transport = httpx.ASGITransport(app=app, client=(client, 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as http:
            resp = await http.post("/flags/alertmanager", json=body, headers=hook)
        assert resp.status_code == status, (client, resp.text)


def _shipped_config_on(app_target: str, rules: Path) -> str:
    """deploy/prometheus.yml with its partial-trust jobs pointed at a local app, 1 s intervals
    and a local copy of the rules; the jobs' paths and labels stay as shipped."""
    doc = yaml.safe_load(PROMETHEUS_YML.read_text())
    doc["global"]["scrape_interval"] = doc["global"]["evaluation_interval"] = "1s"
    doc["rule_files"] = [str(rules)]
    doc.pop("alerting", None)
    jobs = [j for j in doc["scrape_configs"] if j["job_name"].startswith("partial-trust")]
    assert {j["job_name"] for j in jobs} == {"partial-trust", JOB}
    for job in jobs:
        for static in job["static_configs"]:
            static["targets"] = [app_target for _ in static["targets"]]
    doc["scrape_configs"] = jobs
    return yaml.safe_dump(doc, sort_keys=False)


def _notification(starts_at: str) -> dict[str, Any]:
    """Alertmanager's webhook body (version 4): a new firing of the error-rate page."""
    return {
        "version": "4",
        "status": "firing",
        "receiver": "pager",
        "alerts": [
            {
                "status": "firing",
                "labels": {
                    "alertname": "PartialTrustErrorRateHigh",
                    "severity": "critical",
                    "corridor": CORRIDOR,
                },
                "annotations": {"summary": "LLM error rate above 5% - roll back now"},
                "startsAt": starts_at,
                "fingerprint": "5c0e11a7e5c0e11a",
            }
        ],
    }


def _firing(prom: Any) -> list[dict[str, Any]]:
    resp = httpx.get(f"{prom.url}/api/v1/alerts", timeout=10)
    alerts: list[dict[str, Any]] = resp.json()["data"]["alerts"]
    return [a for a in alerts if a["labels"]["alertname"] == STORM and a["state"] == "firing"]


@pytest.mark.integration
def test_shipped_scrape_job_collects_the_storm_and_the_alert_fires(tmp_path: Path) -> None:
    port = free_port()
    rules = tmp_path / "rules.yml"
    rules.write_text(load_generator().render("1s"))  # the committed rules, short for:
    argv = partial_trust("serve", "--port", str(port), "--log-level", "warning")
    with run_server(
        argv,
        port=port,
        ready_path="/health",
        log_path=tmp_path / "app.log",
        env=console_env(tmp_path),
    ) as app:
        (tmp_path / "prom").mkdir()
        config = _shipped_config_on(f"127.0.0.1:{port}", rules)
        with run_prometheus(tmp_path / "prom", config) as prom:

            def value(expr: str) -> float | None:
                result = query(prom, expr)["data"]["result"]
                return float(result[0]["value"][1]) if result else None

            storm = f'partial_trust_console_rollback_storm{{job="{JOB}",corridor="{CORRIDOR}"}}'
            assert wait_until(lambda: value(f'up{{job="{JOB}"}}') == 1, 20), app.output()[-2000:]
            assert wait_until(lambda: value(storm) == 0, 10)
            assert not _firing(prom)

            # three new firings of the page: three auto-rollbacks, a storm
            hook = {"Authorization": f"Bearer {WEBHOOK_TOKEN}"}
            for minute in ("01", "02", "03"):
                body = _notification(f"2026-11-23T03:{minute}:00Z")
                resp = httpx.post(f"{app.url}/flags/alertmanager", json=body, headers=hook)
                assert resp.status_code == 200, resp.text
                assert resp.json()["alerts"][0]["result"] == "rolled_back", resp.text
            audit = (tmp_path / "audit.jsonl").read_text().splitlines()
            assert [json.loads(line)["source"] for line in audit] == ["auto-rollback"] * 3

            assert wait_until(lambda: value(storm) == 1, 10), app.output()[-2000:]
            assert wait_until(lambda: bool(_firing(prom)), 20), query(prom, "ALERTS")
            [alert] = _firing(prom)
            assert alert["labels"] == {
                "alertname": STORM,
                "corridor": CORRIDOR,
                "severity": "critical",
            }
            assert (
                alert["annotations"]["runbook_url"]
                == "https://partial-trust.example/alerts/playbooks.md#partialtrustrollbackstorm"
            )
            assert "3 recorded in its audit log" in alert["annotations"]["description"]
