"""``gate --stage advisory``: the override rate against the risk-class line of the one table;
too few reviews is HOLD (never GO); a class without a line is never GO."""

from __future__ import annotations

import pytest

from partial_trust import thresholds
from partial_trust.apps.analysis import advisory_gate
from partial_trust.apps.analysis.gate import Verdict
from partial_trust.apps.review.verdicts import VerdictRow, override_figures
from tests.apps.analysis.test_gate import figs

MIN = thresholds.ADVISORY.min_verdicts


def rows(n: int, overrides: int, corridor: str = "add_shopping_item") -> list[VerdictRow]:
    cats = ("too_strict", "too_permissive", "unclear")
    out = [VerdictRow(corridor, "llm_right", "none", 1.0)] * (n - overrides)
    for i in range(overrides):
        verdict = "unclear" if cats[i % 3] == "unclear" else "baseline_right"
        out.append(VerdictRow(corridor, verdict, cats[i % 3], 1.0))
    return out


def judge(n: int, overrides: int, risk_class: str) -> Verdict:
    return advisory_gate.evaluate(figs(), override_figures(rows(n, overrides)), risk_class)[0]


def test_the_seed_lines_are_in_the_one_table() -> None:
    assert thresholds.ADVISORY.override_lines == {"read": 0.05, "write": 0.10, "commit": 0.10}
    assert set(thresholds.ADVISORY.override_lines) < set(thresholds.RISK_CLASSES)


@pytest.mark.parametrize(
    ("risk_class", "line"), [("read", 0.05), ("write", 0.10), ("commit", 0.10)]
)
def test_the_override_line_is_strict(risk_class: str, line: float) -> None:
    n = 200
    at_line = round(n * line)
    assert judge(n, at_line - 1, risk_class) is Verdict.GO
    assert judge(n, at_line, risk_class) is Verdict.NO_GO


@pytest.mark.parametrize("risk_class", ["read", "write", "commit"])
def test_too_few_reviews_is_hold_never_go(risk_class: str) -> None:
    assert judge(MIN - 1, 0, risk_class) is Verdict.HOLD
    assert judge(0, 0, risk_class) is Verdict.HOLD
    assert judge(MIN, 0, risk_class) is Verdict.GO


@pytest.mark.parametrize("risk_class", ["deploy", "admin"])
def test_classes_without_a_line_are_never_go(risk_class: str) -> None:
    assert judge(1000, 0, risk_class) is Verdict.NO_GO


def test_overrides_are_categorised_and_unclear_counts_against() -> None:
    fig = override_figures(rows(10, 3) + rows(5, 5, corridor="other"), "add_shopping_item")
    assert fig["verdicts"] == 10 and fig["overrides"] == 3
    assert fig["override_rate"] == pytest.approx(0.3)
    assert fig["by_category"] == {"too_strict": 1, "too_permissive": 1, "unclear": 1}
    assert override_figures([])["override_rate"] is None


def test_a_log_that_is_not_evidence_cannot_be_evaluated() -> None:
    verdict, _ = advisory_gate.evaluate(figs(sampled=0), override_figures(rows(100, 0)), "read")
    assert verdict is Verdict.CANNOT_EVALUATE


@pytest.mark.parametrize(
    ("corridor", "expected"),
    [
        ("add_shopping_item", "write"),
        ("show_shopping_list", "read"),
        ("share_shopping_list", "admin"),
        (None, "read"),
        ("not_on_the_allowlist", "read"),
    ],
)
def test_the_gate_takes_the_reviewed_corridors_class_from_the_allowlist(
    corridor: str | None, expected: str
) -> None:
    from partial_trust.apps.analysis.cli_stages import _class_of

    assert _class_of(corridor) == expected
