"""The Prometheus sink: exact counts per outcome, bounded labels, multi-worker merging."""

from __future__ import annotations

import asyncio
import math
import os
import subprocess
import sys
import textwrap
from functools import partial
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from starlette.types import ASGIApp, Message

from partial_trust.config import EffectiveSettings
from partial_trust.middleware.metrics import (
    LATENCY_BUCKETS,
    RISK_LOG_RESULTS,
    SHADOW_DROP_CAUSES,
    CorridorMetrics,
    metrics_endpoint,
)
from partial_trust.outcome import SAMPLED_STATUSES, STATUS_REASONS, Outcome, Reason, Status

C = "add_shopping_item"
ROOT = Path(__file__).resolve().parent.parent
NO_LLM_LATENCY = {Reason.CIRCUIT_OPEN, Reason.INTERNAL_ERROR}


def outcome(status: Status, reason: Reason, corridor: str = C, **kw: object) -> Outcome:
    """A realistic outcome: LLM latency when the LLM was called, matches when it answered."""
    fields: dict[str, object] = {}
    if status in SAMPLED_STATUSES and reason not in NO_LLM_LATENCY:
        fields.update(latency_ms=350.0, baseline_latency_ms=2.0)
    if status in (Status.ACCEPTED_LLM, Status.FALLBACK_DETERMINISTIC):
        fields.update(intent_match=status is Status.ACCEPTED_LLM, entity_key_match=True)
    fields.update(kw)
    sampled = reason is not Reason.NOT_SAMPLED and status is not Status.SKIPPED
    return Outcome(corridor, status, reason, sampled, 0.1, **fields)  # type: ignore[arg-type]  # mixed optional fields; Outcome checks them


def value(reg: CollectorRegistry, name: str, **labels: str) -> float | None:
    return reg.get_sample_value(name, labels)


def scrape(app: ASGIApp) -> tuple[int, str]:
    """GET the ASGI app once, directly (no HTTP stack needed to test an endpoint)."""
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": "/", "query_string": b"", "headers": []}

    async def get() -> None:
        await app(scope, receive, send)

    asyncio.run(get())
    body = b"".join(m.get("body", b"") for m in sent)
    return int(sent[0]["status"]), body.decode()


def decisions(reg: CollectorRegistry, status: str, reason: str, corridor: str = C) -> float | None:
    labels = {"corridor": corridor, "status": status, "reason": reason}
    return reg.get_sample_value("partial_trust_decisions_total", labels)


@pytest.fixture
def reg() -> CollectorRegistry:
    return CollectorRegistry()


def test_preinit_creates_every_known_series_at_zero(reg: CollectorRegistry) -> None:
    CorridorMetrics(reg).preinit(C)
    for status, reason in STATUS_REASONS:
        assert decisions(reg, status, reason) == 0
    for status in SAMPLED_STATUSES:
        assert value(reg, "partial_trust_llm_latency_seconds_count", corridor=C, status=status) == 0
    for im in ("true", "false", "unknown"):
        for em in ("true", "false", "unknown"):
            labels = {"corridor": C, "intent_match": im, "entity_key_match": em}
            expected = None if im == em == "unknown" else 0
            assert value(reg, "partial_trust_candidates_total", **labels) == expected
    for result in RISK_LOG_RESULTS:
        assert value(reg, "partial_trust_risk_log_records_total", result=result) == 0
    assert value(reg, "partial_trust_circuit_state", corridor=C) == 0
    assert value(reg, "partial_trust_llm_in_flight", corridor=C) == 0
    assert value(reg, "partial_trust_baseline_latency_seconds_count", corridor=C) == 0
    for cause in SHADOW_DROP_CAUSES:
        assert value(reg, "partial_trust_shadow_dropped_total", corridor=C, cause=cause) == 0
    assert value(reg, "partial_trust_shadow_shed_total", corridor=C) == 0
    assert {0.3, 0.4, 0.5} <= set(LATENCY_BUCKETS)  # the runbook's latency thresholds


def test_shed_requests_are_counted_by_corridor_alone(reg: CollectorRegistry) -> None:
    metrics = CorridorMetrics(reg)
    metrics.preinit(C)
    metrics.shadow_shed(C)
    metrics.shadow_shed(C)
    metrics.shadow_shed("read_list")  # a corridor not preinitialised gets its series too
    assert value(reg, "partial_trust_shadow_shed_total", corridor=C) == 2
    assert value(reg, "partial_trust_shadow_shed_total", corridor="read_list") == 1


