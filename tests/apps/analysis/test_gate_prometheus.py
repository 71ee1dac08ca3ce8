"""``gate --prometheus`` against a REAL Prometheus scraping the real reference app.

The same traffic (llm-sim with mixed faults, every command sampled) is judged from the risk
log and from Prometheus' counters; both sources must give the same verdict, the same counts
and the same rates. Unit checks of the source's parsing need no Prometheus.
"""

from __future__ import annotations

import json
import time
import urllib.parse
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from partial_trust.apps.analysis import cli, prometheus
from tests.alerts.monitoring import RULES, prometheus_config, query, run_prometheus, wait_until
from tests.integration.stack import llm_sim, reference_app, shopping_command, wait_lines
from tests.support.procs import Server, require_binary

CORRIDOR = 'corridor="add_shopping_item"'


def test_parse_window() -> None:
    assert prometheus.parse_window("24h") == 86_400
    assert prometheus.parse_window("1d12h") == 129_600
    assert prometheus.parse_window("90m") == 5_400
    assert prometheus.parse_window("1500ms") == 1.5
    for bad in ("", "24", "h", "1x", "24h ", "0h"):
        with pytest.raises(ValueError):
            prometheus.parse_window(bad)


def test_chart_bins_are_per_bucket_with_one_overflow() -> None:
    cumulative = [(0.3, 5), (0.4, 7), (0.5, 7), (1.0, 9), (2.0, 10), (float("inf"), 11)]
    assert prometheus._chart_bins(cumulative) == (
        (300.0, 5),
        (400.0, 2),
        (500.0, 0),
        (1000.0, 2),
        (None, 2),
    )


def test_hours_split_the_window_at_utc_hour_boundaries() -> None:
    """(07:30, 10:30]: a partial first hour, full hours from a range query, a partial last."""
    t = datetime(2026, 11, 23, 10, 30, tzinfo=UTC).timestamp()
    asked: list[tuple[str, dict[str, str]]] = []

    def vector(n: float) -> list[dict[str, Any]]:
        return [
            {"metric": {"status": "accepted_llm"}, "value": [t, str(n)]},
            {"metric": {"status": "error"}, "value": [t, "1"]},
        ]

    def handler(request: httpx.Request) -> httpx.Response:
        form = dict(urllib.parse.parse_qsl(request.content.decode()))
        asked.append((request.url.path, form))
        q = form["query"]
        result: list[dict[str, Any]] = []
        if request.url.path.endswith("query_range"):
            values = [[float(form["start"]), "10"], [float(form["end"]), "20.4"]]
            result = [{"metric": {"status": "accepted_llm"}, "values": values}]
        elif "sum by (status) (increase" in q:
            result = vector(3 if "[1800000ms]" in q else 0)
        kind = "matrix" if request.url.path.endswith("query_range") else "vector"
        body = {"status": "success", "data": {"resultType": kind, "result": result}}
        return httpx.Response(200, json=body)

    source = prometheus.PrometheusSource(
        "http://prom.invalid", client=httpx.Client(transport=httpx.MockTransport(handler))
    )
    fig = source.figures(window_s=3 * 3600, at=t)
    assert [(h.hour, h.sampled, h.accepted_llm, h.error) for h in fig.hours] == [
        ("2026-11-23T07", 4, 3, 1),  # (07:30, 08:00]
        ("2026-11-23T08", 10, 10, 0),  # range point at 09:00 covers (08:00, 09:00]
        ("2026-11-23T09", 20, 20, 0),  # range point at 10:00, rounded
        ("2026-11-23T10", 4, 3, 1),  # (10:00, 10:30]
    ]
    ranges = [f for path, f in asked if path.endswith("query_range")]
    assert len(ranges) == 1 and ranges[0]["step"] == "3600"
    assert float(ranges[0]["start"]) == t - 1.5 * 3600 and float(ranges[0]["end"]) == t - 1800
    assert fig.records == 0 and fig.latency_p95 is None and fig.source == "prometheus"


