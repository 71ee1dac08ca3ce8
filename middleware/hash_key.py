"""Where the secret key of the risk log's ``command_key`` comes from.

A key anyone can read (a constant in the package) lets anyone with the log recover guessable
command ids by hashing candidates, so there is no built-in key. In order:

* ``PARTIAL_TRUST_HASH_KEY`` (source ``env``): set the same value on every pod whose logs are
  joined.
* otherwise a random key generated once and kept in ``.partial_trust_hash_key`` next to the
  risk log (source ``file``), owner-only (0600), reused on restart and by every worker on the
  host. The file holds 64 hex characters and *those characters are the key*, so copying the
  file's content into ``PARTIAL_TRUST_HASH_KEY`` on other pods gives the very same hashes.
* when that directory cannot be written, a per-process random key (source ``ephemeral``),
  logged as a warning and shown on ``/health``: records still never hold ids, but keys no
  longer join across restarts or workers.

A key file that others could read, that another user owns (and so knows), that is not a
regular file, or that has the wrong content is refused with a ``ValueError`` at start:
silently replacing it would change every hash.
Creation is race-free across workers: the key is written to a private temporary file and
published with ``link`` (atomic, fails if the name exists), so a reader never sees a half
file from us; a half file from anyone else is waited for briefly, then refused.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import secrets
import stat
import time
from dataclasses import dataclass, field
from typing import Literal

from partial_trust.environment import Environment

logger = logging.getLogger("partial_trust.hash_key")

ENV_VAR = "PARTIAL_TRUST_HASH_KEY"
KEY_FILE_NAME = ".partial_trust_hash_key"
#: 32 random bytes as hex: the key file's exact content (one trailing newline tolerated).
KEY_CHARS = 64
MIN_RECOMMENDED_BYTES = 16
_KEY_TEXT = re.compile(rb"[0-9a-f]{64}")
#: How long a reader waits for a half-written key file to be completed by another writer.
INCOMPLETE_WAIT_S = 2.0

Source = Literal["env", "file", "ephemeral", "given"]


@dataclass(frozen=True, slots=True)
class HashKey:
    """A key and where it came from; ``repr`` and ``status`` never show the key."""

    key: bytes = field(repr=False)
    source: Source
    path: str | None = None

    def __post_init__(self) -> None:
        if not 1 <= len(self.key) <= 64:
            raise ValueError(f"{ENV_VAR} must be 1 to 64 bytes long")

    def status(self) -> dict[str, str]:
        """The ``/health`` view: the source, the file's path, and a warning when ephemeral."""
        out: dict[str, str] = {"source": self.source}
        if self.path is not None:
            out["path"] = self.path
        if self.source == "ephemeral":
            out["warning"] = "per-process key: command_key does not join across restarts"
        return out


def key_file_path(risk_log_path: str) -> str:
    """``<risk log dir>/.partial_trust_hash_key``, absolute."""
    return os.path.join(os.path.dirname(os.path.abspath(risk_log_path)), KEY_FILE_NAME)


def ephemeral_key(reason: str) -> HashKey:
    """A random key for this process only, with the warning that says what it costs."""
    logger.warning(
        "using a per-process random hash key (%s): risk-log command_key values will not be "
        "stable across restarts or workers, so records of one command no longer join; set %s "
        "to the same 64 hex characters on every pod (e.g. `openssl rand -hex 32`) and pass the "
        "environment to CorridorStack.from_env",
        reason,
        ENV_VAR,
    )
    return HashKey(secrets.token_hex(32).encode(), "ephemeral")


def from_env(env: Environment) -> HashKey | None:
    raw = env.get(ENV_VAR) or ""
    if not raw:
        return None
    key = HashKey(raw.encode(), "env")
    if len(key.key) < MIN_RECOMMENDED_BYTES:
        logger.warning("%s is shorter than %d bytes: easy to guess", ENV_VAR, MIN_RECOMMENDED_BYTES)
    return key


