"""The flag file: shipped content, validation messages, and atomic, validated edits."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from partial_trust.flags import flagfile
from partial_trust.flags.flagfile import (
    ENABLED,
    MODE,
    PROFILE_ID,
    SAMPLE_RATE,
    TIMEOUT_MS,
    FlagFileError,
)
from partial_trust.flags.flagmodel import REVIEW_ENABLED


def flags_of(path: Path) -> dict[str, dict[str, Any]]:
    """The file's ``flags`` object as parsed JSON."""
    data: dict[str, dict[str, dict[str, Any]]] = json.loads(path.read_text())
    return data["flags"]


def test_shipped_file_has_corridor_off_and_stage1_ready(flag_file: Path) -> None:
    doc = flagfile.load(flag_file)
    assert doc.schema_url == flagfile.FLAGD_SCHEMA
    values = {key: flagfile.served_value(doc.flags[key])[0] for key in flagfile.KNOWN_FLAGS}
    assert values == {
        ENABLED: False, SAMPLE_RATE: 0.01, TIMEOUT_MS: 200, PROFILE_ID: "", MODE: "shadow",
        REVIEW_ENABLED: False,
    }  # fmt: skip
    rate = doc.flags[SAMPLE_RATE].variants
    assert rate == {"off": 0.0, "stage1": 0.01, "stage2": 0.05, "stage3": 0.1}
    assert {"partial_trust", "reliable"} <= set(doc.flags[PROFILE_ID].variants.values())


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("{", "not valid JSON"),
        ("[]", "top level must be a JSON object"),
        (
            '{"flags": {"partial-trust-enabled": {"state": "ON", "variants": {"on": true}}}}',
            "flag 'partial-trust-enabled', field 'state'",
        ),
        (
            '{"flags": {"partial-trust-sample-rate": {"state": "ENABLED", "variants": {"a": 0.1},'
            ' "defaultVariant": "b"}}}',
            "flag 'partial-trust-sample-rate'",
        ),
        ('{"flags": {"x": {"state": "ENABLED", "variants": {}}}}', "flag 'x', field 'variants'"),
        (
            '{"flags": {"x": {"state": "ENABLED", "variants": {"a": 1}, "colour": 1}}}',
            "flag 'x', field 'colour'",
        ),
        ('{"flag": {}}', "field 'flags'"),
    ],
)
def test_invalid_files_are_reported_by_flag_and_field(
    tmp_path: Path, content: str, expected: str
) -> None:
    path = tmp_path / "f.json"
    path.write_text(content)
    with pytest.raises(FlagFileError, match=expected):
        flagfile.load(path)


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FlagFileError, match="cannot read the flag file"):
        flagfile.load(tmp_path / "absent.json")


def test_set_selects_an_existing_variant_or_writes_custom(flag_file: Path) -> None:
    change = flagfile.set_flag(flag_file, SAMPLE_RATE, "0.05", reason="stage 2")
    assert (change.old, change.new, change.variant) == (0.01, 0.05, "stage2")
    flag = flags_of(flag_file)[SAMPLE_RATE]
    assert flag["defaultVariant"] == "stage2"
    assert flag["metadata"]["changeReason"] == "stage 2"
    change = flagfile.set_flag(flag_file, SAMPLE_RATE, 0.2)
    assert change.variant == flagfile.CUSTOM_VARIANT
    assert flags_of(flag_file)[SAMPLE_RATE]["variants"]["custom"] == 0.2
    flagfile.set_flag(flag_file, TIMEOUT_MS, "350")
    flagfile.set_flag(flag_file, PROFILE_ID, "reliable")
    doc = flagfile.load(flag_file)
    assert flagfile.served_value(doc.flags[TIMEOUT_MS])[0] == 350
    assert doc.flags[PROFILE_ID].default_variant == "reliable"


def test_kill_and_resume_pin_enabled_and_drop_targeting(flag_file: Path) -> None:
    raw = json.loads(flag_file.read_text())
    raw["flags"][ENABLED]["state"] = "DISABLED"
    raw["flags"][ENABLED]["targeting"] = {"if": [True, "on", "off"]}
    flag_file.write_text(json.dumps(raw))
    assert flagfile.resume(flag_file).new is True
    flag = flags_of(flag_file)[ENABLED]
    assert (flag["state"], flag["defaultVariant"], "targeting" in flag) == ("ENABLED", "on", False)
    change = flagfile.kill(flag_file, reason="incident 42")
    assert (change.old, change.new, change.variant) == (True, False, "off")
    assert flags_of(flag_file)[ENABLED]["metadata"]["changeReason"] == "incident 42"


