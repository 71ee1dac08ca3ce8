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

Reading goes through ``partial_trust.flags.saferead`` (regular files only, 1 MiB, 1 s), so a FIFO
or a device
at the path never hangs the CLI or the console. ``kill`` replaces a broken file with the shipped
starter document (switch off); ``set`` and ``resume`` refuse it. The model and the bounds on
numbers live in ``partial_trust.flags.flagmodel`` and are re-exported here.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import stat
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

from partial_trust.corridors import (
    CORRIDOR_ALLOWLIST,
    SHOPPING,
    corridor_of_key,
    flag_keys,
    rollout_order_problem,
)
from partial_trust.flags.flagmodel import (
    ENABLED,
    FLAGD_SCHEMA,
    KNOWN_FLAGS,
    MODE,
    PROFILE_ID,
    SAMPLE_RATE,
    TIMEOUT_MS,
    FlagdDocument,
    FlagDefinition,
    FlagFileError,
    Scalar,
    flag_kind,
    is_mode_key,
    parse_document,
)
from partial_trust.flags.saferead import UnsafeFileError, read_regular
from partial_trust.mode import Mode
from partial_trust.thresholds import STAGES

__all__ = [
    "CUSTOM_VARIANT",
    "ENABLED",
    "FLAGD_SCHEMA",
    "KNOWN_FLAGS",
    "MODE",
    "PROFILE_ID",
    "SAMPLE_RATE",
    "STAGE_ONE_RATE",
    "STARTER_FILE",
    "TIMEOUT_MS",
    "Change",
    "FlagDefinition",
    "FlagFileError",
    "FlagdDocument",
    "Scalar",
    "atomic_write",
    "coerce_value",
    "kill",
    "load",
    "parse_document",
    "read_bytes",
    "resume",
    "served_value",
    "set_flag",
    "starter_document",
]

CUSTOM_VARIANT = "custom"
#: where ``resume`` restarts the ladder (the playbook: after a kill or rollback, stage 1)
STAGE_ONE_RATE: float = STAGES[1].sample_rate
#: the shipped starter document (corridor off, stage 1 ready): what ``kill`` writes over a
#: broken file; packaged with ``flags`` (``package-data``), so an installed CLI has it too
STARTER_FILE = "partial-trust.flagd.json"
_FRESH_MODE = 0o644  # a replaced file's mode: the service may run as another user
_TRUE_WORDS = frozenset({"true", "1", "yes", "on"})
_FALSE_WORDS = frozenset({"false", "0", "no", "off"})
MODES = tuple(m.value for m in Mode)


def read_bytes(path: str | os.PathLike[str]) -> bytes:
    """The file's bytes through ``partial_trust.flags.saferead`` (regular file, size cap,
    deadline)."""
    try:
        return read_regular(path)
    except UnsafeFileError as exc:
        raise FlagFileError(str(exc)) from None


def load(path: str | os.PathLike[str]) -> FlagdDocument:
    """Read and validate the file; any problem is a ``FlagFileError`` with a clear message."""
    return parse_document(read_bytes(path), str(path))[1]


def starter_document() -> bytes:
    """The shipped flag file, from the installed package."""
    return resources.files("partial_trust.flags").joinpath(STARTER_FILE).read_bytes()


def coerce_value(key: str, value: object) -> Scalar:
    """The runbook's rules, strictly: what ``flags set`` may write (no clamping on write)."""
    kind = flag_kind(key)
    if kind is None:
        raise FlagFileError(
            f"unknown flag {key!r}; known flags: {', '.join(KNOWN_FLAGS)} "
            "(other corridors: partial-trust.<corridor>.<setting>, README 'Corridors')"
        )
    text = value.strip() if isinstance(value, str) else None
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        if text is not None and text.lower() in _TRUE_WORDS | _FALSE_WORDS:
            return text.lower() in _TRUE_WORDS
        raise FlagFileError(f"{key}: {value!r} is not a boolean (true/false)")
    if kind == "float":
        try:
            rate = float(value) if not isinstance(value, bool) else math.nan  # type: ignore[arg-type]  # JSON: the except is the check
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
    if is_mode_key(key):
        if text is None or text.lower() not in MODES:
            raise FlagFileError(f"{key}: {value!r} is not one of: {', '.join(MODES)}")
        return text.lower()
    if text is None or any(ch in text for ch in "\r\n\t") or len(text) > 200:
        raise FlagFileError(f"{key}: {value!r} is not a profile id (one line of text)")
    return text