def resolve_hash_key(env: Environment, risk_log_path: str) -> HashKey:
    """The environment's key, else the key file next to the risk log, else an ephemeral key."""
    key = from_env(env)
    if key is not None:
        return key
    path = key_file_path(risk_log_path)
    try:
        return HashKey(load_or_create(path), "file", path)
    except _CannotCreate as exc:
        return ephemeral_key(f"cannot create {path}: {exc.reason}")


class _CannotCreate(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _Incomplete(Exception):
    pass


def load_or_create(path: str, *, wait_s: float = INCOMPLETE_WAIT_S) -> bytes:
    """The key in ``path``, creating it first if absent; concurrent callers get one key."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return _read(path)
        except FileNotFoundError:
            pass
        except _Incomplete as exc:
            if time.monotonic() >= deadline:
                raise ValueError(f"{_refusal(path)}: {exc}") from None
            time.sleep(0.01)
            continue
        try:
            _publish(path)
        except FileExistsError:
            continue  # another worker won the race: read its key on the next turn
        # ours is published (or a direct O_EXCL write finished): read what the file now holds


def _refusal(path: str) -> str:
    return f"refusing the hash key file {path} (set {ENV_VAR}, or fix or remove the file)"


def _read(path: str) -> bytes:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise
    except NotADirectoryError:  # a parent is a file: no key here; creating it will fail too
        raise FileNotFoundError(path) from None
    except OSError as exc:
        what = "it is a symlink" if exc.errno == errno.ELOOP else os.strerror(exc.errno or 0)
        raise ValueError(f"{_refusal(path)}: {what}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ValueError(f"{_refusal(path)}: not a regular file")
        if info.st_uid != os.geteuid():  # planted by another user, who then knows the key
            raise ValueError(f"{_refusal(path)}: owned by uid {info.st_uid}, not this process")
        mode = stat.S_IMODE(info.st_mode)
        if mode & 0o077:
            raise ValueError(
                f"{_refusal(path)}: group/others have access (mode {mode:o}); chmod 600 it"
            )
        if info.st_size > KEY_CHARS + 1:
            raise ValueError(f"{_refusal(path)}: wrong length ({info.st_size} bytes)")
        data = os.read(fd, KEY_CHARS + 2)
    finally:
        os.close(fd)
    if data.endswith(b"\n"):
        data = data[:-1]
    if len(data) < KEY_CHARS:
        raise _Incomplete(f"wrong length ({len(data)} bytes, want {KEY_CHARS} hex characters)")
    if not _KEY_TEXT.fullmatch(data):
        raise ValueError(f"{_refusal(path)}: not {KEY_CHARS} lowercase hex characters")
    return data


def _publish(path: str) -> None:
    """Write a fresh key to a private temporary file, then ``link`` it to ``path``."""
    directory = os.path.dirname(path)
    try:
        # The risk log's own directory, so its usual mode: a log shipper may need to list it.
        # The key file alone is private.
        os.makedirs(directory, exist_ok=True)
    except OSError as exc:
        raise _CannotCreate(os.strerror(exc.errno or 0)) from None
    text = secrets.token_hex(32).encode()
    tmp = f"{path}.{os.getpid()}.{secrets.token_hex(6)}.tmp"
    try:
        _write_new(tmp, text)
    except OSError as exc:
        raise _CannotCreate(os.strerror(exc.errno or 0)) from None
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise
    except OSError:
        # No hard links here (some network or FUSE file systems): exclusive create instead;
        # a concurrent reader may then see a half file, which ``load_or_create`` waits out.
        try:
            _write_new(path, text)
        except FileExistsError:
            raise
        except OSError as exc:
            raise _CannotCreate(os.strerror(exc.errno or 0)) from None
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
    _sync_directory(directory)


def _write_new(path: str, data: bytes) -> None:
    flags = os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(path, flags, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)


def _sync_directory(directory: str) -> None:
    """Make the new name durable, so a crash cannot bring back a key-less directory."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