def test_kill_works_when_the_flag_is_absent(flag_file: Path) -> None:
    raw = json.loads(flag_file.read_text())
    del raw["flags"][ENABLED]
    flag_file.write_text(json.dumps(raw))
    flagfile.kill(flag_file)
    assert flagfile.served_value(flagfile.load(flag_file).flags[ENABLED])[0] is False


@pytest.mark.parametrize(
    ("key", "value"),
    [
        (SAMPLE_RATE, "7"),
        (SAMPLE_RATE, "-1"),
        (SAMPLE_RATE, "abc"),
        (SAMPLE_RATE, "nan"),
        (SAMPLE_RATE, True),
        (TIMEOUT_MS, "0"),
        (TIMEOUT_MS, "-5"),
        (TIMEOUT_MS, "1.5"),
        (TIMEOUT_MS, 2.0),
        (TIMEOUT_MS, True),
        (ENABLED, "maybe"),
        (ENABLED, 1.0),
        (PROFILE_ID, "a\nb"),
        (PROFILE_ID, 3),
        ("partial-trust-colour", "red"),
    ],
)
def test_bad_values_are_refused_and_the_file_is_byte_identical(
    flag_file: Path, key: str, value: object
) -> None:
    before = flag_file.read_bytes()
    stat = flag_file.stat()
    with pytest.raises(ValueError, match=key if key in flagfile.KNOWN_FLAGS else "unknown flag"):
        flagfile.set_flag(flag_file, key, value)
    assert flag_file.read_bytes() == before
    assert flag_file.stat().st_mtime_ns == stat.st_mtime_ns
    assert sorted(os.listdir(flag_file.parent)) == [flag_file.name]


def test_an_invalid_file_is_not_rewritten_by_set_or_resume(flag_file: Path) -> None:
    flag_file.write_text('{"flags": {"partial-trust-enabled": {"state": "ENABLED"}}}')
    before = flag_file.read_bytes()
    for edit in (flagfile.resume, lambda p: flagfile.set_flag(p, SAMPLE_RATE, 0.05)):
        with pytest.raises(FlagFileError, match=r"field 'variants'.*only 'kill' replaces"):
            edit(flag_file)
        assert flag_file.read_bytes() == before


def test_kill_replaces_an_invalid_file_with_the_starter_document(flag_file: Path) -> None:
    flag_file.write_text('{"flags": {"partial-trust-enabled": {"state": "ENABLED"}}}')
    change = flagfile.kill(flag_file, reason="incident")
    assert (change.old, change.new, change.variant) == (None, False, "off")
    assert change.replaced is not None and "field 'variants'" in change.replaced
    doc = flagfile.load(flag_file)
    values = {key: flagfile.served_value(doc.flags[key])[0] for key in flagfile.KNOWN_FLAGS}
    assert values == {
        ENABLED: False, SAMPLE_RATE: 0.01, TIMEOUT_MS: 200, PROFILE_ID: "", MODE: "shadow",
        REVIEW_ENABLED: False,
    }  # fmt: skip
    assert flag_file.stat().st_mode & 0o777 == 0o644


def test_write_is_atomic_keeps_mode_and_moves_mtime_forward(flag_file: Path) -> None:
    os.chmod(flag_file, 0o640)
    future = flag_file.stat().st_mtime_ns + 10_000_000_000
    os.utime(flag_file, ns=(future, future))  # a clock step back must not hide the edit
    inode = flag_file.stat().st_ino
    flagfile.kill(flag_file)
    after = flag_file.stat()
    assert after.st_ino != inode  # replaced by rename, never rewritten in place
    assert after.st_mode & 0o777 == 0o640
    assert after.st_mtime_ns > future
    assert sorted(os.listdir(flag_file.parent)) == [flag_file.name]


def test_unknown_content_survives_an_edit(flag_file: Path) -> None:
    raw = json.loads(flag_file.read_text())
    raw["flags"]["other-team-flag"] = {
        "state": "ENABLED",
        "variants": {"a": 1},
        "defaultVariant": "a",
    }
    raw["$evaluators"] = {"rule": {"in": ["x", "y"]}}
    flag_file.write_text(json.dumps(raw))
    flagfile.set_flag(flag_file, SAMPLE_RATE, 0.1)
    after = json.loads(flag_file.read_text())
    assert after["flags"]["other-team-flag"] == raw["flags"]["other-team-flag"]
    assert after["$evaluators"] == raw["$evaluators"]
    assert after["flags"][SAMPLE_RATE]["defaultVariant"] == "stage3"