@pytest.mark.parametrize(("status", "reason"), STATUS_REASONS, ids=lambda v: str(v))
def test_every_status_reason_counts_exactly_once(
    reg: CollectorRegistry, status: Status, reason: Reason
) -> None:
    metrics = CorridorMetrics(reg)
    metrics.preinit(C)
    o = outcome(status, reason)
    metrics.observe(o)
    for s, r in STATUS_REASONS:
        expected = 1 if (s, r) == (status, reason) else 0
        assert decisions(reg, s, r) == expected
    for s in SAMPLED_STATUSES:
        had = s is status and o.latency_ms is not None
        lat = {"corridor": C, "status": s}
        assert value(reg, "partial_trust_llm_latency_seconds_count", **lat) == (1 if had else 0)
        assert value(reg, "partial_trust_llm_latency_seconds_bucket", **lat, le="0.3") == 0
        assert value(reg, "partial_trust_llm_latency_seconds_bucket", **lat, le="0.4") == had
        assert value(reg, "partial_trust_llm_latency_seconds_bucket", **lat, le="0.5") == had
        total = value(reg, "partial_trust_llm_latency_seconds_sum", **lat)
        assert total == pytest.approx(0.35 if had else 0.0)
    baseline = value(reg, "partial_trust_baseline_latency_seconds_count", corridor=C)
    assert baseline == (1 if o.baseline_latency_ms is not None else 0)
    candidates = sum(
        value(reg, "partial_trust_candidates_total", corridor=C, intent_match=i, entity_key_match=e)
        or 0
        for i in ("true", "false")
        for e in ("true", "false")
    )
    assert candidates == (1 if o.intent_match is not None else 0)
    if o.intent_match is not None:
        im = "true" if o.intent_match else "false"
        labels = {"corridor": C, "intent_match": im, "entity_key_match": "true"}
        assert value(reg, "partial_trust_candidates_total", **labels) == 1


def test_works_without_preinit_and_refuses_odd_corridor_names(reg: CollectorRegistry) -> None:
    metrics = CorridorMetrics(reg)
    metrics.observe(outcome(Status.SKIPPED, Reason.NOT_SAMPLED))
    assert decisions(reg, "skipped", "not_sampled") == 1
    for bad in ("Milk & eggs", "user-123", "a" * 65, ""):
        with pytest.raises(ValueError):
            metrics.observe(outcome(Status.SKIPPED, Reason.NOT_SAMPLED, corridor=bad))


def test_nan_or_negative_latency_is_not_observed(reg: CollectorRegistry) -> None:
    metrics = CorridorMetrics(reg)
    metrics.preinit(C)
    for bad in (math.nan, -1.0):
        metrics.observe(outcome(Status.ERROR, Reason.LLM_TIMEOUT, latency_ms=bad))
    lat = {"corridor": C, "status": "error"}
    assert value(reg, "partial_trust_llm_latency_seconds_count", **lat) == 0
    assert value(reg, "partial_trust_llm_latency_seconds_sum", **lat) == 0


def test_two_sinks_on_one_registry_share_the_families(reg: CollectorRegistry) -> None:
    CorridorMetrics(reg).observe(outcome(Status.ACCEPTED_LLM, Reason.ACCEPTED))
    CorridorMetrics(reg).observe(outcome(Status.ACCEPTED_LLM, Reason.ACCEPTED))
    assert decisions(reg, "accepted_llm", "accepted") == 2


def test_flag_gauges_follow_set_flags(reg: CollectorRegistry) -> None:
    metrics = CorridorMetrics(reg)
    build = partial(EffectiveSettings.build, enabled=True, intent=C, profile_id=None)
    metrics.set_flags(C, build(sample_rate=0.05, timeout_ms=250, policy_enabled=True))
    assert value(reg, "partial_trust_flag_enabled", corridor=C) == 1
    assert value(reg, "partial_trust_flag_sample_rate", corridor=C) == 0.05
    assert value(reg, "partial_trust_flag_timeout_ms", corridor=C) == 250
    assert value(reg, "partial_trust_flags_available", corridor=C) == 1
    off = build(sample_rate=0.05, timeout_ms=250, policy_enabled=True, flags_available=False)
    metrics.set_flags(C, off)
    assert value(reg, "partial_trust_flag_enabled", corridor=C) == 0
    assert value(reg, "partial_trust_flag_sample_rate", corridor=C) == 0
    assert value(reg, "partial_trust_flag_timeout_ms", corridor=C) == 0
    assert value(reg, "partial_trust_flags_available", corridor=C) == 0


