"""Whatever sits at the flag path, reading it never blocks or grows without bound, numbers are
bounded, and ``kill`` still turns the corridor off (``set``/``resume`` refuse, untouched)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from partial_trust.flags import flagfile
from partial_trust.flags.flagfile import ENABLED, SAMPLE_RATE, TIMEOUT_MS, FlagFileError
from partial_trust.flags.saferead import MAX_FLAG_FILE_BYTES, UnsafeFileError, read_regular
from tests.support.unprivileged import as_reader, shared_dir

FAST_S = 0.5  # generous: every refusal here is a stat or an open, microseconds when idle


def _fifo(path: Path) -> None:
    os.mkfifo(path)


def _dev_zero(path: Path) -> None:
    path.symlink_to("/dev/zero")


def _directory(path: Path) -> None:
    path.mkdir()


def _huge(path: Path) -> None:
    with open(path, "wb") as handle:  # sparse: 100 MB of size, nothing written
        handle.truncate(100 * 1024 * 1024)


HOSTILE: dict[str, tuple[Callable[[Path], None], str]] = {
    "fifo": (_fifo, "it is a FIFO"),
    "dev-zero-symlink": (_dev_zero, "it is a character device"),
    "directory": (_directory, "it is a directory"),
    "100MB": (_huge, f"over the {MAX_FLAG_FILE_BYTES}-byte limit"),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_non_regular_or_huge_paths_are_refused_at_once(tmp_path: Path, name: str) -> None:
    make, reason = HOSTILE[name]
    path = tmp_path / "flags.json"
    make(path)
    start = time.monotonic()
    with pytest.raises(UnsafeFileError, match=reason):
        read_regular(path)
    with pytest.raises(FlagFileError, match=reason):
        flagfile.load(path)
    assert time.monotonic() - start < FAST_S


def test_a_file_growing_past_the_cap_while_read_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "flags.json"
    path.write_bytes(b" " * 2000)
    with pytest.raises(UnsafeFileError, match="over the 1000-byte limit"):
        read_regular(path, max_bytes=1000)


def test_a_slow_read_is_refused_after_the_deadline(tmp_path: Path) -> None:
    path = tmp_path / "flags.json"
    path.write_bytes(b" " * (300 * 1024))  # several chunks: the deadline is checked between
    with pytest.raises(UnsafeFileError, match="too slow"):
        read_regular(path, deadline_s=-1.0)


def test_an_unreadable_file_is_refused_for_a_user_it_stops() -> None:
    with shared_dir("pt-unreadable-") as directory:
        path = directory / "flags.json"
        path.write_bytes(flagfile.starter_document())
        os.chmod(path, 0)
        code = (
            "import sys; from flags import flagfile\n"
            "try:\n    flagfile.load(sys.argv[1])\n"
            "except flagfile.FlagFileError as exc:\n    print(exc)\n"
        )
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
        result = subprocess.run(
            as_reader([sys.executable, "-c", code, str(path)]),
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert "cannot read the flag file (Permission denied)" in result.stdout


def _with_timeout(flag_file: Path, literal: str) -> None:
    text = flag_file.read_text().replace('"default": 200', f'"default": {literal}')
    flag_file.write_text(text)


@pytest.mark.parametrize(
    ("literal", "reason"),
    [
        ("9" * 5000, "outside ±9007199254740991"),
        ("-" + "9" * 5000, "outside"),
        ("9" * 25, "outside"),
        (str(2**53), "outside"),
        ("1e999", "not finite"),
        ("-1e999", "not finite"),
        ("NaN", "not finite"),
        ("Infinity", "not finite"),
    ],
)
def test_unbounded_numbers_are_a_validation_error_naming_the_flag(
    flag_file: Path, literal: str, reason: str
) -> None:
    _with_timeout(flag_file, literal)
    with pytest.raises(FlagFileError, match=reason) as caught:
        flagfile.load(flag_file)
    assert f"flag '{TIMEOUT_MS}'" in str(caught.value)
    assert len(str(caught.value)) < 1000  # the digits are never echoed back


def test_the_largest_safe_integer_is_accepted(flag_file: Path) -> None:
    _with_timeout(flag_file, str(2**53 - 1))
    assert flagfile.served_value(flagfile.load(flag_file).flags[TIMEOUT_MS])[0] == 2**53 - 1


def test_numbers_in_metadata_targeting_and_evaluators_are_bounded_too(flag_file: Path) -> None:
    raw = json.loads(flag_file.read_text())
    raw["$evaluators"] = {"r": {"in": [1, 2]}}
    flag_file.write_text(json.dumps(raw).replace("[1, 2]", "[1, 1e999]"))
    with pytest.raises(FlagFileError, match=r"\$evaluators.r.in\[1\] is a number that is not"):
        flagfile.load(flag_file)


@pytest.mark.parametrize("depth", [10_000, 200_000])
def test_deep_nesting_is_invalid_json_not_a_crash(tmp_path: Path, depth: int) -> None:
    path = tmp_path / "flags.json"
    path.write_text('{"flags": {}, "$evaluators": {"x": ' + "[" * depth + "]" * depth + "}}")
    with pytest.raises(FlagFileError):
        flagfile.load(path)


def test_thousands_of_errors_are_summarised(tmp_path: Path) -> None:
    flags = {f"f{i}": {"state": "ON", "variants": {"a": 1}} for i in range(3000)}
    path = tmp_path / "flags.json"
    path.write_text(json.dumps({"flags": flags}))
    with pytest.raises(FlagFileError, match="and 2995 more") as caught:
        flagfile.load(path)
    assert len(str(caught.value)) < 2000


#: Each writes a broken flag file at the path (what it returns, if anything, is unused).
BROKEN: dict[str, Callable[[Path], object]] = {
    **{name: make for name, (make, _) in HOSTILE.items() if name != "directory"},
    "invalid-json": lambda p: p.write_text("{ nope"),
    "5000-digits": lambda p: p.write_text(
        flagfile.starter_document().decode().replace("200", "9" * 5000)
    ),
    "missing": lambda p: None,
}


@pytest.mark.parametrize("name", list(BROKEN))
def test_kill_replaces_any_broken_file_and_set_resume_refuse(tmp_path: Path, name: str) -> None:
    path = tmp_path / "flags.json"
    BROKEN[name](path)
    for edit in (flagfile.resume, lambda p: flagfile.set_flag(p, SAMPLE_RATE, 0.05)):
        start = time.monotonic()
        with pytest.raises(FlagFileError, match="only 'kill' replaces a broken file"):
            edit(path)
        assert time.monotonic() - start < FAST_S
    assert os.path.lexists(path) == (name != "missing")  # untouched
    change = flagfile.kill(path, reason="drill")
    assert change.replaced and (change.new, change.variant) == (False, "off")
    assert not path.is_symlink() and path.stat().st_mode & 0o777 == 0o644
    assert flagfile.served_value(flagfile.load(path).flags[ENABLED])[0] is False
    assert sorted(os.listdir(tmp_path)) == ["flags.json"]  # no temp file left behind


def test_kill_on_a_directory_says_it_cannot_and_that_the_corridor_is_off(tmp_path: Path) -> None:
    path = tmp_path / "flags.json"
    path.mkdir()
    with pytest.raises(FlagFileError, match=r"it is a directory.*already fail closed"):
        flagfile.kill(path)
    assert path.is_dir() and sorted(os.listdir(tmp_path)) == ["flags.json"]
