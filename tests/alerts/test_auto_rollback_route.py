"""The auto-rollback receiver that alerts/alertmanager.yml ships enabled.

PartialTrustErrorRateHigh (critical) goes to the flag console's webhook (``POST
/flags/alertmanager`` on the app, bearer token from a file) and still pages; the storm pages
only; warnings go to chat. Real tools: ``amtool`` and ``prometheus-alertmanager`` (Debian
``prometheus-alertmanager``), a local capture server for the webhook, and a real
``partial-trust serve`` whose corridor the shipped config turns off.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from partial_trust.flags import flagfile
from tests.alerts.monitoring import (
    ALERTMANAGER_YML,
    CORRIDOR,
    WebhookReceiver,
    alertmanager_test_config,
    run_alertmanager,
    wait_until,
)
from tests.deploy.compose import bind_mounts, command_args, services
from tests.support.procs import REPO, free_port, partial_trust, require_binary, run_server

PAGE = "PartialTrustErrorRateHigh"
STORM = "PartialTrustRollbackStorm"
TOKEN_PATH = "/etc/alertmanager/secrets/partial-trust-webhook-token"


def _doc() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(ALERTMANAGER_YML.read_text())
    return doc


def _rollback_hook() -> dict[str, Any]:
    [receiver] = [r for r in _doc()["receivers"] if r["name"] == "auto-rollback"]
    [hook] = receiver["webhook_configs"]
    return dict(hook)


def _amtool(*args: str) -> subprocess.CompletedProcess[str]:
    amtool = require_binary("amtool")
    return subprocess.run([amtool, *args], capture_output=True, text=True, timeout=60)


def test_the_receiver_is_enabled_with_a_token_file_and_no_resolutions() -> None:
    hook = _rollback_hook()
    assert hook["url"] == "http://127.0.0.1:8000/flags/alertmanager"  # the app, on loopback
    assert hook["send_resolved"] is False  # a resolution must never resume the corridor
    auth = hook["http_config"]["authorization"]
    assert auth == {"type": "Bearer", "credentials_file": TOKEN_PATH}  # never a literal token
    # compose mounts deploy/secrets/ there, and Alertmanager refuses to start without the file
    secrets = [m for m in bind_mounts() if m.service == "alertmanager" and m.path.is_dir()]
    assert [(m.path, m.target) for m in secrets] == [
        (REPO / "deploy" / "secrets", str(Path(TOKEN_PATH).parent))
    ]
    script = " ".join(command_args(services()["alertmanager"]))
    assert f"test -s {TOKEN_PATH}" in script and f"test -r {TOKEN_PATH}" in script
    # the token file itself is never committed
    git = shutil.which("git")
    assert git is not None
    ignored = subprocess.run(
        [git, "check-ignore", "-q", f"deploy/secrets/{Path(TOKEN_PATH).name}"], cwd=REPO
    )
    assert ignored.returncode == 0, "deploy/secrets/ does not ignore the token file"


def test_amtool_check_config_with_the_token_file_present(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("check-config-token\n")
    copy = tmp_path / "alertmanager.yml"
    copy.write_text(ALERTMANAGER_YML.read_text().replace(TOKEN_PATH, str(token)))
    for config in (copy, ALERTMANAGER_YML):
        proc = _amtool("check-config", str(config))
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "SUCCESS" in proc.stdout and "3 receivers" in proc.stdout


@pytest.mark.parametrize(
    ("alertname", "severity", "receivers"),
    [
        (PAGE, "critical", "auto-rollback,pager"),
        (STORM, "critical", "pager"),
        ("PartialTrustIntentMismatchHigh", "warning", "chat"),
        ("PartialTrustLLMLatencyHigh", "warning", "chat"),
    ],
)
def test_amtool_routes(alertname: str, severity: str, receivers: str) -> None:
    labels = [f"alertname={alertname}", f"severity={severity}", f"corridor={CORRIDOR}"]
    args = ["config", "routes", "test", f"--config.file={ALERTMANAGER_YML}"]
    proc = _amtool(*args, f"--verify.receivers={receivers}", *labels)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip() == receivers


def _post(am_url: str, alertname: str, severity: str, *, ends: bool = False) -> None:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    item: dict[str, Any] = {
        "labels": {"alertname": alertname, "severity": severity, "corridor": CORRIDOR},
        "annotations": {"summary": f"{alertname} in {CORRIDOR}"},
        "endsAt" if ends else "startsAt": now,
    }
    httpx.post(f"{am_url}/api/v2/alerts", json=[item], timeout=5).raise_for_status()


@contextmanager
def _shipped_alertmanager(
    tmp_path: Path, rollback_url: str, token: str
) -> Iterator[tuple[str, WebhookReceiver, WebhookReceiver]]:
    """A real Alertmanager on the shipped config; pager and chat are capture servers."""
    token_file = tmp_path / "partial-trust-webhook-token"
    token_file.write_text(token + "\n")  # as `print(...) > file` writes it
    pager, chat = WebhookReceiver("pager"), WebhookReceiver("chat")
    with pager.running(), chat.running():
        config = alertmanager_test_config(
            pager.url, chat.url, rollback_url=rollback_url, token_file=token_file
        )
        (tmp_path / "am").mkdir()
        with run_alertmanager(tmp_path / "am", config) as am:
            yield am.url, pager, chat


@pytest.mark.integration
def test_the_critical_alert_reaches_the_webhook_with_the_token(tmp_path: Path) -> None:
    hook = WebhookReceiver("flags/alertmanager")
    with hook.running(), _shipped_alertmanager(tmp_path, hook.url, "t0ken-from-file") as run:
        am_url, pager, chat = run
        _post(am_url, "PartialTrustIntentMismatchHigh", "warning")
        _post(am_url, STORM, "critical")
        assert chat.wait_for(lambda r: bool(r.alerts()), timeout_s=15), "no chat message"
        assert pager.wait_for(lambda r: bool(r.alerts()), timeout_s=15), "the storm did not page"
        _post(am_url, PAGE, "critical")
        got = hook.wait_for(lambda r: bool(r.alerts()), timeout_s=15)
        assert got is not None, "the error-rate alert never reached the rollback webhook"
        assert got.headers["authorization"] == "Bearer t0ken-from-file"
        assert got.headers["content-type"].startswith("application/json")
        assert got.body["receiver"] == "auto-rollback" and got.body["version"] == "4"
        assert {a["labels"]["alertname"] for a in got.alerts()} == {PAGE}
        # the page reaches a human too
        assert pager.wait_for(
            lambda r: any(a["labels"]["alertname"] == PAGE for a in r.alerts()), timeout_s=15
        )
        _post(am_url, PAGE, "critical", ends=True)
        resolved = pager.wait_for(
            lambda r: any(a["status"] == "resolved" for a in r.alerts()), timeout_s=15
        )
        assert resolved, "the resolution never reached the pager"
        time.sleep(2)  # several group intervals: a resolution to the webhook would be here
        assert not hook.alerts("resolved"), "the resolution was sent to the rollback webhook"
        assert {a["labels"]["alertname"] for a in hook.alerts()} == {PAGE}


@pytest.mark.integration
def test_the_shipped_route_rolls_back_a_real_app(tmp_path: Path) -> None:
    """Only host:port rewritten: the shipped path /flags/alertmanager on `partial-trust serve`,
    the token from the file; the app's flag file says off and the audit log says why."""
    token = "e2e-webhook-token-0123456789"
    flags = tmp_path / "partial-trust.flagd.json"
    shutil.copy(REPO / "flags" / "partial-trust.flagd.json", flags)
    flagfile.resume(flags)
    env = {
        "PARTIAL_TRUST_FLAGS_PROVIDER": "file",
        "PARTIAL_TRUST_FLAGS_FILE": str(flags),
        "PARTIAL_TRUST_FLAGS_AUDIT_LOG": str(tmp_path / "audit.jsonl"),
        "PARTIAL_TRUST_RISK_LOG_PATH": str(tmp_path / "risk.jsonl"),
        "PARTIAL_TRUST_WEBHOOK_TOKEN": token,
    }
    port = free_port()
    argv = partial_trust("serve", "--port", str(port), "--log-level", "warning")
    with run_server(
        argv, port=port, ready_path="/health", log_path=tmp_path / "app.log", env=env
    ) as app:
        url = _rollback_hook()["url"].replace("127.0.0.1:8000", f"127.0.0.1:{port}")
        with _shipped_alertmanager(tmp_path, url, token) as (am_url, _, _):
            _post(am_url, PAGE, "critical")
            off = wait_until(
                lambda: (
                    flagfile.served_value(flagfile.load(flags).flags[flagfile.ENABLED])[0] is False
                ),
                timeout_s=15,
            )
            assert off, app.output()[-2000:]
        audit = (tmp_path / "audit.jsonl").read_text()
        assert '"source": "auto-rollback"' in audit or '"source":"auto-rollback"' in audit
