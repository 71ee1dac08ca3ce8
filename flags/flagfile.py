"""The flag file: load it, validate it, and edit it atomically.

The file is in flagd's own schema so that a flagd daemon can serve it unchanged. Reading is
lenient about values (the runbook clamps a sample rate of 7 to 1.0 at run time, so a
hand-edited file must not stop the service), but writing is strict: ``flags set`` refuses a
value the runbook would have to repair, and never leaves a half-written or invalid file
behind, because the file provider reloads whatever lands on disk within ~50 ms.

How ``set`` writes a value: it pins the flag to one variant. If a variant already holds exactly
that value (``0.05`` → ``stage2``) it becomes the ``defaultVariant``; otherwise a variant named
``custom`` is added (or overwritten) and selected. ``set`` also sets ``state`` to ``ENABLED`` and
removes ``targeting`` from that flag (a targeting rule would override ``defaultVariant``, and a
kill switch that a rule can override is not one), and records ``--reason`` and the time in the
flag's ``metadata`` (flagd passes flag metadata through untouched).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError, model_validator

ENABLED = "partial-trust-enabled"
SAMPLE_RATE = "partial-trust-sample-rate"
TIMEOUT_MS = "partial-trust-timeout-ms"
PROFILE_ID = "partial-trust-profile-id"
#: flag key -> the flagd type it must have
KNOWN_FLAGS: dict[str, str] = {
    ENABLED: "boolean",
    SAMPLE_RATE: "float",
    TIMEOUT_MS: "integer",
    PROFILE_ID: "string",
}
CUSTOM_VARIANT = "custom"
FLAGD_SCHEMA = "https://flagd.dev/schema/v0/flags.json"
_TRUE_WORDS = frozenset({"true", "1", "yes", "on"})
_FALSE_WORDS = frozenset({"false", "0", "no", "off"})

Scalar = str | int | float | bool


class FlagFileError(ValueError):
    """The file cannot be used or a value is refused; the message names the flag and field."""


class FlagDefinition(BaseModel):
    """One flag as flagd defines it (state, variants, defaultVariant, optional targeting)."""

    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=True)

    state: Literal["ENABLED", "DISABLED"]
    variants: dict[str, JsonValue] = Field(min_length=1)
    default_variant: str | None = Field(default=None, alias="defaultVariant")
    targeting: dict[str, JsonValue] | None = None
    metadata: dict[str, Scalar] | None = None

    @model_validator(mode="after")
    def _default_variant_exists(self) -> FlagDefinition:
        if self.default_variant and self.default_variant not in self.variants:
            known = ", ".join(sorted(self.variants))
            raise ValueError(f"defaultVariant {self.default_variant!r} is not one of: {known}")
        return self


class FlagdDocument(BaseModel):
    """The whole file. ``$evaluators`` is flagd's shared targeting; it is kept as it is."""

    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=True)

    schema_url: str | None = Field(default=None, alias="$schema")
    evaluators: dict[str, JsonValue] | None = Field(default=None, alias="$evaluators")
    metadata: dict[str, Scalar] | None = None
    flags: dict[str, FlagDefinition]


def _describe(error: ValidationError) -> str:
    """pydantic's locations, rewritten as "flag 'x', field 'y'" so an operator can find them."""
    lines = []
    for item in error.errors():
        loc = [str(part) for part in item["loc"]]
        if len(loc) >= 2 and loc[0] == "flags":
            where = f"flag {loc[1]!r}" + (f", field {'.'.join(loc[2:])!r}" if loc[2:] else "")
        else:
            where = f"field {'.'.join(loc)!r}" if loc else "file"
        lines.append(f"{where}: {item['msg']}")
    return "; ".join(lines)


def parse_document(data: bytes, origin: str = "flag file") -> tuple[dict[str, Any], FlagdDocument]:
    """Raw dict (kept for rewriting: key order and unknown-to-us content survive) and model."""
    try:
        raw = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FlagFileError(f"{origin}: not valid JSON ({exc})") from None
    if not isinstance(raw, dict):
        raise FlagFileError(f"{origin}: the top level must be a JSON object")
    try:
        return raw, FlagdDocument.model_validate(raw)
    except ValidationError as exc:
        raise FlagFileError(f"{origin}: {_describe(exc)}") from None


