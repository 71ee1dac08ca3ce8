"""Prometheus metrics for the corridor, declared once, fed only from ``Outcome`` values.

Why this shape:

* Dashboards and alert rules rely on these exact names (``DESIGN.md``, "Names"): they are
  declared here and nowhere else.
* Label values come only from the closed ``Status``/``Reason`` enums and the configured
  corridor name (refused unless it is a plain identifier), never from a request: the number
  of series is bounded by the enum product whatever the traffic.
* Every known label combination is pre-initialised (``preinit``) so series exist at 0 and
  ``rate()``/``increase()`` and "absent" alerts work from the first scrape.
* ``observe`` runs on every request the corridor owns: a dict lookup and an ``inc()`` on a
  cached child (~0.5 µs for not_sampled), never a ``.labels(...)`` call.

Multi-worker (``uvicorn --workers N``, gunicorn): point ``PROMETHEUS_MULTIPROC_DIR`` at an
empty writable directory (empty it before the workers start: stale files are added in)
**before anything imports prometheus_client**, which picks its value class at import time.
``metrics_endpoint()`` then merges every worker's files with ``MultiProcessCollector``:
counters and histograms are summed. Gauges merge as declared: flags ``livemostrecent``,
in-flight ``livesum``, circuit state ``livemax`` (> 0: some worker's breaker is not closed),
last risk-log write ``max``. Call ``prometheus_client.multiprocess.mark_process_dead(pid)``
when a worker exits, if the process manager can.

Mount it with ``Mount("/metrics", app=metrics_endpoint())`` (Starlette) or
``app.mount("/metrics", metrics_endpoint())`` (FastAPI).
"""

from __future__ import annotations

import re
import time
import weakref
from dataclasses import dataclass
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, make_asgi_app
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.types import Receive, Scope, Send

from partial_trust.config import EffectiveSettings
from partial_trust.environment import Environment
from partial_trust.mode import Mode
from partial_trust.outcome import SAMPLED_STATUSES, STATUS_REASONS, Outcome, Reason, Status

#: Bucket edges in seconds; 0.3/0.4/0.5 are the runbook's LLM latency thresholds.
LATENCY_BUCKETS: tuple[float, ...] = (
    0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75, 1.0, 2.0, 5.0,
)  # fmt: skip
RISK_LOG_RESULTS: tuple[str, ...] = ("written", "dropped", "failed")
#: Why a shadow job was dropped (``shadow.ShadowQueue``; the ``cause`` label, apart from the
#: decisions' ``reason`` codes).
SHADOW_DROP_CAUSES: tuple[str, ...] = ("queue_full", "loop_busy", "loop_share", "stopped")
#: Circuit-breaker gauge values (the same codes as ``circuit.STATE_CODES``).
CIRCUIT_CODES: frozenset[int] = frozenset({0, 1, 2})

_CORRIDOR_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")


def _corridor_label(corridor: str) -> str:
    """Refuse anything that is not a plain identifier: labels must stay low-cardinality."""
    if not isinstance(corridor, str) or _CORRIDOR_NAME.fullmatch(corridor) is None:
        raise ValueError("corridor name must be a lower-case identifier (it becomes a label)")
    return corridor


#: A candidate's match flags: true/false, or ``None`` ("unknown") when the answer was parsed
#: only far enough to know one of them (a schema violation still shows its intent).
MATCH_VALUES: tuple[bool | None, ...] = (True, False, None)


#: The modes an outcome can have (``off`` records nothing).
OUTCOME_MODES: tuple[Mode, ...] = (Mode.SHADOW, Mode.CANARY)


def _match_label(value: bool | None) -> str:
    return "unknown" if value is None else ("true" if value else "false")


