"""One request through the in-process middleware, with every sink the privacy tests read captured.

A scenario names the outcome it must produce and how to get there (the command, the LLM's
reply or exception, settings, an open circuit, a patched part). ``run_scenario`` plays it once
inside an active host request span and returns what each sink received: the risk-log lines,
every label value in the metrics registry, every finished span's strings (the session's one
SDK provider, ``tests/support/otel.py``), and every ``logging`` record from any logger at
DEBUG, formatted, with its arguments and attributes.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import respx
from opentelemetry import trace

from partial_trust.config import EffectiveSettings
from partial_trust.middleware.circuit import CircuitBreaker
from tests.corridor_harness import LLM_URL, Harness, completion
from tests.corridor_harness import settings as corridor_settings
from tests.support.leaks import Observed, Secrets
from tests.support.otel import EXPORTER
from tests.support.quick_harness import TIMEOUT_MS, quick_harness

ON = corridor_settings(timeout_ms=TIMEOUT_MS)

# --------------------------------------------------------------------------------------------
# Spans: the session's one in-memory exporter (OpenTelemetry allows one provider, set once).


def span_strings() -> Iterator[str]:
    for span in EXPORTER.get_finished_spans():
        yield span.name
        yield str(span.status.description or "")
        for key, value in (span.attributes or {}).items():
            yield str(key)
            yield str(value)
        for ev in span.events:
            yield ev.name
            yield from (k + "=" + str(v) for k, v in (ev.attributes or {}).items())
        for link in span.links:
            yield from (k + "=" + str(v) for k, v in (link.attributes or {}).items())


# --------------------------------------------------------------------------------------------
# Log records from every logger, at DEBUG.


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))
        self.lines.append(repr(record.args))
        self.lines.append(repr(getattr(record, "__dict__", {})))


@contextmanager
def captured_logs() -> Iterator[_Collect]:
    root = logging.getLogger()
    handler = _Collect()
    saved = root.level
    others = [
        (lg, lg.level)
        for lg in logging.root.manager.loggerDict.values()
        if isinstance(lg, logging.Logger) and lg.level > logging.DEBUG
    ]
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    for lg, _ in others:
        lg.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(saved)
        for lg, level in others:
            lg.setLevel(level)


# --------------------------------------------------------------------------------------------
# One scenario, played once.


@dataclass
class Scenario:
    status: str | None  # None: nothing is recorded (corridor off)
    reason: str | None
    command: Callable[[Secrets], Any]
    reply: Callable[[Secrets], Any] | None = None  # an httpx.Response or an exception
    settings: EffectiveSettings | None = None
    circuit_open: bool = False
    patch: Callable[[Harness, Secrets], None] | None = None


def _decisions(h: Harness) -> dict[tuple[str, str], float]:
    out: dict[tuple[str, str], float] = {}
    for family in h.registry.collect():
        for sample in family.samples:
            if sample.name == "partial_trust_decisions_total" and sample.value:
                out[(sample.labels["status"], sample.labels["reason"])] = sample.value
    return out


async def run_scenario(sc: Scenario, s: Secrets) -> Observed:
    EXPORTER.clear()
    circuit = CircuitBreaker(failure_threshold=1, cooldown_s=600) if sc.circuit_open else None
    if circuit is not None:
        circuit.record_failure()
    with (
        tempfile.TemporaryDirectory() as tmp,
        respx.mock(base_url=LLM_URL, assert_all_called=False) as llm,
        captured_logs() as logs,
    ):
        route = llm.post("/chat/completions")
        reply = sc.reply(s) if sc.reply is not None else completion(s.candidate())
        if isinstance(reply, Exception):
            route.mock(side_effect=reply)
        else:
            route.mock(return_value=reply)
        async with quick_harness(Path(tmp), sc.settings or ON, circuit) as h:
            if sc.patch is not None:
                sc.patch(h, s)
            body = sc.command(s)
            content = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False)
            # An active request span, as a host's instrumentation would have: the corridor's
            # span becomes its child and ``not_sampled`` annotates it.
            with trace.get_tracer("host").start_as_current_span("request"):
                response = await h.client.post(
                    "/route", content=content, headers={"content-type": "application/json"}
                )
            records = h.lines()
            labels = [
                str(v)
                for family in h.registry.collect()
                for sample in family.samples
                for v in sample.labels.values()
            ]
            decisions = _decisions(h)
        return Observed(response, records, labels, list(span_strings()), logs.lines, decisions)
