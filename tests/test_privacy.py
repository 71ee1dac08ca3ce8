"""Privacy: nothing the user sent reaches the risk log, metric labels, spans or log lines.

A hypothesis property runs random commands (random command id, user id, item names, list
ids; the text made of them) through the in-process middleware once for every outcome the
corridor can produce, and then looks for every 4-character window of those values in:

* the risk-log lines (keys and values),
* every label value in the metrics registry (``registry.collect()``),
* every span's name, attributes, status, events and links (an SDK tracer provider with an
  in-memory exporter, installed once for the session the way ``tests/test_tracing.py`` does),
* every ``logging`` record emitted during the request, from any logger at DEBUG, formatted
  with its traceback.

No false positives: each generated value carries a "marker" character (lowercase Cyrillic
or CJK) in every position divisible by 3, so every 4-character window holds at least one,
and only windows with a marker are looked for. The sinks only ever write ASCII of their own
(enums, numbers, hex keys, English messages), so a hit can only be the user's data. Matching
is case-insensitive (the baseline lowercases item names).
"""

from __future__ import annotations

import asyncio
import json
import logging
import tempfile
import unicodedata
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry import trace
from starlette.responses import JSONResponse

from middleware.circuit import CircuitBreaker
from middleware.config import EffectiveSettings
from middleware.text import strip_punct
from tests.corridor_harness import LLM_URL, Harness, completion, iter_strings
from tests.corridor_harness import settings as corridor_settings
from tests.support.otel import EXPORTER, install_span_exporter
from tests.test_fuzz import quick_harness

C = "add_shopping_item"
#: The profile's cap: a loaded machine must not turn an instant LLM double into a timeout.
ON = corridor_settings(timeout_ms=500)
MARKERS = "абвгдежзийклмнопрстуфхцчшщъыьэюяё中文字符测试隐私数据"

# --------------------------------------------------------------------------------------------
# Spans: one SDK provider for the whole session (OpenTelemetry allows setting it once).

_EXPORTER = EXPORTER
_install_tracing_once = install_span_exporter


def span_strings() -> Iterator[str]:
    for span in _EXPORTER.get_finished_spans():
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
# The secrets.


def _name_safe(ch: str) -> bool:
    """Characters an accepted item name may hold, also after NFKC folding (the acceptance
    rules refuse markup, URL and template characters in either form)."""
    folded = unicodedata.normalize("NFKC", ch)
    return not any(c in "<>{}[]`\\|$:;=@#" or c.isspace() for c in folded)


_RICH = st.characters(categories=["L", "N", "Pd", "Pc", "So"]).filter(_name_safe) | (
    st.sampled_from(list("-_.'~+^%!?"))
)


@st.composite
def secret(draw: st.DrawFn, min_size: int = 4, max_size: int = 16) -> str:
    n = draw(st.integers(min_size, max_size))
    return "".join(draw(st.sampled_from(MARKERS)) if i % 3 == 0 else draw(_RICH) for i in range(n))


@dataclass(frozen=True)
class Secrets:
    command_id: str
    user_id: str
    items: tuple[str, ...]
    lists: tuple[str, str]
    foreign_list: str
    words: str

    def command(self, text: str | None = None, **extra: Any) -> dict[str, Any]:
        body: dict[str, Any] = {
            "command_id": self.command_id,
            "user_id": self.user_id,
            "text": self.text() if text is None else text,
            "capabilities": ["start_job"],
            "context": {"default_list_id": self.lists[0], "lists": list(self.lists)},
        }
        body.update(extra)
        return body

    def text(self) -> str:
        return f"add {' and '.join(self.items)} to my shopping list"

    def candidate(self, **over: Any) -> dict[str, Any]:
        raw: dict[str, Any] = {
            "intent": C,
            "job": {
                "job_type": C,
                "payload": {
                    "list_id": self.lists[1],
                    "items": [{"name": n, "quantity": 2} for n in self.items],
                },
            },
            "confidence": 0.95,
        }
        payload = over.pop("payload", {})
        raw["job"]["payload"].update(payload)
        raw.update(over)
        return raw

    def values(self) -> list[str]:
        return [
            self.command_id,
            self.user_id,
            *self.items,
            *self.lists,
            self.foreign_list,
            self.words,
            self.text(),
        ]


