"""One test per row of the runbook's configuration table, plus its disabled behaviours."""

from __future__ import annotations

import logging

import pytest

from partial_trust.config import (
    DEFAULT_RISK_LOG_PATH,
    EffectiveSettings,
    EnvDefaults,
    StaticSettings,
    parse_bool,
    parse_optional_bool,
    parse_sample_rate,
    parse_timeout_ms,
)

ON = {"PARTIAL_TRUST_ENABLED": "true", "LLM_POLICY_ENABLED": "true"}


@pytest.mark.parametrize("raw", ["true", "TRUE", "True", "1", "yes", "YES", " yes "])
def test_enabled_truthy_spellings(raw: str) -> None:
    assert EnvDefaults.from_env({"PARTIAL_TRUST_ENABLED": raw}).enabled is True


@pytest.mark.parametrize("raw", ["false", "0", "no", "on", "enabled", "", "tru", "2"])
def test_enabled_anything_else_is_false(raw: str) -> None:
    assert EnvDefaults.from_env({"PARTIAL_TRUST_ENABLED": raw}).enabled is False


def test_enabled_defaults_to_false() -> None:
    assert EnvDefaults.from_env({}).enabled is False
    assert parse_bool(None) is False


def test_intent_defaults_to_add_shopping_item() -> None:
    assert EnvDefaults.from_env({}).intent == "add_shopping_item"
    assert EnvDefaults.from_env({"PARTIAL_TRUST_INTENT": "add_shopping_item"}).intent == (
        "add_shopping_item"
    )


def test_intent_off_allowlist_turns_corridor_off_with_logged_reason(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="partial_trust.config"):
        defaults = EnvDefaults.from_env({**ON, "PARTIAL_TRUST_INTENT": "remove_shopping_item"})
    assert defaults.intent is None
    assert defaults.effective().enabled is False
    assert "allowlist" in caplog.text
    assert "remove_shopping_item" not in caplog.text  # the log names the rule, not the input


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, 0.01),
        ("0.05", 0.05),
        ("0.1", 0.1),
        ("0", 0.0),
        ("1", 1.0),
        ("7", 1.0),
        ("-1", 0.0),
        ("1.5", 1.0),
        ("abc", 0.01),
        ("", 0.01),
        ("nan", 0.01),
        ("inf", 1.0),
    ],
)
def test_sample_rate_clamped_with_default(raw: str | None, expected: float) -> None:
    env = {} if raw is None else {"PARTIAL_TRUST_SAMPLE_RATE": raw}
    assert EnvDefaults.from_env(env).sample_rate == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(None, 200), ("", 200), ("150", 150), ("0", 0), ("-5", 0), ("abc", 0), ("1.5", 0)],
)
def test_timeout_ms(raw: str | None, expected: int) -> None:
    env = {} if raw is None else {"PARTIAL_TRUST_TIMEOUT_MS": raw}
    assert EnvDefaults.from_env(env).timeout_ms == expected


def test_timeout_zero_or_invalid_disables_the_corridor() -> None:
    for raw in ("0", "abc"):
        settings = EnvDefaults.from_env({**ON, "PARTIAL_TRUST_TIMEOUT_MS": raw}).effective()
        assert settings.enabled is False


def test_parse_helpers_reject_bools_and_garbage_objects() -> None:
    assert parse_sample_rate(True) == 0.01
    assert parse_sample_rate(object()) == 0.01
    assert parse_timeout_ms(True) == 0
    assert parse_timeout_ms(250.0) == 250
    assert parse_timeout_ms(0.5) == 0


def test_profile_id_empty_means_default_profile() -> None:
    assert EnvDefaults.from_env({"PARTIAL_TRUST_PROFILE_ID": ""}).profile_id is None
    assert EnvDefaults.from_env({"PARTIAL_TRUST_PROFILE_ID": "  "}).profile_id is None
    assert EnvDefaults.from_env({"PARTIAL_TRUST_PROFILE_ID": "reliable"}).profile_id == "reliable"


def test_risk_log_path_default_and_override() -> None:
    assert EnvDefaults.from_env({}).risk_log_path == DEFAULT_RISK_LOG_PATH
    assert EnvDefaults.from_env({"PARTIAL_TRUST_RISK_LOG_PATH": "/x/y.jsonl"}).risk_log_path == (
        "/x/y.jsonl"
    )


def test_llm_policy_enabled_unset_falls_back_to_policy_default() -> None:
    assert EnvDefaults.from_env({}).policy_enabled is None
    assert EnvDefaults.from_env({}).effective(policy_default=True).policy_enabled is True
    assert EnvDefaults.from_env({"LLM_POLICY_ENABLED": "false"}).effective(True).policy_enabled is (
        False
    )
    assert EnvDefaults.from_env({"LLM_POLICY_ENABLED": "TRUE"}).effective(False).policy_enabled
    assert parse_optional_bool(" ") is None


def test_disabled_behaviours_of_the_runbook() -> None:
    settings = EnvDefaults.from_env(
        {"PARTIAL_TRUST_SAMPLE_RATE": "0.5", "PARTIAL_TRUST_PROFILE_ID": "reliable"}
    ).effective()
    assert settings.enabled is False
    assert settings.sample_rate == 0.0
    assert settings.timeout_ms == 0
    assert settings.profile_id is None


def test_enabled_keeps_values() -> None:
    settings = EnvDefaults.from_env(
        {**ON, "PARTIAL_TRUST_SAMPLE_RATE": "0.05", "PARTIAL_TRUST_PROFILE_ID": "reliable"}
    ).effective()
    assert (settings.enabled, settings.sample_rate, settings.timeout_ms, settings.profile_id) == (
        True,
        0.05,
        200,
        "reliable",
    )


def test_flags_unavailable_forces_corridor_off() -> None:
    settings = EffectiveSettings.build(
        enabled=True,
        intent="add_shopping_item",
        sample_rate=0.1,
        timeout_ms=200,
        profile_id=None,
        policy_enabled=True,
        flags_available=False,
        source="file",
    )
    assert (settings.enabled, settings.flags_available, settings.sample_rate) == (False, False, 0.0)


def test_settings_are_frozen() -> None:
    settings = EnvDefaults.from_env(ON).effective()
    with pytest.raises(AttributeError):
        settings.enabled = False  # type: ignore[misc]  # the write a frozen value must refuse
    assert StaticSettings(settings).current() is settings
