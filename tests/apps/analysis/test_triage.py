"""``partial-trust triage`` from a real run: every part present and parseable, no user data.

A real ``partial-trust serve`` (file flags, risk log, audit log) answers commands carrying
privacy canaries (command ids, user ids, item names, list ids, free text) through a real
``llm-sim``; a real Prometheus scrapes it with the project's rules plus one always-firing
rule. The bundle is built by the CLI as a subprocess, opened, and every part is checked
against the manifest and parsed; then every byte of the decompressed archive is scanned for
the canaries with the privacy tests' detector (``tests/support/leaks.py``).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import socket
import subprocess
import tarfile
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.alerts.monitoring import prometheus_config, run_prometheus, wait_until
from tests.integration.stack import BASE_ENV, llm_sim, wait_lines
from tests.support.leaks import Secrets, windows
from tests.support.procs import REPO, free_port, partial_trust, run_server

SECRETS = Secrets(
    command_id="жк1-隐私-щ2",
    user_id="юз-ё9-文字",
    items=("жмоёлк", "цфыр隐"),
    lists=("лст-ф1ж", "дчщ-ш2э"),
    foreign_list="чуж-сп-ё",
    words="слово-隐私-ыфв-тест",
)
PARTS = {
    "analysis.json",
    "analysis.html",
    "gate-stage-1.json",
    "gate-stage-2.json",
    "gate-stage-3.json",
    "flag-audit.jsonl",
    "flags.json",
    "health.json",
    "metrics.txt",
    "alerts.json",
    "versions.json",
    "MANIFEST.json",
}
ALWAYS = """groups:
- name: triage-test
  rules:
  - alert: TriageTestAlwaysFiring
    expr: vector(1)