def _distinct(s: Secrets) -> bool:
    """No two values the baseline could take for the same (it trims punctuation, lowercases)."""
    keys = [strip_punct(v).casefold() for v in (*s.items, *s.lists, s.foreign_list)]
    return len(set(keys)) == len(keys)


SECRETS = st.builds(
    Secrets,
    command_id=secret(),
    user_id=secret(),
    items=st.lists(secret(max_size=12), min_size=1, max_size=3).map(tuple),
    lists=st.tuples(secret(max_size=10), secret(max_size=10)),
    foreign_list=secret(max_size=10),
    words=secret(8, 30),
).filter(_distinct)


def windows(value: str) -> set[str]:
    folded = value.casefold()
    return {
        folded[i : i + 4]
        for i in range(len(folded) - 3)
        if any(ch in MARKERS for ch in folded[i : i + 4])
    }


# --------------------------------------------------------------------------------------------
# One scenario per outcome.


@dataclass
class Scenario:
    status: str | None  # None: nothing is recorded (corridor off)
    reason: str | None
    command: Callable[[Secrets], Any]
    reply: Callable[[Secrets], Any] | None = None  # an httpx.Response or an exception
    settings: EffectiveSettings | None = None
    circuit_open: bool = False
    patch: Callable[[Harness, Secrets], None] | None = None


def _ok(s: Secrets) -> dict[str, Any]:
    return s.command()


def _answer(**over: Any) -> Callable[[Secrets], httpx.Response]:
    return lambda s: completion(s.candidate(**over))


def _fail_judge(h: Harness, s: Secrets) -> None:
    def boom(*args: Any) -> Any:
        raise RuntimeError("judge failed")

    h.engine.corridor.judge = boom  # type: ignore[method-assign, assignment]


def _baseline_500(h: Harness, s: Secrets) -> None:
    async def failing(scope: Any, receive: Any, send: Any) -> None:
        body = {"error": "boom", "detail": s.words, "user": s.user_id}
        await JSONResponse(body, status_code=500)(scope, receive, send)

    h.app.app = failing


