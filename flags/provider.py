"""Which OpenFeature provider serves the corridor's flags (``PARTIAL_TRUST_FLAGS_PROVIDER``).

* ``file`` (default): the flagd provider's FILE resolver, in-process, serving
  ``PARTIAL_TRUST_FLAGS_FILE`` (default ``flags/partial-trust.flagd.json`` relative to the
  working directory) through the flag file guard (``flags.guard``): the guard reads the file
  on its own thread every ``FILE_POLL_MS`` (regular files only, at most 1 MiB, within 1 s),
  and flagd reads the guard's private, validated snapshot, which it also polls every
  ``FILE_POLL_MS``. 50 ms keeps a change (and a kill) well inside the 300 ms the runbook
  allows, at the cost of one ``stat`` per poll (and a read of the file while it is changing).
* ``flagd``: a flagd daemon. Host, port, TLS and resolver come from the flagd provider's own
  ``FLAGD_*`` variables (``FLAGD_HOST``, ``FLAGD_PORT``, ``FLAGD_RESOLVER``...), so the
  deployment configures it the way flagd's documentation says.
* ``unleash``: an Unleash server through ``openfeature-provider-unleash`` (the ``unleash``
  extra): ``UNLEASH_URL``, ``UNLEASH_API_TOKEN``, ``UNLEASH_APP_NAME``. Mapping: the enable
  flag is a toggle; the other three are toggles with one variant whose payload carries the
  value. Flags are evaluated into a snapshot without a per-request context, so Unleash's own
  rollout percentage must stay at 100% (stickiness irrelevant); sampling is the corridor's
  keyed hash of ``command_id``, which is the stickiness that matters and is identical in every
  pod. If a rollout strategy is used anyway, set its stickiness to ``command_id``.
* ``env``: no provider; the runbook's environment variables alone.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

PROVIDER_ENV = "PARTIAL_TRUST_FLAGS_PROVIDER"
FILE_ENV = "PARTIAL_TRUST_FLAGS_FILE"
#: Relative to the working directory, unlike the packaged policy default: the flag file is
#: live state that ``flags kill`` rewrites, so it cannot live in a read-only site-packages.
#: A missing file is no error: the corridor stays off and ``/health`` names the file
#: (``partial-trust init`` writes one; ``PARTIAL_TRUST_FLAGS_FILE`` points at it).
DEFAULT_FLAGS_FILE = "flags/partial-trust.flagd.json"
PROVIDER_KINDS = ("file", "flagd", "unleash", "env")
FILE_POLL_MS = 50


def provider_kind(environ: Mapping[str, str] | None = None) -> str:
    """The configured kind; an unknown value is an error at start-up, never a silent default."""
    env = os.environ if environ is None else environ
    kind = (env.get(PROVIDER_ENV) or "file").strip().lower()
    if kind not in PROVIDER_KINDS:
        raise ValueError(f"{PROVIDER_ENV}={kind!r}: expected one of {', '.join(PROVIDER_KINDS)}")
    return kind


def flags_file_path(environ: Mapping[str, str] | None = None) -> Path:
    """``PARTIAL_TRUST_FLAGS_FILE`` or the default, made absolute against the cwd once."""
    env = os.environ if environ is None else environ
    return Path(env.get(FILE_ENV) or DEFAULT_FLAGS_FILE).absolute()


def make_file_provider(path: Path, poll_ms: int = FILE_POLL_MS) -> Any:
    """The in-process flagd FILE resolver serving ``path`` through the flag file guard."""
    from flags.fileprovider import GuardedFileProvider

    return GuardedFileProvider(path, poll_ms)


def make_flagd_provider() -> Any:
    """A flagd daemon, configured entirely by the provider's ``FLAGD_*`` variables."""
    from openfeature.contrib.provider.flagd import FlagdProvider

    return FlagdProvider()


def make_unleash_provider(environ: Mapping[str, str] | None = None) -> Any:
    """An Unleash provider; a missing extra or URL is a clear error, not an ImportError."""
    env = os.environ if environ is None else environ
    try:
        from openfeature.contrib.provider.unleash import UnleashProvider
    except ImportError as exc:
        raise RuntimeError(
            "PARTIAL_TRUST_FLAGS_PROVIDER=unleash needs the 'unleash' extra: "
            "pip install 'partial-trust-corridor[unleash]'"
        ) from exc
    url = env.get("UNLEASH_URL", "").strip()
    if not url:
        raise ValueError("PARTIAL_TRUST_FLAGS_PROVIDER=unleash needs UNLEASH_URL (…/api)")
    return UnleashProvider(
        url=url,
        app_name=env.get("UNLEASH_APP_NAME") or "partial-trust",
        api_token=env.get("UNLEASH_API_TOKEN", ""),
    )


def make_provider(kind: str, environ: Mapping[str, str] | None = None) -> Any:
    """A new provider of ``kind`` (not for ``env``, which has none)."""
    if kind == "file":
        return make_file_provider(flags_file_path(environ))
    if kind == "flagd":
        return make_flagd_provider()
    if kind == "unleash":
        return make_unleash_provider(environ)
    raise ValueError(f"provider kind {kind!r} has no OpenFeature provider")
