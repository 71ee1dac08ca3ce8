from __future__ import annotations

from pathlib import Path

import pytest

from partial_trust.middleware.policy import PolicyError, PolicyRegistry
from tests.support.procs import REPO

GOOD = """
version: 1
enabled: true
tasks:
  partial_trust_shopping:
    default_profile: partial_trust
    profiles:
      partial_trust: {model: m, temperature: 0.0, max_tokens: 64, confidence_threshold: 0.7,
                      timeout_cap_ms: 500}
      reliable: {model: m2, temperature: 0.0, max_tokens: 64, confidence_threshold: 0.9,
                 timeout_cap_ms: 900}
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "llm-policy.yaml"
    path.write_text(text)
    return path


def test_shipped_policy_has_the_runbook_task_and_profiles() -> None:
    registry = PolicyRegistry.load(REPO / "llm_policy" / "llm-policy.yaml")
    default = registry.resolve("partial_trust_shopping", None)
    reliable = registry.resolve("partial_trust_shopping", "reliable")
    assert default is not None and default.profile_id == "partial_trust"
    assert reliable is not None and reliable.profile.confidence_threshold >= 0.7
    assert registry.enabled is False  # fail closed: LLM_POLICY_ENABLED=true turns it on


def test_resolve_unknown_profile_or_task_is_none(tmp_path: Path) -> None:
    registry = PolicyRegistry.load(_write(tmp_path, GOOD))
    assert registry.resolve("partial_trust_shopping", "nope") is None
    assert registry.resolve("other_task", None) is None
    resolved = registry.resolve("partial_trust_shopping", "reliable")
    assert resolved is not None and resolved.profile.model == "m2"


@pytest.mark.parametrize(
    ("text", "field"),
    [
        (
            GOOD.replace(
                "temperature: 0.0, max_tokens: 64, confidence_threshold: 0.7",
                "temperature: 0.0, max_tokens: 64, confidence_threshold: 7",
            ),
            "confidence_threshold",
        ),
        (GOOD.replace("model: m,", "model: m, colour: red,"), "colour"),
        (
            GOOD.replace("default_profile: partial_trust", "default_profile: missing"),
            "partial_trust_shopping",
        ),
        (GOOD.replace("version: 1", "version: one"), "version"),
    ],
)
def test_malformed_policy_names_file_and_field(tmp_path: Path, text: str, field: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(PolicyError) as info:
        PolicyRegistry.load(path)
    assert str(path) in str(info.value) and field in str(info.value)


def test_missing_and_non_yaml_files_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot read"):
        PolicyRegistry.load(tmp_path / "absent.yaml")
    with pytest.raises(PolicyError, match="not valid YAML"):
        PolicyRegistry.load(_write(tmp_path, "version: [1"))


def test_resolve_is_answered_from_memory_and_stays_right_past_its_bound(tmp_path: Path) -> None:
    """Asked on every request: the same answer object each time, and the memory is bounded
    (profile ids come from flags) without changing an answer."""
    registry = PolicyRegistry.load(_write(tmp_path, GOOD))
    first = registry.resolve("partial_trust_shopping", "reliable")
    assert first is registry.resolve("partial_trust_shopping", "reliable")
    for i in range(200):
        assert registry.resolve("partial_trust_shopping", f"flag-{i}") is None
    again = registry.resolve("partial_trust_shopping", "reliable")
    assert again == first and again is not None and again.profile.model == "m2"
    default = registry.resolve("partial_trust_shopping", None)
    assert default is not None and default.profile_id == "partial_trust"
    assert len(registry._resolved) <= 64