def load(path: str | os.PathLike[str]) -> FlagdDocument:
    """Read and validate the file; any problem is a ``FlagFileError`` with a clear message."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise FlagFileError(f"{path}: cannot read the flag file ({exc.strerror})") from None
    return parse_document(data, str(path))[1]


def coerce_value(key: str, value: object) -> Scalar:
    """The runbook's rules, strictly: what ``flags set`` may write (no clamping on write)."""
    kind = KNOWN_FLAGS.get(key)
    if kind is None:
        raise FlagFileError(f"unknown flag {key!r}; known flags: {', '.join(KNOWN_FLAGS)}")
    text = value.strip() if isinstance(value, str) else None
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        if text is not None and text.lower() in _TRUE_WORDS | _FALSE_WORDS:
            return text.lower() in _TRUE_WORDS
        raise FlagFileError(f"{key}: {value!r} is not a boolean (true/false)")
    if kind == "float":
        try:
            rate = float(value) if not isinstance(value, bool) else math.nan  # type: ignore[arg-type]
        except (TypeError, ValueError):
            rate = math.nan
        if not 0.0 <= rate <= 1.0:  # NaN fails this too
            raise FlagFileError(f"{key}: {value!r} is not a number in [0, 1]")
        return rate
    if kind == "integer":
        ms = 0
        if isinstance(value, int) and not isinstance(value, bool):
            ms = value
        elif text is not None and text.isdigit():
            ms = int(text)
        if ms <= 0:
            raise FlagFileError(f"{key}: {value!r} is not a whole number of milliseconds > 0")
        return ms
    if text is None or any(ch in text for ch in "\r\n\t") or len(text) > 200:
        raise FlagFileError(f"{key}: {value!r} is not a profile id (one line of text)")
    return text


def _same(a: object, b: object) -> bool:
    return type(a) is type(b) and a == b


@dataclass(frozen=True)
class Change:
    """What an edit did, for the CLI's message and the audit trail."""

    key: str
    old: object
    new: Scalar
    variant: str


def served_value(flag: FlagDefinition | None) -> tuple[object, str]:
    """What flagd serves without context (the value, and a note when it is not that simple)."""
    if flag is None:
        return None, "not defined: the environment default applies"
    if flag.state == "DISABLED":
        return None, "state DISABLED: the environment default applies"
    note = "targeting rules present: the value may vary" if flag.targeting else ""
    if not flag.default_variant:
        return None, "no defaultVariant: the environment default applies"
    return flag.variants[flag.default_variant], note


def _apply(raw: dict[str, Any], key: str, value: Scalar, reason: str | None) -> str:
    flags = raw.setdefault("flags", {})
    flag = flags.get(key)
    if not isinstance(flag, dict):
        flag = flags[key] = {"state": "ENABLED", "variants": {}}
    variants = flag.get("variants")
    if not isinstance(variants, dict):
        variants = flag["variants"] = {}
    variant = next((n for n, v in variants.items() if _same(v, value)), None)
    if variant is None:
        variant = CUSTOM_VARIANT
        variants[variant] = value
    flag["state"] = "ENABLED"
    flag["defaultVariant"] = variant
    flag.pop("targeting", None)
    metadata = flag.get("metadata") if isinstance(flag.get("metadata"), dict) else {}
    metadata["changedAt"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    metadata["changeReason"] = (reason or "").strip()[:200]
    flag["metadata"] = metadata
    return variant


@contextlib.contextmanager
def _dir_lock(directory: Path) -> Any:
    """Serialize concurrent editors (two operators, the console) without an extra lock file."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _inherit(old: Path, tmp: Path) -> None:
    """Keep the old file's mode, and make the new mtime strictly later than the old one: the
    flagd FILE resolver reloads only when mtime increases, and two edits inside one coarse
    clock tick (a few ms) would otherwise leave it serving the first edit indefinitely."""
    before = old.stat()
    os.chmod(tmp, before.st_mode & 0o777)
    after = tmp.stat().st_mtime_ns
    if after <= before.st_mtime_ns:
        bumped = before.st_mtime_ns + 1_000_000
        os.utime(tmp, ns=(bumped, bumped))


def atomic_write(path: Path, data: bytes) -> None:
    """Temp file in the same directory, fsync, rename over, fsync the directory."""
    directory = path.parent
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(FileNotFoundError):
            _inherit(path, Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def set_flag(
    path: str | os.PathLike[str], key: str, value: object, *, reason: str | None = None
) -> Change:
    """Validate the value and the resulting file, then replace the file atomically.

    Any refusal raises ``FlagFileError`` (a ``ValueError``) before the file is touched.
    """
    target = Path(path)
    new = coerce_value(key, value)
    with _dir_lock(target.parent):
        try:
            before = target.read_bytes()
        except OSError as exc:
            raise FlagFileError(f"{target}: cannot read the flag file ({exc.strerror})") from None
        raw, doc = parse_document(before, str(target))
        old, _ = served_value(doc.flags.get(key))
        variant = _apply(raw, key, new, reason)
        after = (json.dumps(raw, indent=2, ensure_ascii=False) + "\n").encode()
        parse_document(after, f"{target} (after the change)")
        atomic_write(target, after)
    return Change(key, old, new, variant)


def kill(path: str | os.PathLike[str], *, reason: str | None = None) -> Change:
    """The runbook's kill switch: ``partial-trust-enabled`` pinned to false."""
    return set_flag(path, ENABLED, False, reason=reason or "kill switch")


def resume(path: str | os.PathLike[str], *, reason: str | None = None) -> Change:
    """Undo ``kill``: ``partial-trust-enabled`` pinned to true (other flags untouched)."""
    return set_flag(path, ENABLED, True, reason=reason or "resume")