def _same(a: object, b: object) -> bool:
    return type(a) is type(b) and a == b


@dataclass(frozen=True)
class Change:
    """What an edit did, for the CLI's message and the audit trail.

    ``replaced`` is set when ``kill`` found the file unusable and wrote a fresh one: it says
    what was wrong with the old file (``old`` is then None: its value was unknown).
    """

    key: str
    old: object
    new: Scalar
    variant: str
    replaced: str | None = None
    #: ``resume`` only: the sample rate served (before, after), and whether it was kept
    rate: tuple[object, object] | None = None
    kept_rate: bool | None = None


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


def _inherit(old: Path, tmp: Path, mode: int | None) -> None:
    """Keep the old file's mode (or set ``mode``), and make the new mtime strictly later than
    the old one: a flagd daemon's file sync and other mtime watchers reload only when mtime
    increases, and two edits inside one coarse clock tick (a few ms) would otherwise look like
    one. The service itself reloads on any change of content (``partial_trust.flags.guard``)."""
    try:
        before: os.stat_result | None = old.stat()
    except OSError:
        before = None
    if before is not None and not stat.S_ISREG(before.st_mode):
        before = None  # a device's or a FIFO's mode and times are nothing to inherit
    if mode is None:
        kept = before.st_mode & 0o777 if before is not None else 0
        mode = kept if kept & 0o444 else _FRESH_MODE  # a file nobody may read is no policy
    os.chmod(tmp, mode)
    if before is not None and tmp.stat().st_mtime_ns <= before.st_mtime_ns:
        bumped = before.st_mtime_ns + 1_000_000
        os.utime(tmp, ns=(bumped, bumped))


def atomic_write(path: Path, data: bytes, *, mode: int | None = None) -> None:
    """Temp file in the same directory, fsync, rename over, fsync the directory.

    ``mode`` None keeps the old file's mode (``0o644`` for a new file, or when nobody could
    read the old one)."""
    directory = path.parent
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        _inherit(path, Path(tmp), mode)
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


def _write_change(
    target: Path, raw: dict[str, Any], doc: FlagdDocument, key: str, new: Scalar, reason: str | None
) -> Change:
    """Change, validate, replace; the caller holds the directory lock."""
    old, _ = served_value(doc.flags.get(key))
    variant = _apply(raw, key, new, reason)
    after = (json.dumps(raw, indent=2, ensure_ascii=False) + "\n").encode()
    parse_document(after, f"{target} (after the change)")
    atomic_write(target, after)
    return Change(key, old, new, variant)


def set_flag(
    path: str | os.PathLike[str], key: str, value: object, *, reason: str | None = None
) -> Change:
    """Validate the value and the resulting file, then replace the file atomically.

    Any refusal raises ``FlagFileError`` (a ``ValueError``) before the file is touched. A file
    that cannot be used is refused too, never reset: a reset would silently change every other
    flag. Only ``kill`` replaces a broken file (see ``kill``).
    """
    target = Path(path)
    new = coerce_value(key, value)
    with _dir_lock(target.parent):
        try:
            raw, doc = parse_document(read_bytes(target), str(target))
        except FlagFileError as exc:
            raise FlagFileError(
                f"{exc}. Fix or restore the file first (only 'kill' replaces a broken file; "
                "services reading it already fail closed: corridor off)"
            ) from None
        if is_mode_key(key):
            _check_rollout_order(doc, key, str(new))
        return _write_change(target, raw, doc, key, new, reason)


def corridor_modes(doc: FlagdDocument) -> dict[str, Mode | None]:
    """The mode each allow-listed corridor's flag serves in ``doc`` (``None``: not defined,
    the corridor is not being rolled out from this file)."""
    modes: dict[str, Mode | None] = {}
    for name in CORRIDOR_ALLOWLIST:
        served, _ = served_value(doc.flags.get(flag_keys(name).mode))
        modes[name] = Mode(served) if isinstance(served, str) and served in MODES else None
    return modes


