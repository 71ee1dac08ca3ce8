"""``config.apply_ceiling``: set variables are ceilings, the stricter wins; unset ones leave
the flags in charge. Table cases for each variable, then properties over any flag values and
any environment (garbage included, parsed with the runbook's rules)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from partial_trust.config import (
    FLAG_ENABLED,
    FLAG_PROFILE_ID,
    FLAG_SAMPLE_RATE,
    FLAG_TIMEOUT_MS,
    EffectiveSettings,
    EnvDefaults,
    FlagValues,
    apply_ceiling,
    parse_bool,
    parse_sample_rate,
    parse_timeout_ms,
)
from partial_trust.flags import flagmodel

ON = FlagValues(enabled=True, sample_rate=1.0, timeout_ms=200, profile_id="partial_trust")


def ceil(flags: FlagValues, **env: str) -> EffectiveSettings:
    return apply_ceiling(flags, EnvDefaults.from_env(env), source="test")


def limits(settings: EffectiveSettings) -> dict[str, str]:
    return dict(settings.limits)


def test_the_flag_keys_are_the_flag_files() -> None:
    assert (FLAG_ENABLED, FLAG_SAMPLE_RATE, FLAG_TIMEOUT_MS, FLAG_PROFILE_ID) == (
        flagmodel.ENABLED,
        flagmodel.SAMPLE_RATE,
        flagmodel.TIMEOUT_MS,
        flagmodel.PROFILE_ID,
    )


def test_unset_variables_leave_the_flags_in_charge() -> None:
    got = ceil(ON)
    assert (got.enabled, got.sample_rate, got.timeout_ms, got.profile_id) == (
        True,
        1.0,
        200,
        "partial_trust",
    )
    assert limits(got) == {
        "enabled": "flag partial-trust-enabled",
        "sample_rate": "flag partial-trust-sample-rate",
        "timeout_ms": "flag partial-trust-timeout-ms",
        "profile_id": "flag partial-trust-profile-id",
        "policy_enabled": "policy file",
        "mode": "default",
    }


@pytest.mark.parametrize("raw", ["false", "0", "no", "off", "FALSE", "garbage"])
def test_enabled_set_to_anything_but_true_turns_the_corridor_off(raw: str) -> None:
    got = ceil(ON, PARTIAL_TRUST_ENABLED=raw)
    assert (got.enabled, got.sample_rate, got.timeout_ms, got.profile_id) == (False, 0.0, 0, None)
    assert got.flags_available is True
    assert set(limits(got).values()) - {"policy file"} == {"env PARTIAL_TRUST_ENABLED"}


@pytest.mark.parametrize("raw", ["true", "1", "YES"])
def test_enabled_true_never_forces_the_corridor_on(raw: str) -> None:
    off = ceil(FlagValues(False, 1.0, 200, ""), PARTIAL_TRUST_ENABLED=raw)
    assert off.enabled is False
    assert limits(off)["enabled"] == "flag partial-trust-enabled"
    on = ceil(ON, PARTIAL_TRUST_ENABLED=raw)
    assert on.enabled is True and limits(on)["enabled"] == "flag partial-trust-enabled"


@pytest.mark.parametrize(
    ("raw", "flag", "expected", "by"),
    [
        ("0.01", 1.0, 0.01, "env"),
        ("0.01", 0.005, 0.005, "flag"),
        ("0.05", 0.05, 0.05, "env"),  # equal: the variable holds it
        ("abc", 1.0, 0.01, "env"),  # garbage set: the runbook's default 0.01 is the ceiling
        ("7", 0.3, 0.3, "flag"),  # clamped to 1.0: no cap
        ("-1", 0.3, 0.0, "env"),  # clamped to 0.0
    ],
)
def test_sample_rate_set_caps_the_flag(raw: str, flag: float, expected: float, by: str) -> None:
    got = ceil(FlagValues(True, flag, 200, ""), PARTIAL_TRUST_SAMPLE_RATE=raw)
    assert got.enabled is True and got.sample_rate == expected
    name = "env PARTIAL_TRUST_SAMPLE_RATE" if by == "env" else "flag partial-trust-sample-rate"
    assert limits(got)["sample_rate"] == name


@pytest.mark.parametrize(
    ("raw", "flag", "expected", "by"),
    [
        ("50", 200, 50, "env"),
        ("500", 200, 200, "flag"),
        ("0", 200, 0, "env"),  # 0 set: the corridor off
        ("abc", 200, 0, "env"),  # garbage set: off (the runbook)
        ("-5", 200, 0, "env"),
        ("300", 0, 0, "flag"),  # the flag's own 0 is off too
    ],
)
def test_timeout_set_caps_the_flag_and_zero_turns_off(
    raw: str, flag: int, expected: int, by: str
) -> None:
    got = ceil(FlagValues(True, 0.5, flag, ""), PARTIAL_TRUST_TIMEOUT_MS=raw)
    assert got.timeout_ms == expected and got.enabled is (expected > 0)
    name = "env PARTIAL_TRUST_TIMEOUT_MS" if by == "env" else "flag partial-trust-timeout-ms"
    assert limits(got)["timeout_ms"] == name
    if expected == 0:
        assert limits(got)["enabled"] == name  # why it is off


def test_an_intent_off_the_allowlist_turns_the_corridor_off() -> None:
    got = ceil(ON, PARTIAL_TRUST_INTENT="delete_account")
    assert got.enabled is False and got.intent is None
    assert limits(got)["enabled"] == "env PARTIAL_TRUST_INTENT"
    assert ceil(ON, PARTIAL_TRUST_INTENT="add_shopping_item").enabled is True


def test_profile_set_wins_over_the_flag() -> None:
    got = ceil(ON, PARTIAL_TRUST_PROFILE_ID="reliable")
    assert got.profile_id == "reliable"
    assert limits(got)["profile_id"] == "env PARTIAL_TRUST_PROFILE_ID"
    served_default = ceil(FlagValues(True, 0.5, 200, ""), PARTIAL_TRUST_PROFILE_ID="reliable")
    assert served_default.profile_id == "reliable"


@pytest.mark.parametrize("blank", ["", "   "])
def test_a_blank_variable_is_unset(blank: str) -> None:
    env = {name: blank for name in ("PARTIAL_TRUST_ENABLED", "PARTIAL_TRUST_SAMPLE_RATE")}
    got = ceil(ON, **env, PARTIAL_TRUST_TIMEOUT_MS=blank, PARTIAL_TRUST_PROFILE_ID=blank)
    assert (got.enabled, got.sample_rate, got.timeout_ms, got.profile_id) == (
        True,
        1.0,
        200,
        "partial_trust",
    )


def test_a_flag_not_served_falls_back_to_the_variable_or_the_default() -> None:
    nothing = FlagValues()
    got = ceil(nothing, PARTIAL_TRUST_ENABLED="true", PARTIAL_TRUST_SAMPLE_RATE="0.2")
    assert (got.enabled, got.sample_rate, got.timeout_ms) == (True, 0.2, 200)
    assert limits(got)["sample_rate"] == "env PARTIAL_TRUST_SAMPLE_RATE"
    assert limits(got)["timeout_ms"] == "default"
    assert ceil(nothing).enabled is False  # PARTIAL_TRUST_ENABLED's default is false
    assert limits(ceil(nothing))["enabled"] == "default"


def test_llm_policy_enabled_set_beats_the_policy_file() -> None:
    env = EnvDefaults.from_env({"LLM_POLICY_ENABLED": "false"})
    got = apply_ceiling(ON, env, policy_default=True)
    assert got.policy_enabled is False and got.enabled is True  # skipped/policy_disabled
    assert limits(got)["policy_enabled"] == "env LLM_POLICY_ENABLED"


def test_flags_unavailable_is_named_first() -> None:
    got = apply_ceiling(ON, EnvDefaults.from_env({}), flags_available=False)
    assert got.enabled is False and got.flags_available is False
    assert limits(got)["enabled"] == "flags unavailable"


def test_limits_are_not_part_of_equality() -> None:
    a = ceil(ON, PARTIAL_TRUST_SAMPLE_RATE="1")
    b = ceil(ON)
    assert a == b and limits(a) != limits(b)


# --- properties ----------------------------------------------------------------------------
BOOLS = st.sampled_from(["true", "false", "1", "0", "yes", "no", "TRUE", "", "garbage"])
RATES = st.one_of(
    st.floats(min_value=-1, max_value=2, allow_nan=False).map(str),
    st.sampled_from(["abc", "", "nan", "inf", "1e9"]),
)
TIMEOUTS = st.one_of(st.integers(-10, 5000).map(str), st.sampled_from(["abc", "", "1.5", " 7 "]))
PROFILES = st.sampled_from(["", "reliable", "partial_trust", "  "])
INTENTS = st.sampled_from(["add_shopping_item", "other", ""])


def _optional(strategy: st.SearchStrategy[str]) -> st.SearchStrategy[str | None]:
    return st.one_of(st.none(), strategy)


ENVS = st.fixed_dictionaries(
    {
        "PARTIAL_TRUST_ENABLED": _optional(BOOLS),
        "PARTIAL_TRUST_SAMPLE_RATE": _optional(RATES),
        "PARTIAL_TRUST_TIMEOUT_MS": _optional(TIMEOUTS),
        "PARTIAL_TRUST_PROFILE_ID": _optional(PROFILES),
        "PARTIAL_TRUST_INTENT": _optional(INTENTS),
    }
).map(lambda d: {k: v for k, v in d.items() if v is not None})
FLAGS = st.builds(
    FlagValues,
    enabled=st.one_of(st.none(), st.booleans()),
    sample_rate=st.one_of(st.none(), st.floats(0, 1)),
    timeout_ms=st.one_of(st.none(), st.integers(0, 5000)),
    profile_id=st.one_of(st.none(), PROFILES),
)


def _set(env: dict[str, str], name: str) -> bool:
    return bool(env.get(name, "").strip())


@given(flags=FLAGS, env=ENVS)
def test_the_effective_value_is_never_less_strict_than_either(
    flags: FlagValues, env: dict[str, str]
) -> None:
    got = apply_ceiling(flags, EnvDefaults.from_env(env))
    if not got.enabled:
        assert (got.sample_rate, got.timeout_ms, got.profile_id) == (0.0, 0, None)
        return
    # on: neither the flags nor a set variable said off
    assert flags.enabled is not False
    if _set(env, "PARTIAL_TRUST_ENABLED"):
        assert parse_bool(env["PARTIAL_TRUST_ENABLED"])
    if flags.sample_rate is not None:
        assert got.sample_rate <= flags.sample_rate
    if flags.timeout_ms is not None:
        assert 0 < got.timeout_ms <= flags.timeout_ms
    if _set(env, "PARTIAL_TRUST_SAMPLE_RATE"):
        assert got.sample_rate <= parse_sample_rate(env["PARTIAL_TRUST_SAMPLE_RATE"])
    if _set(env, "PARTIAL_TRUST_TIMEOUT_MS"):
        assert got.timeout_ms <= parse_timeout_ms(env["PARTIAL_TRUST_TIMEOUT_MS"])


@given(flags=FLAGS, env=ENVS)
def test_the_flags_decide_whatever_no_variable_caps(flags: FlagValues, env: dict[str, str]) -> None:
    """A served flag's value is kept exactly unless a set variable is stricter; the limits
    name the side that holds each value."""
    got = apply_ceiling(flags, EnvDefaults.from_env(env))
    if not got.enabled:
        return
    by = limits(got)
    pairs: list[tuple[str, Any, str, Any]] = [
        ("sample_rate", flags.sample_rate, "PARTIAL_TRUST_SAMPLE_RATE", got.sample_rate),
        ("timeout_ms", flags.timeout_ms, "PARTIAL_TRUST_TIMEOUT_MS", got.timeout_ms),
    ]
    for field, served, name, value in pairs:
        if by[field].startswith("flag "):
            assert value == served
        elif by[field] == f"env {name}":
            assert _set(env, name)
        else:
            assert by[field] == "default" and served is None and not _set(env, name)
        if served is not None and not _set(env, name):
            assert value == served and by[field].startswith("flag ")


@given(flags=FLAGS, env=ENVS)
def test_the_kill_switch_variable_wins_over_anything(
    flags: FlagValues, env: dict[str, str]
) -> None:
    killed = EnvDefaults.from_env({**env, "PARTIAL_TRUST_ENABLED": "false"})
    got = apply_ceiling(flags, killed)
    assert got.enabled is False and got.sample_rate == 0.0
    assert dict(got.limits)["enabled"] in {
        "env PARTIAL_TRUST_ENABLED",
        "flag partial-trust-enabled",
    }


@given(flags=FLAGS, env=ENVS, rate=st.floats(0, 1), timeout=st.integers(1, 5000))
def test_setting_a_variable_never_loosens(
    flags: FlagValues, env: dict[str, str], rate: float, timeout: int
) -> None:
    before = apply_ceiling(flags, EnvDefaults.from_env(env))
    capped = {
        **env,
        "PARTIAL_TRUST_SAMPLE_RATE": repr(rate),
        "PARTIAL_TRUST_TIMEOUT_MS": str(timeout),
    }
    after = apply_ceiling(flags, EnvDefaults.from_env(capped))
    if after.enabled:
        assert after.sample_rate <= rate and after.timeout_ms <= timeout
        if before.enabled and _set(env, "PARTIAL_TRUST_SAMPLE_RATE"):
            assert after.sample_rate <= max(before.sample_rate, rate)
    if not before.enabled and not _set(env, "PARTIAL_TRUST_TIMEOUT_MS"):
        assert not after.enabled  # adding ceilings never turns the corridor on