SCENARIOS: dict[str, Scenario] = {
    "accepted": Scenario("accepted_llm", "accepted", _ok, _answer()),
    "accepted-no-confidence": Scenario(
        "accepted_llm",
        "accepted",
        _ok,
        lambda s: completion({k: v for k, v in s.candidate().items() if k != "confidence"}),
    ),
    "intent_mismatch": Scenario(
        "fallback_deterministic", "intent_mismatch", _ok, _answer(intent="remove_shopping_item")
    ),
    "schema_violation": Scenario(
        "fallback_deterministic",
        "schema_violation",
        _ok,
        lambda s: completion({**s.candidate(), s.words: s.user_id}),
    ),
    "empty_items": Scenario(
        "fallback_deterministic", "empty_items", _ok, _answer(payload={"items": []})
    ),
    "too_many_items": Scenario(
        "fallback_deterministic",
        "too_many_items",
        _ok,
        lambda s: completion(
            s.candidate(payload={"items": [{"name": s.items[0] + str(i)} for i in range(21)]})
        ),
    ),
    "invalid_item_name": Scenario(
        "fallback_deterministic",
        "invalid_item_name",
        _ok,
        lambda s: completion(s.candidate(payload={"items": [{"name": f"<b>{s.items[0]}</b>"}]})),
    ),
    "list_id_not_allowed": Scenario(
        "fallback_deterministic",
        "list_id_not_allowed",
        _ok,
        lambda s: completion(s.candidate(payload={"list_id": s.foreign_list})),
    ),
    "low_confidence": Scenario(
        "fallback_deterministic", "low_confidence", _ok, _answer(confidence=0.05)
    ),
    "low_confidence-surrogate": Scenario(
        "fallback_deterministic",
        "low_confidence",
        _ok,
        lambda s: completion(
            {
                k: v
                for k, v in s.candidate(payload={"items": [{"name": s.words + "zzqx"}]}).items()
                if k != "confidence"
            }
        ),
    ),
    "llm_timeout": Scenario(
        "error", "llm_timeout", _ok, lambda s: httpx.ReadTimeout(f"slow {s.words}")
    ),
    "llm_http_error": Scenario(
        "error",
        "llm_http_error",
        _ok,
        lambda s: httpx.Response(500, json={"error": s.words, "echo": s.text()}),
    ),
    "llm_invalid_response": Scenario(
        "error",
        "llm_invalid_response",
        _ok,
        lambda s: completion(f"Sure! {s.text()} {s.words}"),
    ),
    "llm_invalid_response-raw": Scenario(
        "error",
        "llm_invalid_response",
        _ok,
        lambda s: httpx.Response(200, content=f"{s.words} {s.user_id}".encode()),
    ),
    "llm_unavailable": Scenario(
        "error", "llm_unavailable", _ok, lambda s: httpx.ConnectError(f"refused {s.words}")
    ),
    "circuit_open": Scenario("error", "circuit_open", _ok, _answer(), circuit_open=True),
    "internal_error": Scenario("error", "internal_error", _ok, _answer(), patch=_fail_judge),
    "corridor_mismatch": Scenario(
        "skipped", "corridor_mismatch", lambda s: s.command(text=f"{s.words} {s.items[0]}")
    ),
    "corridor_mismatch-clarify": Scenario(
        "skipped",
        "corridor_mismatch",
        lambda s: s.command(text=f"add {s.items[0]} to my shopping list {s.foreign_list}"),
        _answer(),
    ),
    "capability_mismatch": Scenario(
        "skipped", "capability_mismatch", lambda s: s.command(capabilities=[s.words])
    ),
    "policy_disabled": Scenario(
        "skipped", "policy_disabled", _ok, settings=corridor_settings(policy_enabled=False)
    ),
    "flags_unavailable": Scenario(
        "skipped", "flags_unavailable", _ok, settings=corridor_settings(flags_available=False)
    ),
    "not_sampled": Scenario(
        "skipped", "not_sampled", _ok, settings=corridor_settings(sample_rate=0.0)
    ),
    "invalid_command": Scenario(
        "skipped", "invalid_command", lambda s: {**s.command(), s.words: s.user_id}
    ),
    "invalid_command-raw": Scenario(
        "skipped",
        "invalid_command",
        lambda s: json.dumps(s.command(), ensure_ascii=False).encode()[:-2],
    ),
    "baseline_error": Scenario("skipped", "baseline_error", _ok, _answer(), patch=_baseline_500),
    "disabled": Scenario(None, None, _ok, _answer(), settings=corridor_settings(enabled=False)),
}


@dataclass
class Observed:
    response: httpx.Response
    records: list[dict[str, Any]]
    metric_labels: list[str]
    spans: list[str]
    logs: list[str]
    decisions: dict[tuple[str, str], float]


def _decisions(h: Harness) -> dict[tuple[str, str], float]:
    out: dict[tuple[str, str], float] = {}
    for family in h.registry.collect():
        for sample in family.samples:
            if sample.name == "partial_trust_decisions_total" and sample.value:
                out[(sample.labels["status"], sample.labels["reason"])] = sample.value
    return out


async def run_scenario(sc: Scenario, s: Secrets) -> Observed:
    _EXPORTER.clear()
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