def test_risk_log_circuit_and_in_flight(reg: CollectorRegistry) -> None:
    metrics = CorridorMetrics(reg)
    metrics.risk_log_result("written", 3)
    metrics.risk_log_result("dropped", 2)
    metrics.risk_log_result("failed", 1)
    for result, n in (("written", 3), ("dropped", 2), ("failed", 1)):
        assert value(reg, "partial_trust_risk_log_records_total", result=result) == n
    last = value(reg, "partial_trust_risk_log_last_write_timestamp_seconds")
    assert last is not None and last > 1.7e9
    metrics.set_risk_log_last_write(1234.5)
    assert value(reg, "partial_trust_risk_log_last_write_timestamp_seconds") == 1234.5
    with pytest.raises(ValueError):
        metrics.risk_log_result("user text", 1)
    for code in (1, 2, 0):
        metrics.set_circuit_state(C, code)
        assert value(reg, "partial_trust_circuit_state", corridor=C) == code
    with pytest.raises(ValueError):
        metrics.set_circuit_state(C, 7)
    metrics.llm_in_flight(C, +1)
    metrics.llm_in_flight(C, +1)
    assert value(reg, "partial_trust_llm_in_flight", corridor=C) == 2
    metrics.llm_in_flight(C, -1)
    assert value(reg, "partial_trust_llm_in_flight", corridor=C) == 1


CORRIDORS = ("add_shopping_item", "other_corridor", "third")
LABEL_VALUES = {
    "corridor": set(CORRIDORS),
    "status": {s.value for s in Status},
    "reason": {r.value for r in Reason},
    "intent_match": {"true", "false", "unknown"},
    "entity_key_match": {"true", "false", "unknown"},
    "result": set(RISK_LOG_RESULTS),
    "mode": {"shadow", "canary"},
    "agreement": {"true", "false", "unknown"},
    "cause": set(SHADOW_DROP_CAUSES),
}
floats = st.none() | st.floats(allow_nan=True, allow_infinity=True)
texts = st.none() | st.text(min_size=4, max_size=40)
outcomes = st.builds(
    lambda pair, corridor, lat, base, im, em, conf, key, profile: Outcome(
        corridor, pair[0], pair[1], True, 0.5, profile, key, lat, base, im, em, conf
    ),
    st.sampled_from(STATUS_REASONS),
    st.sampled_from(CORRIDORS),
    floats,
    floats,
    st.none() | st.booleans(),
    st.none() | st.booleans(),
    floats,
    texts,
    texts,
)


@settings(max_examples=60, deadline=None)
@given(st.lists(outcomes, max_size=40))
def test_labels_stay_within_the_enums_whatever_the_outcomes(batch: list[Outcome]) -> None:
    reg = CollectorRegistry()
    metrics = CorridorMetrics(reg)
    for corridor in CORRIDORS:
        metrics.preinit(corridor)
    for o in batch:
        metrics.observe(o)
    decision_sets: set[tuple[tuple[str, str], ...]] = set()
    constants = " ".join(v for values in LABEL_VALUES.values() for v in values)
    secrets = [t for o in batch for t in (o.command_key, o.profile_id) if t and t not in constants]
    for family in reg.collect():
        assert family.name.startswith("partial_trust_")
        for sample in family.samples:
            for name, label in sample.labels.items():
                if name == "le":
                    continue
                assert label in LABEL_VALUES[name], (family.name, name, label)
                assert not any(secret in label for secret in secrets)
            if sample.name == "partial_trust_decisions_total":
                decision_sets.add(tuple(sorted(sample.labels.items())))
    assert len(decision_sets) == len(CORRIDORS) * len(STATUS_REASONS)
    total = sum(decisions(reg, s, r, corridor=c) or 0 for c in CORRIDORS for s, r in STATUS_REASONS)
    assert total == len(batch)


