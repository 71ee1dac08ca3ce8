"""``gate --stage advisory``: may the corridor leave the advisory stage?

Every number is in ``partial_trust.thresholds.ADVISORY`` (the one table). Reviewers' verdicts
come from the review store (``--review-store``; no key needed, see
``partial_trust.apps.review.verdicts``), the risk log is judged as evidence as in every gate:

* go: ``override_rate`` strictly below the corridor's risk-class line (read 5%, write and
  commit 10%; ``deploy``/``admin`` have none: never GO);
* go: at least ``min_verdicts`` verdicts. Too few reviews is HOLD (keep reviewing), never GO:
  when the count is the only go line not met, the verdict is HOLD.

Then ``gate.verdict_of``: CANNOT-EVALUATE when the risk log is not evidence, GO only when
every go criterion passes, else NO-GO (an override rate at or above its line is NO-GO).
"""

from __future__ import annotations

from typing import Any

from partial_trust.apps.analysis.figures import Figures
from partial_trust.apps.analysis.gate import Criterion, Result, Verdict, verdict_of
from partial_trust.thresholds import ADVISORY, Bound


def evaluate(
    figures: Figures, override: dict[str, Any], risk_class: str
) -> tuple[Verdict, list[Criterion]]:
    line = ADVISORY.override_line(risk_class)
    rate = override["override_rate"]
    count = float(override["verdicts"])
    detail = f"{override['overrides']} of {override['verdicts']} verdicts; {risk_class} class"
    if line is None:
        rate_criterion = Criterion(
            "go", Bound("override_rate", "<", 0.0), rate, Result.FAIL,
            f"the {risk_class} class has no override line: never promoted on reviews",
        )  # fmt: skip
    elif rate is None:
        rate_criterion = Criterion(
            "go", Bound("override_rate", "<", line), None, Result.INSUFFICIENT, detail
        )
    else:
        result = Result.PASS if rate < line else Result.FAIL
        rate_criterion = Criterion("go", Bound("override_rate", "<", line), rate, result, detail)
    enough = count >= ADVISORY.min_verdicts
    count_criterion = Criterion(
        "go",
        Bound("verdicts", ">=", ADVISORY.min_verdicts),
        count,
        Result.PASS if enough else Result.INSUFFICIENT,
        "too few reviews: HOLD, keep reviewing" if not enough else "",
    )
    criteria = [rate_criterion, count_criterion]
    verdict = verdict_of(figures, criteria)
    if verdict is Verdict.NO_GO and not enough and rate_criterion.result is not Result.FAIL:
        verdict = Verdict.HOLD
    return verdict, criteria


MANUAL = (
    "reviewers are not the people who wrote the prompt (seed 004: independent review)",
    "the reviewed cases are a fair sample of the corridor's traffic",
)


def override_of(store: str, corridor: str | None, since: str | None, until: str | None) -> Any:
    """The override figures from a review store file (``InputError`` style: ValueError)."""
    from partial_trust.apps.analysis.tally import parse_time
    from partial_trust.apps.review.verdicts import (
        VerdictStoreError,
        override_figures,
        verdict_rows,
    )

    start_at = parse_time(since) if since else None
    end_at = parse_time(until) if until else None
    start = start_at.timestamp() if start_at else None
    end = end_at.timestamp() if end_at else None
    try:
        rows = verdict_rows(store, start, end)
    except VerdictStoreError as exc:
        raise ValueError(str(exc)) from None
    return override_figures(rows, corridor)


def override_html(override: dict[str, Any]) -> str:
    """The report's override section (counts only; no raw data)."""
    from html import escape

    rate = override["override_rate"]
    cats = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in override["by_category"].items())
    shown = "n/a (no verdicts)" if rate is None else f"{rate:.1%}"
    lines = ", ".join(f"{k} &lt; {v:.0%}" for k, v in ADVISORY.override_lines.items())
    return (
        '<section id="override"><h2>Advisory review: override rate</h2>'
        f"<p>override_rate {escape(shown)} ({override['overrides']} of "
        f"{override['verdicts']} verdicts); overrides by category: {escape(cats)}.</p>"
        f"<p>Lines to leave advisory: {lines}; at least {ADVISORY.min_verdicts} verdicts "
        "(fewer: HOLD).</p></section>"
    )