"""


def cli(*args: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        partial_trust(*args), cwd=REPO, capture_output=True, text=True, timeout=timeout, env=env
    )


def commands() -> list[dict[str, Any]]:
    """Commands that put every canary through the corridor (and one outside it)."""
    s = SECRETS
    out = [s.command(command_id=f"{s.command_id}-{i}") for i in range(6)]
    out.append(s.command(text=f"add {s.items[0]} to my shopping list {s.lists[1]}"))
    out.append(s.command(text=f"{s.words} {s.foreign_list}"))  # not a shopping command
    return out


def scan(data: bytes, where: str) -> None:
    haystack = data.decode("utf-8", "replace").casefold()
    leaks = [(v, w) for v in SECRETS.values() for w in sorted(windows(v)) if w in haystack]
    assert not leaks, (where, leaks[:5])


def test_bundle_from_a_real_run(tmp_path: Path) -> None:
    flags_file = tmp_path / "flags.json"
    shutil.copy(REPO / "flags" / "partial-trust.flagd.json", flags_file)
    audit = tmp_path / "audit.jsonl"
    risk = tmp_path / "risk.jsonl"
    env = {
        **BASE_ENV,
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(REPO),
        "PARTIAL_TRUST_FLAGS_PROVIDER": "file",
        "PARTIAL_TRUST_FLAGS_FILE": str(flags_file),
        "PARTIAL_TRUST_FLAGS_AUDIT_LOG": str(audit),
        "PARTIAL_TRUST_RISK_LOG_PATH": str(risk),
    }
    for key, value in (("partial-trust-enabled", "true"), ("partial-trust-sample-rate", "1")):
        done = cli("flags", "set", key, value, "--reason", "triage drill", env=env)
        assert done.returncode == 0, done.stderr
    port = free_port()
    with llm_sim(tmp_path, "--error-rate", "0.2", "--seed", "3") as sim:
        app_env = {**env, "LLM_BASE_URL": f"{sim.url}/v1", "PARTIAL_TRUST_TIMEOUT_MS": "400"}
        argv = partial_trust("serve", "--port", str(port), "--log-level", "warning")
        log = tmp_path / "app.log"
        with run_server(argv, port=port, ready_path="/health", log_path=log, env=app_env) as app:
            bodies = commands()
            with httpx.Client(timeout=10) as client:
                answers = [client.post(f"{app.url}/route", json=b) for b in bodies]
            assert all(a.status_code == 200 for a in answers)
            assert any(SECRETS.items[0] in a.text for a in answers)  # the canaries went through
            with pytest.raises(AssertionError):  # and the detector sees them where they are
                scan(b"".join(a.content for a in answers), "the app's answers")
            lines = wait_lines(risk, len(bodies) - 1)
            assert {r["status"] for r in lines} >= {"accepted_llm"}
            (tmp_path / "prom").mkdir()
            rules = tmp_path / "prom" / "always.yml"
            rules.write_text(ALWAYS)
            config = prometheus_config(
                targets=[f"127.0.0.1:{port}"],
                rule_files=[REPO / "alerts" / "partial-trust.rules.yml", rules],
                alertmanager=None,
                interval="1s",
            )
            with run_prometheus(tmp_path / "prom", config) as prom:
                assert wait_until(lambda: _firing(prom.url), 30)
                out = tmp_path / "out" / "bundle.tar.gz"
                args = ["triage", "--out", str(out), "--risk-log", str(risk)]
                args += ["--app-url", app.url, "--prometheus", prom.url]
                done = cli(*args, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and "unavailable" not in done.stdout, done.stdout
    check_bundle(out.read_bytes(), len(lines))


def _firing(url: str) -> bool:
    alerts = httpx.get(f"{url}/api/v1/alerts", timeout=5).json()["data"]["alerts"]
    return any(a["labels"]["alertname"] == "TriageTestAlwaysFiring" for a in alerts)


def check_bundle(archive: bytes, records: int) -> None:
    raw = gzip.decompress(archive)
    scan(raw, "the whole archive, decompressed")
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        members = {m.name.removeprefix("partial-trust-triage/"): m for m in tar.getmembers()}
        assert set(members) == PARTS
        data = {}
        for name, member in members.items():
            f = tar.extractfile(member)
            assert f is not None and member.isfile()
            data[name] = f.read()
    for name, body in data.items():
        scan(body, name)
    manifest = json.loads(data["MANIFEST.json"])
    assert manifest["unavailable"] == []
    listed = {p["name"]: p for p in manifest["parts"]}
    assert set(listed) == PARTS - {"MANIFEST.json"}
    for name, entry in listed.items():
        assert entry["sha256"] == hashlib.sha256(data[name]).hexdigest(), name
        assert entry["bytes"] == len(data[name])
    analysis = json.loads(data["analysis.json"])
    assert analysis["records"] == records and analysis["input"]["foreign_lines"] == 0
    assert analysis["sampled"] >= 6
    for stage in (1, 2, 3):
        verdict = json.loads(data[f"gate-stage-{stage}.json"])
        assert verdict["stage"] == stage and verdict["criteria"]
        assert verdict["verdict"] in {"GO", "HOLD", "NO-GO", "ROLLBACK", "CANNOT-EVALUATE"}
        # the gate's own verdict: a GO on the records is held until the stage's duration
        assert verdict["data_verdict"] and verdict["duration"]["summary"]
        assert verdict["verdict"] != "GO" or verdict["duration"]["left_s"] == 0
    html = data["analysis.html"].decode()
    assert html.startswith("<!doctype html>") and "<svg" in html and "<script" not in html
    audit = [json.loads(x) for x in data["flag-audit.jsonl"].splitlines()]
    assert [a["key"] for a in audit] == ["partial-trust-enabled", "partial-trust-sample-rate"]
    flags = {r["flag"]: r["value"] for r in json.loads(data["flags.json"])["flags"]}
    assert flags["partial-trust-enabled"] is True and flags["partial-trust-sample-rate"] == 1.0
    health = json.loads(data["health.json"])
    assert health["status"] == "ok" and health["partial_trust"]
    families = {f.name for f in text_string_to_metric_families(data["metrics.txt"].decode())}
    assert "partial_trust_decisions" in families
    alerts = json.loads(data["alerts.json"])["data"]["alerts"]
    assert "TriageTestAlwaysFiring" in {a["labels"]["alertname"] for a in alerts}
    versions = json.loads(data["versions.json"])
    assert versions["python"] and versions["packages"]["pydantic"]


def test_missing_sources_are_listed_not_fatal(tmp_path: Path) -> None:
    """Nothing to collect but the versions: still a bundle, with every gap and its reason.
    A FIFO as the audit log is refused by the safe reader (never a blocking open), and an
    app that accepts connections but never answers costs one short timeout."""
    fifo = tmp_path / "audit.fifo"
    os.mkfifo(fifo)
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # connections queue, nothing is ever read or answered
    url = f"http://127.0.0.1:{silent.getsockname()[1]}"
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}
    out = tmp_path / "b.tar.gz"
    args = ["triage", "--out", str(out), "--risk-log", str(tmp_path / "none.jsonl")]
    args += ["--flags-file", str(tmp_path / "none.json"), "--audit-log", str(fifo)]
    args += ["--app-url", url, "--timeout-s", "0.5"]
    started = time.monotonic()
    try:
        done = cli(*args, env=env)
    finally:
        silent.close()
    assert done.returncode == 0, done.stderr
    assert time.monotonic() - started < 30
    with tarfile.open(out, "r:gz") as tar:
        names = {m.name.removeprefix("partial-trust-triage/") for m in tar.getmembers()}
        f = tar.extractfile("partial-trust-triage/MANIFEST.json")
        assert f is not None
        manifest = json.loads(f.read())
    assert names == {"versions.json", "MANIFEST.json"}
    why = {u["name"]: u["why"] for u in manifest["unavailable"]}
    assert set(why) == PARTS - names
    assert "none.jsonl" in why["analysis.json"] and why["gate-stage-3.json"] == why["analysis.json"]
    assert "FIFO" in why["flag-audit.jsonl"] or "fifo" in why["flag-audit.jsonl"].lower()
    assert "Timeout" in why["health.json"] and "Timeout" in why["metrics.txt"]
    assert why["alerts.json"] == "not collected: no --prometheus given"
    assert not list(tmp_path.glob(".triage-*"))  # no temporary file left behind


def test_an_unwritable_output_is_exit_2(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}
    done = cli("triage", "--out", str(blocker / "b.tar.gz"), env=env)
    assert done.returncode == 2 and "cannot write" in done.stderr
    assert "Traceback" not in done.stderr
    assert cli("triage", env=env).returncode == 2  # --out is required