def test_metrics_endpoint_serves_the_given_registry(reg: CollectorRegistry) -> None:
    CorridorMetrics(reg).observe(outcome(Status.SKIPPED, Reason.NOT_SAMPLED))
    status, text = scrape(metrics_endpoint(reg))
    assert status == 200
    line = 'partial_trust_decisions_total{corridor="add_shopping_item",reason="not_sampled",'
    assert line in text


WORKER = textwrap.dedent(
    """
    import sys
    from prometheus_client import CollectorRegistry
    from partial_trust.middleware.metrics import CorridorMetrics
    from partial_trust.outcome import Outcome, Reason, Status
    m = CorridorMetrics(CollectorRegistry())
    m.preinit("add_shopping_item")
    for _ in range(int(sys.argv[1])):
        m.observe(Outcome("add_shopping_item", Status.ACCEPTED_LLM, Reason.ACCEPTED, True, 0.1,
                          latency_ms=350.0, intent_match=True, entity_key_match=True))
    m.llm_in_flight("add_shopping_item", 1)
    m.risk_log_result("written", int(sys.argv[1]))
    """
)


def test_multiprocess_mode_sums_workers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "PYTHONPATH": str(ROOT)}
    for n in (3, 5):
        subprocess.run(
            [sys.executable, "-c", WORKER, str(n)], env=env, cwd=ROOT, check=True, timeout=60
        )
    pids = {int(p.stem.rsplit("_", 1)[1]) for p in tmp_path.glob("gauge_livesum_*.db")}
    assert len(pids) == 2
    reg = CollectorRegistry()
    MultiProcessCollector(reg, path=str(tmp_path))  # type: ignore[no-untyped-call]  # prometheus_client's multiprocess API is unannotated
    assert decisions(reg, "accepted_llm", "accepted") == 8
    assert decisions(reg, "error", "llm_timeout") == 0
    lat = {"corridor": C, "status": "accepted_llm"}
    assert value(reg, "partial_trust_llm_latency_seconds_count", **lat) == 8
    assert value(reg, "partial_trust_llm_latency_seconds_bucket", **lat, le="0.4") == 8
    assert value(reg, "partial_trust_llm_latency_seconds_bucket", **lat, le="0.3") == 0
    assert value(reg, "partial_trust_risk_log_records_total", result="written") == 8
    assert value(reg, "partial_trust_llm_in_flight", corridor=C) == 2  # livesum
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    _, text = scrape(metrics_endpoint())
    assert 'reason="accepted",status="accepted_llm"} 8.0' in text
    for pid in pids:
        mark_process_dead(pid, str(tmp_path))  # type: ignore[no-untyped-call]  # prometheus_client's multiprocess API is unannotated
    reg = CollectorRegistry()
    MultiProcessCollector(reg, path=str(tmp_path))  # type: ignore[no-untyped-call]  # prometheus_client's multiprocess API is unannotated
    assert value(reg, "partial_trust_llm_in_flight", corridor=C) is None
    assert decisions(reg, "accepted_llm", "accepted") == 8


def test_mode_capped_gauge_follows_the_settings(reg: CollectorRegistry) -> None:
    """1 for a corridor whose risk class lowered the mode asked for, 0 otherwise; real
    sources (the env provider for an ``admin`` and a ``write`` corridor) feed it."""
    from partial_trust.environment import Environment
    from partial_trust.flags import build_settings_source

    metrics = CorridorMetrics(reg)
    env = Environment.from_mapping(
        {
            "PARTIAL_TRUST_FLAGS_PROVIDER": "env",
            "PARTIAL_TRUST_ENABLED": "true",
            "PARTIAL_TRUST_MODE": "canary",
        }
    )
    for corridor in ("share_shopping_list", C):
        source = build_settings_source(env, policy_default=True, corridor=corridor)
        source.on_change(partial(metrics.set_flags, corridor))
    assert value(reg, "partial_trust_mode_capped", corridor="share_shopping_list") == 1
    assert value(reg, "partial_trust_mode_capped", corridor=C) == 0
    build = partial(EffectiveSettings.build, enabled=True, intent=C, profile_id=None)
    metrics.set_flags(C, build(sample_rate=0.05, timeout_ms=250, policy_enabled=True))
    assert value(reg, "partial_trust_mode_capped", corridor=C) == 0