def _check_rollout_order(doc: FlagdDocument, key: str, mode: str) -> None:
    """The risk class's cap and the order between classes (``corridors.rollout_order_problem``):
    refused here, where the stage is changed, before the file is touched."""
    hit = corridor_of_key(key)
    if hit is None:  # only a corridor's mode key gets here; anything else is not a stage
        raise FlagFileError(f"{key}: not a corridor's flag key")
    problem = rollout_order_problem(hit[0], Mode(mode), corridor_modes(doc))
    if problem is not None:
        raise FlagFileError(f"{key}: {mode!r} refused: {problem}")


def kill(
    path: str | os.PathLike[str], *, reason: str | None = None, corridor: str = SHOPPING
) -> Change:
    """The runbook's kill switch: ``partial-trust-enabled`` pinned to false.

    It must work exactly when the file is broken (unreadable, a FIFO or a device at the path,
    oversized, invalid): then the path is replaced by the shipped starter document with the
    switch off, and the returned ``Change.replaced`` says what was wrong, for the audit log.
    A path that cannot be replaced (a directory) is a ``FlagFileError`` that says so.
    ``corridor``: whose switch (its own key, ``corridors.flag_keys``); others keep running.
    """
    target = Path(path)
    why = reason or "kill switch"
    key = flag_keys(corridor).enabled
    with _dir_lock(target.parent):
        try:
            raw, doc = parse_document(read_bytes(target), str(target))
        except FlagFileError as exc:
            return _replace_broken(target, str(exc), why, key)
        return _write_change(target, raw, doc, key, False, why)


def _replace_broken(target: Path, broken: str, reason: str, key: str = ENABLED) -> Change:
    raw = json.loads(starter_document())
    _apply(raw, ENABLED, False, reason)  # the starter's corridor stays off as well
    variant = _apply(raw, key, False, reason)
    data = (json.dumps(raw, indent=2, ensure_ascii=False) + "\n").encode()
    parse_document(data, "the starter flag file")
    try:
        atomic_write(target, data, mode=_FRESH_MODE)
    except OSError as exc:
        raise FlagFileError(
            f"{broken}; it could not be replaced with a fresh file either "
            f"({exc.strerror or exc}). Services reading this path already fail closed "
            "(corridor off); fix the path by hand"
        ) from None
    return Change(key, None, False, variant, replaced=broken)


def resume(
    path: str | os.PathLike[str],
    *,
    reason: str | None = None,
    keep_rate: bool = False,
    corridor: str = SHOPPING,
) -> Change:
    """Undo ``kill`` as the playbook says: ``partial-trust-enabled`` pinned to true and the
    sample rate back to stage 1 (1%), in one atomic write: a corridor that was killed or
    rolled back starts the ladder again. ``keep_rate`` keeps the rate it had. A corridor that
    is already on keeps its rate (there is nothing to restart). Timeout and profile are never
    touched. ``Change.rate`` is the served sample rate (before, after), ``kept_rate`` which."""
    target = Path(path)
    why = reason or "resume"
    keys = flag_keys(corridor)
    enabled_key, rate_key = keys.enabled, keys.sample_rate
    with _dir_lock(target.parent):
        try:
            raw, doc = parse_document(read_bytes(target), str(target))
        except FlagFileError as exc:
            raise FlagFileError(
                f"{exc}. Fix or restore the file first (only 'kill' replaces a broken file)"
            ) from None
        old, _ = served_value(doc.flags.get(enabled_key))
        old_rate, _ = served_value(doc.flags.get(rate_key))
        keep = keep_rate or old is True
        if not keep:
            _apply(raw, rate_key, STAGE_ONE_RATE, why)
        variant = _apply(raw, enabled_key, True, why)
        after = (json.dumps(raw, indent=2, ensure_ascii=False) + "\n").encode()
        parse_document(after, f"{target} (after the change)")
        atomic_write(target, after)
    new_rate = old_rate if keep else STAGE_ONE_RATE
    return Change(enabled_key, old, True, variant, rate=(old_rate, new_rate), kept_rate=keep)