@dataclass(frozen=True, slots=True)
class _Families:
    """The metric families of one registry (registering a name twice raises)."""

    decisions: Counter
    llm_latency: Histogram
    baseline_latency: Histogram
    candidates: Counter
    flag_enabled: Gauge
    flag_sample_rate: Gauge
    flag_timeout_ms: Gauge
    flags_available: Gauge
    mode_capped: Gauge
    risk_log_records: Counter
    risk_log_last_write: Gauge
    circuit_state: Gauge
    llm_in_flight: Gauge
    agreement: Counter
    shadow_queue_depth: Gauge
    shadow_dropped: Counter
    shadow_shed: Counter

    @classmethod
    def declare(cls, r: CollectorRegistry) -> _Families:
        c = ("corridor",)

        def gauge(name: str, doc: str, mode: Any, labels: tuple[str, ...] = c) -> Gauge:
            return Gauge(name, doc, labels, registry=r, multiprocess_mode=mode)

        def hist(name: str, doc: str, labels: tuple[str, ...]) -> Histogram:
            return Histogram(name, doc, labels, buckets=LATENCY_BUCKETS, registry=r)

        recent = "livemostrecent"  # every worker sees the same flags; show the latest set
        return cls(
            decisions=Counter(
                "partial_trust_decisions_total",
                "Corridor outcomes by status and reason code.",
                ("corridor", "status", "reason"),
                registry=r,
            ),
            llm_latency=hist(
                "partial_trust_llm_latency_seconds",
                "LLM candidate latency (request to parsed answer or failure), by outcome status.",
                ("corridor", "status"),
            ),
            baseline_latency=hist(
                "partial_trust_baseline_latency_seconds",
                "Deterministic baseline latency on sampled requests (compare with the LLM's).",
                c,
            ),
            candidates=Counter(
                "partial_trust_candidates_total",
                "Parsed LLM candidates by whether intent and entity keys matched the baseline "
                "(unknown: the answer was too malformed to tell).",
                ("corridor", "intent_match", "entity_key_match"),
                registry=r,
            ),
            flag_enabled=gauge(
                "partial_trust_flag_enabled", "1 when the corridor is enabled, else 0.", recent
            ),
            flag_sample_rate=gauge(
                "partial_trust_flag_sample_rate", "Effective sample rate (0 when off).", recent
            ),
            flag_timeout_ms=gauge(
                "partial_trust_flag_timeout_ms", "Effective LLM timeout, ms (0 when off).", recent
            ),
            flags_available=gauge(
                "partial_trust_flags_available",
                "1 when the flag provider is ready, 0 when the corridor failed closed.",
                recent,
            ),
            # 1/0 only: the label is the corridor, so a capped corridor (an ``admin`` one the
            # flags ask to canary, or a variable's ceiling) is visible without new series
            mode_capped=gauge(
                "partial_trust_mode_capped",
                "1 when the corridor's risk class or a variable lowered the mode the flags "
                "asked for (it runs in a stricter mode than set), else 0.",
                recent,
            ),
            risk_log_records=Counter(
                "partial_trust_risk_log_records_total",
                "Risk-log records by result: written, dropped (queue full) or failed (I/O).",
                ("result",),
                registry=r,
            ),
            risk_log_last_write=gauge(
                "partial_trust_risk_log_last_write_timestamp_seconds",
                "Unix time of the last successful risk-log write.",
                "max",
                (),
            ),
            circuit_state=gauge(
                "partial_trust_circuit_state",
                "LLM circuit breaker: 0 closed, 1 open, 2 half open.",
                "livemax",
            ),
            llm_in_flight=gauge(
                "partial_trust_llm_in_flight",
                "LLM candidate calls currently waiting for an answer.",
                "livesum",
            ),
            agreement=Counter(
                "partial_trust_agreement_total",
                "Outcomes by mode and whether the candidate decided what the baseline decided "
                "(unknown: no parsed candidate).",
                ("corridor", "mode", "agreement"),
                registry=r,
            ),
            shadow_queue_depth=gauge(
                "partial_trust_shadow_queue_depth",
                "Shadow LLM calls waiting in the background queue.",
                "livesum",
            ),
            shadow_dropped=Counter(
                "partial_trust_shadow_dropped_total",
                "Shadow LLM calls dropped, by cause: the background queue was full (queue_full), "
                "the worker was busy serving and shadow had used its trickle (loop_busy), "
                "shadow was over its share of the event loop (loop_share), or it had stopped.",
                ("corridor", "cause"),
                registry=r,
            ),
            shadow_shed=Counter(
                "partial_trust_shadow_shed_total",
                "Requests shadow did not look at (no parse, pre-check or sampling) because the "
                "worker was busy serving and shadow had used its share of the event loop; "
                "their answers went out untouched.",
                ("corridor",),
                registry=r,
            ),
        )


_DECLARED: weakref.WeakKeyDictionary[CollectorRegistry, _Families] = weakref.WeakKeyDictionary()


