"""Every dashboard query on real data.

The reference app (``partial-trust serve``) runs the corridor against ``partial-trust llm-sim``
with a fault mix (errors, wrong intents, foreign lists, low confidence, slow answers, so every
status shows up), under real traffic. A real Prometheus on 127.0.0.1 scrapes it every second
and evaluates the committed rules (the dashboard reads their recording rules; ALERTS needs the
alert rules). Then every panel's expression, with the Grafana variables substituted, goes
through Prometheus' HTTP query API: it must parse and return at least one series.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from tests.alerts.monitoring import (
    CORRIDOR,
    RULES,
    Traffic,
    prometheus_config,
    query,
    run_prometheus,
    wait_until,
)
from tests.dashboards.test_dashboard import query_panels
from tests.support.procs import Server, free_port, partial_trust, run_server

pytestmark = pytest.mark.integration

#: Grafana's built-in variables, sized for a 1 s scrape interval and a short run
BUILTINS = {"$__rate_interval": "15s", "$__interval": "5s", "$__range": "1m"}
#: recording rules that compare with the hour from 2h to 1h ago: empty on a short run, so
#: for these only "parses" is asserted (promtool unit tests cover their values)
NEEDS_TWO_HOURS = ("drop_ratio_rate5m_vs_rate1h_offset1h",)
#: about 8% failures (errors + timeouts): enough for the error-rate alert to go pending (the
#: alerts table), rare enough that 5 failures in a row (the circuit breaker) are unlikely
SIM_FAULTS = {
    "error_rate": 0.06,
    "wrong_intent_rate": 0.1,
    "foreign_list_rate": 0.05,
    "low_confidence_rate": 0.1,
    "latency_ms": 5.0,
    "latency_jitter_ms": 200.0,  # a few answers beyond the 200 ms timeout: llm_timeout
}


def substitute(expr: str, corridor: str) -> str:
    for name, value in BUILTINS.items():
        expr = expr.replace(name, value)
    return expr.replace("${corridor}", corridor).replace("$corridor", corridor)


def panel_queries() -> list[tuple[str, str]]:
    return [(p["title"], t["expr"]) for p in query_panels() for t in p["targets"]]


class _AgreementExporter(BaseHTTPRequestHandler):
    """``partial_trust_agreement_total`` as the shadow-mode engine exports it (issue 19, item
    1, built in parallel under this fixed name): counters growing with time, so the agreement
    panels have series before, and independently of, the engine's own."""

    started = time.monotonic()

    def do_GET(self) -> None:
        t = time.monotonic() - self.started
        body = "# TYPE partial_trust_agreement_total counter\n" + "".join(
            f'partial_trust_agreement_total{{corridor="{CORRIDOR}",mode="{mode}",'
            f'agreement="{agreement}"}} {per_s * t:.3f}\n'
            for mode, agreement, per_s in (
                ("shadow", "true", 9.0),
                ("shadow", "false", 1.0),
                ("shadow", "unknown", 0.5),
                ("canary", "true", 4.0),
                ("canary", "false", 1.0),
            )
        )
        # the review store's cases (kept 4/s, dropped_off 1/s: 80% kept) and the reviewers'
        # verdicts (llm_right 3/s, baseline_right 0.5/s, both_wrong 0.5/s: 25% overridden)
        body += "# TYPE partial_trust_review_cases_total counter\n" + "".join(
            f'partial_trust_review_cases_total{{corridor="{CORRIDOR}",result="{result}"}}'
            f" {per_s * t:.3f}\n"
            for result, per_s in (("kept", 4.0), ("dropped_off", 1.0))
        )
        body += "# TYPE partial_trust_review_verdicts_total counter\n" + "".join(
            f'partial_trust_review_verdicts_total{{corridor="{CORRIDOR}",verdict="{verdict}",'
            f'category="{category}"}} {per_s * t:.3f}\n'
            for verdict, category, per_s in (
                ("llm_right", "none", 3.0),
                ("baseline_right", "too_strict", 0.5),
                ("both_wrong", "too_permissive", 0.5),
            )
        )
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def agreement_exporter() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _AgreementExporter)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@dataclass
class Running:
    prom: Server
    app: Server


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    tmp: Path = tmp_path_factory.mktemp("dashboard")
    sim_port, app_port = free_port(), free_port()
    env = {
        "PARTIAL_TRUST_FLAGS_PROVIDER": "env",
        "PARTIAL_TRUST_ENABLED": "true",
        "PARTIAL_TRUST_SAMPLE_RATE": "0.6",  # some not_sampled too
        "LLM_POLICY_ENABLED": "true",
        "LLM_BASE_URL": f"http://127.0.0.1:{sim_port}/v1",
        "PARTIAL_TRUST_RISK_LOG_PATH": str(tmp / "risk.jsonl"),
    }
    sim_argv = partial_trust("llm-sim", "--port", str(sim_port), "--seed", "7")
    app_argv = partial_trust("serve", "--port", str(app_port), "--log-level", "warning")
    with (
        agreement_exporter() as exporter,
        run_server(sim_argv, port=sim_port, ready_path="/health", log_path=tmp / "sim.log") as sim,
        run_server(
            app_argv, port=app_port, ready_path="/health", log_path=tmp / "app.log", env=env
        ) as app,
        run_prometheus(
            tmp,
            prometheus_config(
                targets=[f"127.0.0.1:{app_port}", exporter],
                rule_files=[RULES],
                alertmanager=None,
                interval="1s",
            ),
        ) as prom,
    ):
        httpx.post(f"{sim.url}/sim/config", json=SIM_FAULTS, timeout=5).raise_for_status()
        with Traffic(app.url, prefix="dash", per_second=40):

            def has(expr: str) -> bool:
                return bool(query(prom, expr)["data"]["result"])

            def all_panels_have_data() -> bool:
                exprs = [substitute(e, CORRIDOR) for _, e in panel_queries()]
                exprs = [e for e in exprs if not any(n in e for n in NEEDS_TWO_HOURS)]
                return all(has(e) for e in exprs)

            # the mix has come through (every status), and the rules have evaluated on it
            ready = wait_until(
                lambda: (
                    has('partial_trust_decisions_total{status="fallback_deterministic"} > 0')
                    and has('partial_trust_decisions_total{status="error"} > 0')
                    and has('increase(partial_trust_decisions_total{reason="not_sampled"}[1m]) > 0')
                    and all_panels_have_data()
                ),
                timeout_s=40,
                step_s=0.5,
            )
            assert ready, app.output()[-3000:]
            yield Running(prom, app)


