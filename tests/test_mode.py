"""The corridor mode: parsing, the ceiling (off < shadow < canary) and the flag's reading."""

from __future__ import annotations

import pytest

from partial_trust.config import EnvDefaults, FlagValues, apply_ceiling
from partial_trust.flags import flagfile
from partial_trust.mode import Mode, parse_mode, stricter_mode

ON = FlagValues(enabled=True, sample_rate=1.0, timeout_ms=200)


def ceil(flag: Mode | None, **env: str) -> tuple[bool, Mode, str]:
    got = apply_ceiling(
        FlagValues(ON.enabled, ON.sample_rate, ON.timeout_ms, None, flag),
        EnvDefaults.from_env(env),
    )
    return got.enabled, got.mode, dict(got.limits)["mode"]


@pytest.mark.parametrize(
    ("raw", "mode"),
    [
        (None, Mode.CANARY),
        ("", Mode.CANARY),
        ("  ", Mode.CANARY),
        ("shadow", Mode.SHADOW),
        (" CANARY ", Mode.CANARY),
        ("Off", Mode.OFF),
        ("garbage", Mode.OFF),
        ("shadowy", Mode.OFF),
        (7, Mode.OFF),
        (True, Mode.OFF),
    ],
)
def test_parse_mode_reads_garbage_as_off_and_unset_as_canary(raw: object, mode: Mode) -> None:
    assert parse_mode(raw) is mode


def test_stricter_mode_orders_off_shadow_canary() -> None:
    assert stricter_mode(Mode.CANARY, Mode.SHADOW) is Mode.SHADOW
    assert stricter_mode(Mode.SHADOW, Mode.OFF) is Mode.OFF
    assert stricter_mode(Mode.CANARY, Mode.CANARY) is Mode.CANARY


def test_unset_everywhere_is_canary() -> None:
    assert ceil(None) == (True, Mode.CANARY, "default")


def test_the_flag_decides_when_the_variable_is_unset() -> None:
    assert ceil(Mode.SHADOW) == (True, Mode.SHADOW, "flag partial-trust-mode")
    assert ceil(Mode.CANARY) == (True, Mode.CANARY, "flag partial-trust-mode")


def test_flag_off_turns_the_corridor_off() -> None:
    enabled, mode, _ = ceil(Mode.OFF)
    assert (enabled, mode) == (False, Mode.OFF)


@pytest.mark.parametrize(
    ("flag", "env", "want"),
    [
        (Mode.CANARY, "shadow", Mode.SHADOW),  # a set variable is a ceiling
        (Mode.SHADOW, "canary", Mode.SHADOW),  # ... that never raises the flag
        (None, "shadow", Mode.SHADOW),  # not served: the variable
        (Mode.CANARY, "off", Mode.OFF),
        (Mode.CANARY, "bogus", Mode.OFF),  # an invalid variable: the strictest reading
    ],
)
def test_a_set_variable_is_a_ceiling(flag: Mode | None, env: str, want: Mode) -> None:
    enabled, mode, by = ceil(flag, PARTIAL_TRUST_MODE=env)
    assert mode is want and enabled is (want is not Mode.OFF)
    if want is not Mode.OFF and flag is not None and flag is not want:
        assert by == "env PARTIAL_TRUST_MODE"


def test_flags_set_accepts_only_the_three_modes() -> None:
    assert flagfile.coerce_value(flagfile.MODE, " Shadow ") == "shadow"
    with pytest.raises(flagfile.FlagFileError, match="not one of"):
        flagfile.coerce_value(flagfile.MODE, "on")


def test_the_shipped_flag_file_starts_in_shadow_with_the_corridor_off() -> None:
    _, doc = flagfile.parse_document(flagfile.starter_document())
    assert flagfile.served_value(doc.flags[flagfile.MODE])[0] == "shadow"
    assert flagfile.served_value(doc.flags[flagfile.ENABLED])[0] is False