class CorridorMetrics:
    """The Prometheus sink. One per process is enough; several on one registry share families.

    ``registry=None`` means prometheus_client's global ``REGISTRY``. Tests pass a fresh
    ``CollectorRegistry()``.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = REGISTRY if registry is None else registry
        families = _DECLARED.get(self.registry)
        if families is None:
            families = _DECLARED[self.registry] = _Families.declare(self.registry)
        self._f = families
        # Hot-path caches: label tuple -> child. Keys hold the enum members themselves.
        self._decisions: dict[tuple[str, Status, Reason], Counter] = {}
        self._latency: dict[tuple[str, Status], Histogram] = {}
        self._baseline: dict[str, Histogram] = {}
        self._candidates: dict[tuple[str, bool | None, bool | None], Counter] = {}
        self._sampled_path: dict[str, tuple[Gauge, Gauge]] = {}  # circuit state, in flight
        self._agreement: dict[tuple[str, Mode, bool | None], Counter] = {}
        self._shadow_depth: dict[str, Gauge] = {}
        self._shadow_dropped: dict[tuple[str, str], Counter] = {}
        self._shadow_shed: dict[str, Counter] = {}

    # -- the hot path ------------------------------------------------------------------------

    def count(self, outcome: Outcome) -> None:
        """Count one outcome in ``partial_trust_decisions_total``: all a skip records here."""
        key = (outcome.corridor, outcome.status, outcome.reason)
        child = self._decisions.get(key)
        if child is None:
            child = self._decision_child(key)
        child.inc()

    def observe(self, outcome: Outcome) -> None:
        """Count one outcome; observe latencies and candidate matches when the outcome has them."""
        self.count(outcome)
        corridor, status = outcome.corridor, outcome.status
        latency = outcome.latency_ms
        if latency is not None and latency >= 0.0:  # also refuses NaN (it would poison _sum)
            hist = self._latency.get((corridor, status))
            if hist is None:
                hist = self._latency_child(corridor, status)
            hist.observe(latency / 1000.0)
        intent, entity = outcome.intent_match, outcome.entity_key_match
        if intent is not None or entity is not None:
            ckey = (corridor, intent, entity)
            cand = self._candidates.get(ckey)
            if cand is None:
                cand = self._candidate_child(ckey)
            cand.inc()
        baseline = outcome.baseline_latency_ms
        if baseline is not None and baseline >= 0.0 and status in SAMPLED_STATUSES:
            bh = self._baseline.get(corridor)
            if bh is None:
                bh = self._baseline_child(corridor)
            bh.observe(baseline / 1000.0)
        if status in SAMPLED_STATUSES:  # an LLM call was due: agreement true/false/unknown
            akey = (corridor, outcome.mode, outcome.agreement)
            agree = self._agreement.get(akey)
            if agree is None:
                agree = self._agreement_child(akey)
            agree.inc()

    # -- cache misses: validate once, then never again ---------------------------------------

    def _decision_child(self, key: tuple[str, Status, Reason]) -> Counter:
        corridor, status, reason = key
        labels = (_corridor_label(corridor), Status(status).value, Reason(reason).value)
        child = self._decisions[key] = self._f.decisions.labels(*labels)
        return child

    def _latency_child(self, corridor: str, status: Status) -> Histogram:
        labels = (_corridor_label(corridor), Status(status).value)
        child = self._latency[(corridor, status)] = self._f.llm_latency.labels(*labels)
        return child

    def _baseline_child(self, corridor: str) -> Histogram:
        label = _corridor_label(corridor)
        child = self._baseline[corridor] = self._f.baseline_latency.labels(label)
        return child

    def _candidate_child(self, key: tuple[str, bool | None, bool | None]) -> Counter:
        corridor, intent, entity = key
        labels = (_corridor_label(corridor), _match_label(intent), _match_label(entity))
        child = self._candidates[key] = self._f.candidates.labels(*labels)
        return child

    def _agreement_child(self, key: tuple[str, Mode, bool | None]) -> Counter:
        corridor, mode, agreement = key
        labels = (_corridor_label(corridor), Mode(mode).value, _match_label(agreement))
        child = self._agreement[key] = self._f.agreement.labels(*labels)
        return child

    # -- everything else (rare: per flag change, per risk-log batch, per breaker change) -----

    def preinit(self, corridor: str) -> None:
        """Create every known series of ``corridor`` at 0 and warm the hot-path caches."""
        _corridor_label(corridor)
        for status, reason in STATUS_REASONS:
            self._decision_child((corridor, status, reason))
        for status in SAMPLED_STATUSES:
            self._latency_child(corridor, status)
        self._baseline_child(corridor)
        for intent in MATCH_VALUES:
            for entity in MATCH_VALUES:
                if intent is not None or entity is not None:
                    self._candidate_child((corridor, intent, entity))
        for mode in OUTCOME_MODES:
            for agreement in MATCH_VALUES:
                self._agreement_child((corridor, mode, agreement))
        self._f.shadow_queue_depth.labels(corridor)
        for why in SHADOW_DROP_CAUSES:
            self._f.shadow_dropped.labels(corridor, why)
        self._shadow_shed[corridor] = self._f.shadow_shed.labels(corridor)
        for result in RISK_LOG_RESULTS:
            self._f.risk_log_records.labels(result)
        self._gauges(corridor)

    def set_flags(self, corridor: str, settings: EffectiveSettings) -> None:
        """Mirror the effective settings (call on every flag change and at start)."""
        label = _corridor_label(corridor)
        self._f.flag_enabled.labels(label).set(1 if settings.enabled else 0)
        self._f.flag_sample_rate.labels(label).set(settings.sample_rate)
        self._f.flag_timeout_ms.labels(label).set(settings.timeout_ms)
        self._f.flags_available.labels(label).set(1 if settings.flags_available else 0)
        self._f.mode_capped.labels(label).set(1 if settings.mode_capped else 0)

    def risk_log_result(self, result: str, n: int) -> None:
        """``RiskLog(on_result=...)`` callback: ``n`` records were written, dropped or failed."""
        if result not in RISK_LOG_RESULTS:
            raise ValueError(f"unknown risk-log result {result!r}")
        self._f.risk_log_records.labels(result).inc(n)
        if result == "written" and n > 0:
            self._f.risk_log_last_write.set(time.time())

    def set_risk_log_last_write(self, ts: float) -> None:
        """Set explicitly (``risk_log_result("written", n)`` already does it with ``now``)."""
        self._f.risk_log_last_write.set(ts)

    def set_circuit_state(self, corridor: str, code: int) -> None:
        """``code`` as in ``circuit.STATE_CODES``: 0 closed, 1 open, 2 half open."""
        if code not in CIRCUIT_CODES:
            raise ValueError(f"unknown circuit state code {code!r}")
        self._gauges(corridor)[0].set(code)

    def llm_in_flight(self, corridor: str, delta: int) -> None:
        """+1 when an LLM call starts, -1 when it ends (in a ``finally``)."""
        self._gauges(corridor)[1].inc(delta)

    def shadow_queue(
        self, corridor: str, depth: int, *, dropped: int = 0, cause: str = "queue_full"
    ) -> None:
        """The shadow queue's depth now, and how many calls it just dropped, and why."""
        gauge = self._shadow_depth.get(corridor)
        if gauge is None:  # twice per shadow job: children cached, as on the sampled path
            gauge = self._shadow_depth[corridor] = self._f.shadow_queue_depth.labels(
                _corridor_label(corridor)
            )
        gauge.set(depth)
        if dropped:
            counter = self._shadow_dropped.get((corridor, cause))
            if counter is None:
                if cause not in SHADOW_DROP_CAUSES:
                    raise ValueError(f"unknown shadow drop cause {cause!r}")
                counter = self._f.shadow_dropped.labels(_corridor_label(corridor), cause)
                self._shadow_dropped[(corridor, cause)] = counter
            counter.inc(dropped)

    def shadow_shed(self, corridor: str) -> None:
        """One request shadow stepped aside from (see ``ShadowQueue.admitting``)."""
        counter = self._shadow_shed.get(corridor)
        if counter is None:
            counter = self._shadow_shed[corridor] = self._f.shadow_shed.labels(
                _corridor_label(corridor)
            )
        counter.inc()

    def _gauges(self, corridor: str) -> tuple[Gauge, Gauge]:
        """Circuit-state and in-flight children: touched twice per sampled request, so cached."""
        pair = self._sampled_path.get(corridor)
        if pair is None:
            label = _corridor_label(corridor)
            pair = (self._f.circuit_state.labels(label), self._f.llm_in_flight.labels(label))
            self._sampled_path[corridor] = pair
        return pair


class MetricsApp:
    """The exposition endpoint as an ASGI object.

    An object rather than prometheus_client's plain function because Starlette routes a plain
    function as a request handler: ``Route("/metrics", metrics_endpoint())`` just works.
    """

    def __init__(self, source: CollectorRegistry) -> None:
        self._app = make_asgi_app(source)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._app(scope, receive, send)


def metrics_endpoint(
    registry: CollectorRegistry | None = None, *, env: Environment | None = None
) -> MetricsApp:
    """The ``/metrics`` endpoint: ``Route("/metrics", metrics_endpoint(registry))``.

    With ``PROMETHEUS_MULTIPROC_DIR`` set it serves a fresh registry holding only a
    ``MultiProcessCollector`` (the per-process registry would show one worker's share);
    otherwise ``registry`` or the global one.
    """
    env = Environment.from_os() if env is None else env  # a host app's entry point
    if env.multiproc_dir:
        source = CollectorRegistry()
        MultiProcessCollector(source)  # type: ignore[no-untyped-call]  # prometheus_client: unannotated
    else:
        source = REGISTRY if registry is None else registry
    return MetricsApp(source)
