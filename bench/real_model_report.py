"""The figures of a real-model run (``bench/real_model.py``), from what the run recorded.

Inputs per command: the corpus entry, the served HTTP status and body, the request's
latency, the risk-log record of the command (joined by its keyed ``command_key``) and what the
tap saw the model write. Nothing here talks to a process.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bench.corpus_eval import baseline_decision, decision_reading, is_right
from bench.llm_tap import Tapped
from bench.loadgen import pct

SAMPLED = ("accepted_llm", "fallback_deterministic", "error")


@dataclass
class Observed:
    entry: dict[str, Any]
    status: int
    body: bytes
    request_ms: float
    record: dict[str, Any] | None  # the risk-log line, if the outcome was logged
    tapped: Tapped | None  # what the model wrote, if it was asked

    @property
    def served(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    @property
    def sampled(self) -> bool:
        return self.record is not None and self.record.get("status") in SAMPLED


def _baseline_of(r: Observed) -> object:
    return baseline_decision(r.entry)


def _llm_of(r: Observed) -> object:
    return r.tapped.candidate if r.tapped else None


def _served_of(r: Observed) -> object:
    return r.served


def _canary_of(r: Observed) -> object:
    """What canary serves for this command: the accepted candidate, else the baseline's
    answer. In a shadow run the same rules judged the same candidate, so this is canary's
    served answer without asking the model a second time."""
    accepted = r.record is not None and r.record.get("status") == "accepted_llm"
    if accepted and r.tapped is not None and r.tapped.candidate:
        return r.tapped.candidate
    return baseline_decision(r.entry)


#: Whose decision ``Report.figures`` scores: the baseline's, the model's, or what was served.
_DECISION_OF: dict[str, Callable[[Observed], object]] = {
    "baseline": _baseline_of,
    "llm": _llm_of,
    "served": _served_of,
    "canary": _canary_of,
}


def _job_of(decision: object) -> object:
    return decision.get("job") if isinstance(decision, dict) else None


@dataclass
class Report:
    mode: str
    split: str
    rows: list[Observed]
    lines: dict[str, Any] = field(default_factory=dict)

    def figures(self) -> dict[str, Any]:
        rows = self.rows
        sampled = [r for r in rows if r.sampled]
        outcomes = Counter(
            f"{r.record['status']}/{r.record['reason_code']}" for r in rows if r.record
        )
        accepted = [r for r in sampled if r.record and r.record["status"] == "accepted_llm"]
        with_candidate = [r for r in sampled if r.tapped is not None and r.tapped.candidate]
        agree = [
            r
            for r in with_candidate
            if decision_reading(r.tapped.candidate if r.tapped else None)
            == decision_reading(baseline_decision(r.entry))
        ]
        llm_ms = [
            float(r.record["latency_ms"])
            for r in sampled
            if r.record and r.record.get("latency_ms") is not None
        ]

        def acc(subset: list[Observed], pick: str) -> tuple[int, int]:
            right = 0
            for r in subset:
                decision = _DECISION_OF[pick](r)
                right += is_right(r.entry["expected"], decision)
            return right, len(subset)

        # an accepted answer is judged as canary serves it (in shadow the baseline went out)
        wrong_accepted = [
            {
                "id": r.entry["id"],
                "text": r.entry["command"]["text"],
                "served": _job_of(_canary_of(r)),
                "expected": r.entry["expected"],
            }
            for r in accepted
            if not is_right(r.entry["expected"], _canary_of(r))
        ]
        improved = [
            r.entry["id"]
            for r in accepted
            if is_right(r.entry["expected"], _canary_of(r))
            and not is_right(r.entry["expected"], baseline_decision(r.entry))
        ]
        return {
            "mode": self.mode,
            "split": self.split,
            "commands": len(rows),
            "http": dict(Counter(r.status for r in rows)),
            "errors_5xx": sum(r.status >= 500 for r in rows),
            "risk_log_lines": sum(r.record is not None for r in rows),
            "sampled": len(sampled),
            "outcomes": dict(sorted(outcomes.items())),
            "acceptance": _rate(len(accepted), len(sampled)),
            "agreement_with_baseline": _rate(len(agree), len(with_candidate)),
            "accuracy_all": {k: _rate(*acc(rows, k)) for k in ("baseline", "served", "canary")},
            "accuracy_sampled": {
                k: _rate(*acc(sampled, k)) for k in ("baseline", "llm", "served", "canary")
            },
            "accepted_wrong_by_label": wrong_accepted,
            "accepted_fixing_baseline": improved,
            "latency_ms": {
                "llm": _pcts(llm_ms),
                "request_sampled": _pcts([r.request_ms for r in sampled]),
                "request_all": _pcts([r.request_ms for r in rows]),
            },
            **self.lines,
            # per command, for what-if analyses of new acceptance rules (bench output only:
            # this is the corpus's own text, never a production log)
            "per_command": [
                {
                    "id": r.entry["id"],
                    "outcome": f"{r.record['status']}/{r.record['reason_code']}"
                    if r.record
                    else None,
                    "candidate": r.tapped.candidate if r.tapped else None,
                    "llm_ms": r.tapped.latency_ms if r.tapped else None,
                }
                for r in rows
            ],
        }


def _rate(right: int, total: int) -> dict[str, Any]:
    return {"n": right, "of": total, "rate": round(right / total, 3) if total else None}


def _pcts(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p95": None, "p99": None, "max": None}
    return {
        "p50": round(pct(values, 50), 1),
        "p95": round(pct(values, 95), 1),
        "p99": round(pct(values, 99), 1),
        "max": round(max(values), 1),
    }


def render(fig: dict[str, Any]) -> str:
    """The figures as the table bench/README.md records."""

    def r(x: dict[str, Any]) -> str:
        return "n/a" if x["rate"] is None else f"{x['n']}/{x['of']} ({100 * x['rate']:.1f}%)"

    lat = fig["latency_ms"]
    out = [
        f"mode {fig['mode']}, split {fig['split']}: {fig['commands']} commands, "
        f"HTTP {fig['http']}, 5xx {fig['errors_5xx']}, risk-log lines {fig['risk_log_lines']}, "
        f"sampled {fig['sampled']}",
        f"acceptance (accepted / sampled)        {r(fig['acceptance'])}",
        f"agreement with baseline (candidates)   {r(fig['agreement_with_baseline'])}",
        f"accuracy, all commands: baseline {r(fig['accuracy_all']['baseline'])}, "
        f"served {r(fig['accuracy_all']['served'])}, "
        f"canary's answer {r(fig['accuracy_all']['canary'])}",
        "accuracy, sampled commands: "
        + ", ".join(f"{k} {r(v)}" for k, v in fig["accuracy_sampled"].items()),
        "outcomes: " + ", ".join(f"{k} {v}" for k, v in fig["outcomes"].items()),
    ]
    for name, p in lat.items():
        out.append(
            f"latency {name:<16} p50 {p['p50']} ms, p95 {p['p95']} ms, p99 {p['p99']} ms, "
            f"max {p['max']} ms"
        )
    out.append(
        f"accepted and right where the baseline was wrong: {fig['accepted_fixing_baseline']}"
    )
    for w in fig["accepted_wrong_by_label"]:
        out.append(f"ACCEPTED BUT WRONG {w['id']}: {w['text']!r}")
        out.append(f"    canary serves {w['served']}, label {w['expected']}")
    return "\n".join(out)
