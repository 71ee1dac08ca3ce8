"""The runbook text (README, the alert playbooks) has the shadow stage before stage 1, with
the thresholds table's numbers, and the per-corridor key rule the code uses."""

from __future__ import annotations

from pathlib import Path

from partial_trust import thresholds
from partial_trust.corridors import flag_keys

REPO = Path(__file__).resolve().parents[2]


def test_the_playbook_puts_shadow_before_stage_1_with_the_tables_numbers() -> None:
    text = (REPO / "alerts" / "playbooks.md").read_text()
    shadow, stage_1 = text.index("**Shadow, the stage before stage 1**"), text.index("| 1 |")
    assert shadow < stage_1
    part = text[shadow:stage_1]
    s = thresholds.SHADOW
    for expected in (
        f"at or below {s.agreement_week1:.0%}",
        f"above {s.agreement_week2:.0%}",
        f"at least {s.min_records} verdicts and {s.min_days} days",
        "gate --stage shadow",
        "partial-trust-mode canary",
        "PartialTrustAgreementLow",
    ):
        assert expected in part, expected


def test_the_readme_states_the_key_rule_the_code_uses() -> None:
    readme = (REPO / "README.md").read_text()
    assert "`partial-trust.<corridor>.<setting>`" in readme
    assert f"`{flag_keys('show_shopping_list').mode}`" in readme
    assert readme.index("Shadow first") < readme.index("canary at 1%")
    for text in (readme, (REPO / "flags" / "README.md").read_text()):
        assert "never goes beyond `shadow`" in text or "never beyond shadow" in text
