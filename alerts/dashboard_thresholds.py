"""The dashboard's threshold lines, written from the one table (``partial_trust.thresholds``).

``generate.py`` rewrites only the ``thresholds.steps`` of the panels named here and leaves the
rest of ``dashboards/partial-trust-corridor.json`` as it is; ``--check`` and
``tests/dashboards/test_dashboard.py`` fail when the committed file differs. A panel draws
every line the table has for its figure: each stage's go line, each effective rollback line
and the monitoring table's alarm, graded yellow -> orange -> red (a single line is red when it
is a rollback line, orange when it only warns).
"""

from __future__ import annotations

import json
import math
from typing import Any

from partial_trust import thresholds as table

#: panel title -> (figure, scale from the table's unit to the panel's)
PANELS: dict[str, tuple[str, float]] = {
    "Error rate": ("error_rate", 1),
    "Intent mismatch rate": ("intent_mismatch_rate", 1),
    "Entity-key mismatch rate": ("entity_key_mismatch_rate", 1),
    "Acceptance drop vs its level 1h earlier": ("acceptance_drop", 1),
    "LLM latency p50 / p95 / p99": ("latency_p95", 0.001),  # ms -> s
    "Share of LLM calls slower than 300 / 400 / 500 ms": ("timeout_share", 1),
    "Risk log: time since last write": ("risk_log_age_seconds", 1),
    "Sampled requests (range)": ("sampled", 1),
    "Agreement rate": ("agreement_rate", 1),
    "Override rate (reviewers' verdicts, 7d)": ("override_rate", 1),
}
GRADE = ("yellow", "orange", "red")


def lines(figure: str) -> tuple[tuple[float, bool], ...]:
    """(line, is a rollback line) for every line of ``figure`` in the table, ascending."""
    found: dict[float, bool] = {}
    for n in table.STAGES:
        go = table.go_line(n, figure)
        if go is not None:
            found.setdefault(go, False)
        rollback = table.rollback_line(n, figure)
        if rollback is not None:
            found[rollback] = True
    row = table.alarm(figure)
    if row is not None:
        found[row.limit] = found.get(row.limit, False) or row.rollback
    if figure == "timeout_share":
        found[table.TIMEOUT_SHARE_LINE] = False
    return tuple(sorted(found.items()))


def steps(figure: str, scale: float) -> list[dict[str, Any]]:
    """Grafana threshold steps for ``figure`` (``sampled``: more is better, red to green)."""
    if figure == "sampled":
        minimums = sorted(
            {b.limit for s in table.STAGES.values() for b in s.go if b.figure == figure}
        )
        rising = ("yellow", "green")[-len(minimums) :]
        return [{"color": "red", "value": None}] + [
            {"color": c, "value": _num(v)} for c, v in zip(rising, minimums, strict=True)
        ]
    if figure == "agreement_rate":
        # more is better, and the gate and the alert want it STRICTLY above each line: a rate
        # of exactly 0.80 fails week 1 (the alert fires at or below it), exactly 0.90 does not
        # leave shadow. Grafana colours a value with the last step whose value is <= it, so
        # each colour starts at the next float above its line; the line itself stays drawn in
        # the colour of the side it belongs to (``thresholds.SHADOW``).
        week1, week2 = table.SHADOW.agreement_week1, table.SHADOW.agreement_week2
        return [
            {"color": "red", "value": None},
            {"color": "red", "value": week1},
            {"color": "orange", "value": math.nextafter(week1, math.inf)},
            {"color": "orange", "value": week2},
            {"color": "green", "value": math.nextafter(week2, math.inf)},
        ]
    if figure == "override_rate":
        # the advisory stage's lines per risk class (``thresholds.ADVISORY``): the strictest
        # warns (orange), the most lenient is every class's limit (red)
        limits = sorted(set(table.ADVISORY.override_lines.values()))
        return [{"color": "green", "value": None}] + [
            {"color": c, "value": _num(v)}
            for c, v in zip(GRADE[-len(limits) :], limits, strict=True)
        ]
    found = lines(figure)
    if len(found) == 1:
        colors: tuple[str, ...] = ("red" if found[0][1] else "orange",)
    else:
        colors = GRADE[-len(found) :]
    return [{"color": "green", "value": None}] + [
        {"color": c, "value": _num(round(line * scale, 10))}
        for c, (line, _) in zip(colors, found, strict=True)
    ]


def _num(value: float) -> float | int:
    return int(value) if float(value).is_integer() and value >= 1 else value


def render(text: str) -> str:
    """``text`` (the dashboard JSON) with the table's threshold steps in the named panels."""
    doc = json.loads(text)
    seen = set()
    for panel in _panels(doc):
        if panel.get("title") in PANELS:
            figure, scale = PANELS[panel["title"]]
            panel["fieldConfig"]["defaults"]["thresholds"]["steps"] = steps(figure, scale)
            seen.add(panel["title"])
    missing = set(PANELS) - seen
    if missing:
        raise ValueError(f"dashboard panels not found: {sorted(missing)}")
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def _panels(doc: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for panel in doc["panels"]:
        out.append(panel)
        out.extend(panel.get("panels", []))
    return out
