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

Every scenario must also produce the outcome it is named for with every sink live, so that a
clean result cannot come from a sink that recorded nothing. The generated values and the
leak detector are in ``tests/support/leaks.py`` (their no-false-positive design is explained
there), the capture in ``tests/support/sinks.py``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from starlette.responses import JSONResponse

from partial_trust.contracts import CommandDTO
from partial_trust.middleware.acceptance import Verdict
from partial_trust.middleware.candidate import ShoppingCandidate
from partial_trust.middleware.corridor import ShoppingCorridor
from tests.corridor_harness import Harness, completion
from tests.corridor_harness import settings as corridor_settings
from tests.support.leaks import SECRETS, Observed, Secrets, find_leaks
from tests.support.otel import install_span_exporter
from tests.support.sinks import Scenario, run_scenario

# Spans: one SDK provider for the whole session (OpenTelemetry allows setting it once).
_install_tracing_once = install_span_exporter

# --------------------------------------------------------------------------------------------
# One scenario per outcome.


def _ok(s: Secrets) -> dict[str, Any]:
    return s.command()


def _answer(**over: Any) -> Callable[[Secrets], httpx.Response]:
    return lambda s: completion(s.candidate(**over))


class _FailingJudge(ShoppingCorridor):
    """The shopping corridor with a bug in its acceptance rules."""

    def judge(
        self, raw: object, command: CommandDTO, baseline: dict[str, Any], threshold: float
    ) -> Verdict[ShoppingCandidate]:
        raise RuntimeError("judge failed")


class _QuotingJudge(ShoppingCorridor):
    """A bug whose message quotes the user's text: it must reach no sink."""

    def judge(
        self, raw: object, command: CommandDTO, baseline: dict[str, Any], threshold: float
    ) -> Verdict[ShoppingCandidate]:
        raise KeyError(f"no such item: {command.text}")


def _fail_judge(h: Harness, s: Secrets) -> None:
    h.engine.corridor = _FailingJudge()


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
                for k, v in s.candidate(
                    payload={"items": [{"name": n} for n in (s.items[0], "zzqx", "qxzz")]}
                ).items()
                if k != "confidence"
            }
        ),
    ),
    "item_not_grounded": Scenario(
        "fallback_deterministic",
        "item_not_grounded",
        _ok,
        lambda s: completion(
            s.candidate(payload={"items": [{"name": s.items[0], "quantity": 999}]}, confidence=1.0)
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
        h.engine.corridor = _QuotingJudge()

    sc = Scenario("error", "internal_error", _ok, _answer(), patch=quoting_bug)
    obs = asyncio.run(run_scenario(sc, s))
    check_outcome(sc, obs)
    assert obs.response.status_code == 200
    leaks = [leak for leak in find_leaks(s, obs) if leak[0] == "log record"]
    assert leaks == [], leaks[:3]
    assert find_leaks(s, obs) == []