@pytest.mark.parametrize("corridor", [CORRIDOR, ".+"], ids=["one-corridor", "all"])
def test_every_panel_query_parses_and_returns_series(running: Running, corridor: str) -> None:
    failures: list[str] = []
    for title, raw in panel_queries():
        expr = substitute(raw, corridor)
        assert "$" not in expr, f"unsubstituted variable in {title}: {expr}"
        answer = query(running.prom, expr)
        if answer.get("status") != "success":
            failures.append(f"{title}: {answer.get('error')} in {expr}")
        elif not answer["data"]["result"] and not any(n in expr for n in NEEDS_TWO_HOURS):
            failures.append(f"{title}: no series for {expr}")
    assert not failures, "\n".join(failures)


def test_the_corridor_variable_finds_the_corridor(running: Running) -> None:
    resp = httpx.get(
        f"{running.prom.url}/api/v1/label/corridor/values",
        params={"match[]": "partial_trust_flag_enabled"},
        timeout=10,
    )
    assert CORRIDOR in resp.json()["data"]


def test_mixed_outcomes_reach_the_outcome_panels(running: Running) -> None:
    """The data behind the panels really is mixed, so 'returns a series' means something."""
    got = query(
        running.prom,
        f'sum by (status) (partial_trust_decisions_total{{corridor="{CORRIDOR}"}}) > 0',
    )
    statuses = {r["metric"]["status"] for r in got["data"]["result"]}
    assert statuses == {"accepted_llm", "fallback_deterministic", "error", "skipped"}
    table = query(running.prom, 'ALERTS{alertname=~"PartialTrust.*"}')["data"]["result"]
    print("\nalerts pending/firing on the mixed traffic:", json.dumps([r["metric"] for r in table]))


def test_every_panel_query_parses_without_the_app(tmp_path: Path) -> None:
    """Syntax alone, against an empty Prometheus: a broken expression fails here even when the
    app cannot run (the real-data test above would then fail for another reason)."""
    config = prometheus_config(targets=[], rule_files=[RULES], alertmanager=None, interval="1s")
    with run_prometheus(tmp_path, config) as prom:
        errors = [
            f"{title}: {answer.get('error')}"
            for title, raw in panel_queries()
            if (answer := query(prom, substitute(raw, CORRIDOR))).get("status") != "success"
        ]
        # the variable query of the "corridor" template variable, too
        got = query(prom, "count by (corridor) (partial_trust_flag_enabled)")
        assert got["status"] == "success"
    assert not errors, errors


def test_the_agreement_panel_reads_the_rate_by_mode(running: Running) -> None:
    """9 agreeing, 1 disagreeing, 0.5 unknown a second in shadow: 90%, unknown not counted
    (the app runs canary: shadow is the exporter's alone)."""
    expr = substitute(
        next(e for t, e in panel_queries() if t == "Agreement rate" and "ratio" in e), CORRIDOR
    )
    rows = query(running.prom, expr)["data"]["result"]
    rates = {r["metric"]["mode"]: float(r["value"][1]) for r in rows}
    assert rates["shadow"] == pytest.approx(0.9, abs=0.02), rates
    # canary: the app's own agreement (it runs canary) adds to the exporter's once merged
    assert 0 <= rates["canary"] <= 1, rates


def _ratio(running: Running, title_start: str) -> float:
    [expr] = [e for t, e in panel_queries() if t.startswith(title_start) and "\n/ " in e]
    rows = query(running.prom, substitute(expr, CORRIDOR))["data"]["result"]
    assert len(rows) == 1, rows
    return float(rows[0]["value"][1])


def test_the_review_panels_read_kept_share_and_override_rate(running: Running) -> None:
    """The exporter's review counters: 80% of the cases kept, 25% of the verdicts overrides."""
    assert _ratio(running, "Review store") == pytest.approx(0.8, abs=0.02)
    assert _ratio(running, "Override rate") == pytest.approx(0.25, abs=0.02)