def test_unreachable_prometheus_is_exit_3(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.gate_main(["--stage", "1", "--prometheus", "http://127.0.0.1:9"]) == 3
    assert "cannot query Prometheus" in capsys.readouterr().err


def test_bad_source_options_are_exit_3(tmp_path: Path) -> None:
    url = ["--prometheus", "http://127.0.0.1:9"]
    for argv in (
        ["--stage", "1"],
        ["--stage", "1", *url, "--risk-log", str(tmp_path / "x.jsonl")],
        ["--stage", "1", *url, "--window", "soon"],
        ["--stage", "1", *url, "--since", "2026-01-01T00:00:00Z"],
    ):
        with pytest.raises(SystemExit) as exc:
            cli.gate_main(argv)
        assert exc.value.code == 3


def _value(prom: Server, expr: str) -> float | None:
    result = query(prom, expr)["data"]["result"]
    return float(result[0]["value"][1]) if result else None


def _gate(tmp_path: Path, name: str, stage: int, *source: str) -> tuple[int, dict[str, Any]]:
    out = tmp_path / f"{name}-{stage}.json"
    code = cli.gate_main(["--stage", str(stage), *source, "--output-json", str(out)])
    payload: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    return code, payload


@pytest.mark.integration
def test_risk_log_and_prometheus_give_the_same_gate(tmp_path: Path) -> None:
    require_binary("prometheus")
    faults = ("--error-rate", "0.06", "--wrong-intent-rate", "0.1", "--foreign-list-rate", "0.05")
    latency = ("--latency-ms", "5", "--latency-jitter-ms", "80")
    with (
        llm_sim(tmp_path, *faults, *latency) as sim,
        reference_app(tmp_path, f"{sim.url}/v1", PARTIAL_TRUST_SAMPLE_RATE="1") as (app, log),
    ):
        (tmp_path / "prom").mkdir()
        config = prometheus_config(
            targets=[app.url.removeprefix("http://")],
            rule_files=[RULES],
            alertmanager=None,
            interval="1s",
        )
        with run_prometheus(tmp_path / "prom", config) as prom:
            # The app's series exist (at 0) in Prometheus before any traffic.
            series = f"count(partial_trust_decisions_total{{{CORRIDOR}}})"
            assert wait_until(lambda: (_value(prom, series) or 0) > 0, 30)
            n_shop, n_other = 150, 10
            with httpx.Client(timeout=10) as client:
                for i in range(n_shop):
                    resp = client.post(f"{app.url}/route", json=shopping_command(f"pg-{i}"))
                    assert resp.status_code == 200
                for i in range(n_other):
                    body = shopping_command(f"pg-t-{i}", text="set a timer for 5 minutes")
                    assert client.post(f"{app.url}/route", json=body).status_code == 200
            records = n_shop + n_other
            assert len(wait_lines(log, records, timeout_s=10)) == records
            total = f'sum(partial_trust_decisions_total{{{CORRIDOR}, reason!="not_sampled"}})'
            assert wait_until(lambda: _value(prom, total) == records, 30), _value(prom, total)
            time.sleep(2.5)  # one more scrape: every series of the last outcome is in

            for stage in (1, 2, 3):
                code_log, from_log = _gate(tmp_path, "log", stage, "--risk-log", str(log))
                code_prom, from_prom = _gate(
                    tmp_path, "prom", stage, "--prometheus", prom.url, "--window", "2h"
                )
                assert code_log == code_prom, (stage, from_log, from_prom)
                if stage == 1:
                    code_log_1 = code_log
                assert from_log["verdict"] == from_prom["verdict"]
                fl, fp = from_log["figures"], from_prom["figures"]
                assert fp["source"] == "prometheus"
                assert fl["records"] == fp["records"] == records
                assert fl["sampled"] == fp["sampled"] == n_shop
                for name in ("error_rate", "acceptance_rate", "intent_mismatch_rate"):
                    assert fl["rates"][name] == fp["rates"][name], name
                assert fl["status_counts"] == fp["status_counts"]
                assert fl["reason_counts"] == fp["reason_counts"]
                assert fl["latency_count"] == fp["latency_count"]
                results_log = [(c["criterion"], c["result"]) for c in from_log["criteria"]]
                results_prom = [(c["criterion"], c["result"]) for c in from_prom["criteria"]]
                assert results_log == results_prom
            page = tmp_path / "gate.html"
            argv = ["--stage", "1", "--prometheus", prom.url, "--html", str(page)]
            assert cli.gate_main(argv) == code_log_1
            assert page.read_text(encoding="utf-8").count("<svg") >= 3
            # The traffic really was mixed: errors, refusals and acceptances all present.
            counts = from_log["figures"]["status_counts"]
            assert counts["error"] and counts["fallback_deterministic"] and counts["accepted_llm"]
