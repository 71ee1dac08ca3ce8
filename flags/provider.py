"""Which OpenFeature provider serves the corridor's flags (``PARTIAL_TRUST_FLAGS_PROVIDER``).

* ``file`` (default): the flagd provider's FILE resolver, in-process, serving
  ``PARTIAL_TRUST_FLAGS_FILE`` (default ``flags/partial-trust.flagd.json`` relative to the
  working directory) through the flag file guard (``partial_trust.flags.guard``): the guard reads
  the file
  on its own thread every ``FILE_POLL_MS`` (regular files only, at most 1 MiB, within 1 s),
  and flagd reads the guard's private, validated snapshot, which it also polls every
  ``FILE_POLL_MS``. 50 ms keeps a change (and a kill) well inside the 300 ms the runbook
  allows, at the cost of one ``stat`` per poll (and a read of the file while it is changing).
* ``flagd``: a flagd daemon. Host, port, TLS and resolver come from the flagd provider's own
  ``FLAGD_*`` variables (``FLAGD_HOST``, ``FLAGD_PORT``, ``FLAGD_RESOLVER``...), so the
  deployment configures it the way flagd's documentation says.
* ``unleash``: an Unleash server (the ``unleash`` extra) through ``partial_trust.flags.unleash``,
which
  fails closed: ``UNLEASH_URL`` (…/api), ``UNLEASH_API_TOKEN`` (a backend token),
  ``UNLEASH_APP_NAME``, ``UNLEASH_REFRESH_INTERVAL`` (seconds, 0.25–60, default 0.5: a kill
  reaches the corridor within ~1.5 s; no successful fetch for 3 intervals, and at least
  3 s → STALE → off; a token
  refused, or no fetch ever → ERROR → off; ``/health`` says why; the next good fetch → on).
  Mapping: the enable flag is a toggle, and a toggle Unleash does not have (archived, deleted)
  is off, never the environment default; the other three are toggles whose strategy carries
  one variant whose payload is the value (a missing or disabled one → the environment
  default). Flags are evaluated into a snapshot without a per-request context, so Unleash's
  own rollout percentage must stay at 100% (stickiness irrelevant); sampling is the
  corridor's keyed hash of ``command_id``, which is the stickiness that matters and is
  identical in every pod. If a rollout strategy is used anyway, set its stickiness to
  ``command_id``.
* ``env``: no provider; the runbook's environment variables alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from partial_trust.environment import Environment

PROVIDER_ENV = "PARTIAL_TRUST_FLAGS_PROVIDER"
FILE_ENV = "PARTIAL_TRUST_FLAGS_FILE"
#: Relative to the working directory, unlike the packaged policy default: the flag file is
#: live state that ``flags kill`` rewrites, so it cannot live in a read-only site-packages.
#: A missing file is no error: the corridor stays off and ``/health`` names the file
#: (``partial-trust init`` writes one; ``PARTIAL_TRUST_FLAGS_FILE`` points at it).
DEFAULT_FLAGS_FILE = "flags/partial-trust.flagd.json"
PROVIDER_KINDS = ("file", "flagd", "unleash", "env")
FILE_POLL_MS = 50
UNLEASH_INTERVAL_ENV = "UNLEASH_REFRESH_INTERVAL"


def provider_kind(env: Environment) -> str:
    """The configured kind; an unknown value is an error at start-up, never a silent default."""
    kind = (env.get(PROVIDER_ENV) or "file").strip().lower()
    if kind not in PROVIDER_KINDS:
        raise ValueError(f"{PROVIDER_ENV}={kind!r}: expected one of {', '.join(PROVIDER_KINDS)}")
    return kind


def flags_file_path(env: Environment) -> Path:
    """``PARTIAL_TRUST_FLAGS_FILE`` or the default, made absolute against the cwd once."""
    return Path(env.get(FILE_ENV) or DEFAULT_FLAGS_FILE).absolute()


def make_file_provider(path: Path, poll_ms: int = FILE_POLL_MS) -> Any:
    """The in-process flagd FILE resolver serving ``path`` through the flag file guard."""
    from partial_trust.flags.fileprovider import GuardedFileProvider

    return GuardedFileProvider(path, poll_ms)


def make_flagd_provider() -> Any:
    """A flagd daemon, configured entirely by the provider's ``FLAGD_*`` variables."""
    from openfeature.contrib.provider.flagd import FlagdProvider

    return FlagdProvider()


#: The default poll: a kill must reach the corridor within 2 s, and Unleash itself publishes
#: a change to its client API up to ~1 s after it is made, which leaves the poll half a second.
UNLEASH_DEFAULT_INTERVAL_S = 0.5
UNLEASH_INTERVAL_RANGE_S = (0.25, 60.0)


def unleash_refresh_interval(env: Environment) -> float:
    """``UNLEASH_REFRESH_INTERVAL`` in seconds (0.25–60, decimals allowed, default 0.5);
    anything else stops start-up: a typo must not quietly become a 15 s kill switch."""
    raw = env.value(UNLEASH_INTERVAL_ENV)
    if not raw:
        return UNLEASH_DEFAULT_INTERVAL_S
    low, high = UNLEASH_INTERVAL_RANGE_S
    # Digits with at most one dot always parse; anything else (signs, exponents, "inf",
    # "nan", units) is NaN here, and NaN fails the range check.
    seconds = float(raw) if raw.replace(".", "", 1).isdigit() else float("nan")
    if not low <= seconds <= high:
        raise ValueError(
            f"{UNLEASH_INTERVAL_ENV}={raw!r}: expected seconds from {low:g} to {high:g} "
            "(for example 0.5)"
        )
    return seconds


def make_unleash_provider(env: Environment) -> Any:
    """The fail-closed Unleash provider (``partial_trust.flags.unleash``); a missing extra, URL or
    a bad
    interval is a clear error at start-up, not an ImportError or a silent default."""
    try:
        from partial_trust.flags.unleash import UnleashFlagProvider
    except ImportError as exc:
        raise RuntimeError(
            "PARTIAL_TRUST_FLAGS_PROVIDER=unleash needs the 'unleash' extra: "
            "pip install 'partial-trust-corridor[unleash]'"
        ) from exc
    url = env.value("UNLEASH_URL")
    if not url.startswith(("http://", "https://")):
        raise ValueError("PARTIAL_TRUST_FLAGS_PROVIDER=unleash needs UNLEASH_URL (http(s)://…/api)")
    return UnleashFlagProvider(
        url=url,
        app_name=env.get("UNLEASH_APP_NAME") or "partial-trust",
        api_token=env.get("UNLEASH_API_TOKEN") or "",
        refresh_interval_s=unleash_refresh_interval(env),
    )


def make_provider(kind: str, env: Environment) -> Any:
    """A new provider of ``kind`` (not for ``env``, which has none)."""
    if kind == "file":
        return make_file_provider(flags_file_path(env))
    if kind == "flagd":
        return make_flagd_provider()
    if kind == "unleash":
        return make_unleash_provider(env)
    raise ValueError(f"provider kind {kind!r} has no OpenFeature provider")