def find_leaks(s: Secrets, obs: Observed) -> list[tuple[str, str, str]]:
    sinks = {
        "risk log": [json.dumps(r, ensure_ascii=False) for r in obs.records]
        + [x for r in obs.records for x in iter_strings(r)],
        "metric label": obs.metric_labels,
        "span": obs.spans,
        "log record": obs.logs,
    }
    leaks: list[tuple[str, str, str]] = []
    for sink, texts in sinks.items():
        haystack = "\n".join(texts).casefold()
        for value in s.values():
            leaks += [(sink, value, w) for w in sorted(windows(value)) if w in haystack]
    return leaks


def check_outcome(sc: Scenario, obs: Observed) -> None:
    """The scenario produced the outcome it is named for, and every sink was live."""
    assert obs.response.status_code < 500 or sc.patch is _baseline_500
    assert any("HTTP Request" in line for line in obs.logs), "log capture is not live"
    assert "add_shopping_item" in obs.metric_labels
    if sc.status is not None and sc.reason != "not_sampled":
        assert "partial_trust.corridor" in obs.spans, "span capture is not live"
    if sc.reason == "not_sampled":
        assert "partial_trust.status" in obs.spans, "the request span was not annotated"
    if sc.status is None:
        assert obs.records == [] and obs.decisions == {}
        return
    assert obs.decisions == {(sc.status, sc.reason): 1.0}, obs.decisions
    if sc.reason == "not_sampled":
        assert obs.records == []
    else:
        got = [(r["status"], r["reason_code"]) for r in obs.records]
        assert got == [(sc.status, sc.reason)]


@pytest.mark.parametrize("name", list(SCENARIOS))
@settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(s=SECRETS)
def test_no_user_data_in_any_sink(name: str, s: Secrets) -> None:
    _install_tracing_once()
    sc = SCENARIOS[name]
    obs = asyncio.run(run_scenario(sc, s))
    check_outcome(sc, obs)
    assert find_leaks(s, obs) == []


def test_a_fault_carrying_user_text_does_not_reach_the_log() -> None:
    """A bug inside the corridor whose exception message quotes the command (a KeyError on an
    item name, a ValueError echoing the text, a pydantic error with ``input_value``) must not
    carry that text into the app's log lines: the corridor reports ``internal_error``, and the
    log may name the exception's class, never its message (the span code already does so)."""
    _install_tracing_once()
    s = Secrets(
        command_id="жcmd-Zq1",
        user_id="жuser-Zq2",
        items=("щапфел",),
        lists=("юlist-a", "юlist-b"),
        foreign_list="эforeign",
        words="ёsecret words ёhere",
    )

    def quoting_bug(h: Harness, sec: Secrets) -> None:
        def boom(raw: Any, command: Any, *args: Any) -> Any:
            raise KeyError(f"no such item: {command.text}")

        h.engine.corridor.judge = boom  # type: ignore[method-assign, assignment]

    sc = Scenario("error", "internal_error", _ok, _answer(), patch=quoting_bug)
    obs = asyncio.run(run_scenario(sc, s))
    check_outcome(sc, obs)
    assert obs.response.status_code == 200
    leaks = [leak for leak in find_leaks(s, obs) if leak[0] == "log record"]
    assert leaks == [], leaks[:3]
    assert find_leaks(s, obs) == []


def test_the_leak_detector_finds_a_planted_leak() -> None:
    """The detector itself: a value planted in each sink is found there."""
    s = Secrets("жcmd1", "жusr1", ("щит1",), ("юl1x", "юl2x"), "эf1x", "ёwords")
    planted = Observed(
        response=httpx.Response(200),
        records=[{"note": "x юl2x y"}],
        metric_labels=["ЖUSR1"],
        spans=["attr=щит1"],
        logs=["text: add щит1 and"],
        decisions={},
    )
    sinks = {leak[0] for leak in find_leaks(s, planted)}
    assert sinks == {"risk log", "metric label", "span", "log record"}
    assert windows("abcd") == set() and windows("жabc") == {"жabc"}
