"""Corridor settings with the rollout runbook's exact parsing rules.

Two layers. ``EnvDefaults`` is read once from the environment with the runbook's semantics;
flag providers (``flags/``) serve values live. ``apply_ceiling`` combines them, and it is the
ONE place the rule lives (README, "Configuration"): an unset variable leaves the flags in
charge (a flag the provider does not serve falls back to the variable's default); a variable
that is SET is a ceiling the flags cannot exceed, the stricter wins. So the runbook's
``export PARTIAL_TRUST_ENABLED=false`` + restart turns the corridor off whatever any provider
says, with every provider. Either way, the engine reads one frozen ``EffectiveSettings`` value
per request, so a flag change can never be half-applied to a request that is already running.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from partial_trust.corridors import SHOPPING, FlagKeys, flag_keys
from partial_trust.mode import DEFAULT_MODE, Mode, parse_mode, stricter_mode

logger = logging.getLogger("partial_trust.config")
T = TypeVar("T")

#: The only intents that may ever get a corridor. Hard-coded on purpose (ADR-004).
INTENT_ALLOWLIST: frozenset[str] = frozenset({"add_shopping_item"})

DEFAULT_INTENT = "add_shopping_item"
DEFAULT_SAMPLE_RATE = 0.01
DEFAULT_TIMEOUT_MS = 200
DEFAULT_RISK_LOG_PATH = "logs/partial_trust_risk.jsonl"
_TRUE = frozenset({"true", "1", "yes"})

#: The runbook's variable for each setting (the names ``limits`` reports).
ENV_ENABLED = "PARTIAL_TRUST_ENABLED"
ENV_INTENT = "PARTIAL_TRUST_INTENT"
ENV_SAMPLE_RATE = "PARTIAL_TRUST_SAMPLE_RATE"
ENV_TIMEOUT_MS = "PARTIAL_TRUST_TIMEOUT_MS"
ENV_PROFILE_ID = "PARTIAL_TRUST_PROFILE_ID"
ENV_POLICY_ENABLED = "LLM_POLICY_ENABLED"
ENV_MODE = "PARTIAL_TRUST_MODE"
#: The flag keys (the contract; ``partial_trust.flags.flagmodel`` defines the same strings).
FLAG_ENABLED = "partial-trust-enabled"
FLAG_SAMPLE_RATE = "partial-trust-sample-rate"
FLAG_TIMEOUT_MS = "partial-trust-timeout-ms"
FLAG_PROFILE_ID = "partial-trust-profile-id"
FLAG_MODE = "partial-trust-mode"
#: The advisory review store's per-corridor switch (off unless served true; see
#: ``partial_trust.middleware.review``): it only lets a configured store keep cases.
FLAG_REVIEW_ENABLED = "partial-trust-review-enabled"
_SHOPPING_KEYS = flag_keys(SHOPPING)
_CEILING_VARS = (
    ENV_ENABLED, ENV_INTENT, ENV_SAMPLE_RATE, ENV_TIMEOUT_MS, ENV_PROFILE_ID, ENV_MODE,
)  # fmt: skip


def parse_bool(raw: str | None) -> bool:
    """``true``/``1``/``yes`` in any case are true; anything else, unset included, is false."""
    return raw is not None and raw.strip().lower() in _TRUE


def parse_optional_bool(raw: str | None) -> bool | None:
    """Like ``parse_bool`` but unset (or blank) stays ``None`` so a lower layer can decide."""
    if raw is None or not raw.strip():
        return None
    return parse_bool(raw)


def parse_sample_rate(raw: object, default: float = DEFAULT_SAMPLE_RATE) -> float:
    """A float clamped to [0, 1]; garbage (text, NaN, bool) gives the default."""
    if raw is None or isinstance(raw, bool):
        return default
    try:
        value = float(raw)  # type: ignore[arg-type]  # any object: the except is the check
    except (TypeError, ValueError):
        logger.warning("sample rate is not a number; using the default %s", default)
        return default
    if math.isnan(value):
        return default
    return min(1.0, max(0.0, value))


def parse_timeout_ms(raw: object, default: int = DEFAULT_TIMEOUT_MS) -> int:
    """An int > 0. Unset gives the default; 0, negative or garbage gives 0 (corridor disabled)."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return default
    if isinstance(raw, bool):
        return 0
    if isinstance(raw, float):
        return int(raw) if raw.is_integer() and raw > 0 else 0
    try:
        value = int(str(raw).strip())
    except ValueError:
        logger.warning("timeout is not an integer; corridor disabled")
        return 0
    return value if value > 0 else 0


def parse_intent(raw: str | None) -> str | None:
    """The corridor intent, or ``None`` (corridor off) when it is not on the allowlist."""
    value = DEFAULT_INTENT if raw is None or not raw.strip() else raw.strip()
    if value not in INTENT_ALLOWLIST:
        logger.warning("PARTIAL_TRUST_INTENT is not on the allowlist; corridor off")
        return None
    return value


def parse_profile_id(raw: object) -> str | None:
    """Empty means "the policy's default profile", spelled ``None``."""
    if not isinstance(raw, str) or not raw.strip():
        return None
    return raw.strip()


@dataclass(frozen=True, slots=True)
class EffectiveSettings:
    """What one request sees. When disabled, the runbook's disabled values hold:
    sample rate 0.0, timeout 0, profile ``None``."""

    enabled: bool
    intent: str | None
    sample_rate: float
    timeout_ms: int
    profile_id: str | None
    policy_enabled: bool
    flags_available: bool = True
    source: str = "env"
    #: (setting, what decided it) pairs, see ``apply_ceiling``; not part of equality, so a
    #: snapshot whose values did not change is not reported as a change.
    limits: tuple[tuple[str, str], ...] = field(default=(), compare=False)
    #: ``shadow`` or ``canary`` while on (``off`` turns the corridor off, see ``apply_ceiling``).
    mode: Mode = DEFAULT_MODE
    #: The flag ``partial-trust-review-enabled``: may the review store keep this corridor's
    #: disagreements? Off unless served true; the store must also be configured.
    review_enabled: bool = False
    #: The corridor's risk class lowered the mode the flags and variables asked for
    #: (``partial_trust.corridors.mode_cap``: ``admin`` never beyond ``shadow``).
    mode_capped: bool = False

    @classmethod
    def build(
        cls,
        *,
        enabled: bool,
        intent: str | None,
        sample_rate: float,
        timeout_ms: int,
        profile_id: str | None,
        policy_enabled: bool,
        flags_available: bool = True,
        source: str = "env",
        limits: tuple[tuple[str, str], ...] = (),
        mode: Mode = DEFAULT_MODE,
        review_enabled: bool = False,
        mode_capped: bool = False,
    ) -> EffectiveSettings:
        """Apply the runbook's rule: a missing intent or a zero timeout disables the corridor."""
        on = enabled and intent is not None and timeout_ms > 0 and flags_available
        on = on and mode is not Mode.OFF
        if not on:
            off = (False, intent, 0.0, 0, None, policy_enabled, flags_available, source, limits)
            return cls(*off, mode=mode, mode_capped=mode_capped)
        return cls(
            True, intent, sample_rate, timeout_ms, profile_id, policy_enabled, True, source, limits,
            mode, review_enabled, mode_capped,
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class EnvDefaults:
    """The environment variables of the runbook's table, parsed once."""

    enabled: bool
    intent: str | None
    sample_rate: float
    timeout_ms: int
    profile_id: str | None
    risk_log_path: str
    policy_enabled: bool | None
    mode: Mode = DEFAULT_MODE
    #: The ceiling variables that are SET (present and not blank): only these limit the flags.
    explicit: frozenset[str] = frozenset()

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> EnvDefaults:
        """Parse ``env`` (``Environment.variables``: ``partial_trust.environment`` reads the
        process environment, once)."""
        return cls(
            enabled=parse_bool(env.get("PARTIAL_TRUST_ENABLED")),
            intent=parse_intent(env.get("PARTIAL_TRUST_INTENT")),
            sample_rate=parse_sample_rate(env.get("PARTIAL_TRUST_SAMPLE_RATE")),
            timeout_ms=parse_timeout_ms(env.get("PARTIAL_TRUST_TIMEOUT_MS")),
            profile_id=parse_profile_id(env.get("PARTIAL_TRUST_PROFILE_ID")),
            risk_log_path=env.get("PARTIAL_TRUST_RISK_LOG_PATH") or DEFAULT_RISK_LOG_PATH,
            policy_enabled=parse_optional_bool(env.get("LLM_POLICY_ENABLED")),
            mode=parse_mode(env.get(ENV_MODE)),
            explicit=frozenset(n for n in _CEILING_VARS if (env.get(n) or "").strip()),
        )

    def effective(
        self, policy_default: bool = False, *, mode_cap: tuple[Mode, str] | None = None
    ) -> EffectiveSettings:
        """The variables alone (the ``env`` provider): no flag is served."""
        return apply_ceiling(FlagValues(), self, policy_default=policy_default, mode_cap=mode_cap)


@dataclass(frozen=True, slots=True)
class FlagValues:
    """What a provider serves, already parsed with the runbook's rules; ``None``: not served
    (the flag is undefined, disabled, or has no default variant). ``profile_id`` ``""`` is a
    served "the policy's default profile"."""

    enabled: bool | None = None
    sample_rate: float | None = None
    timeout_ms: int | None = None
    profile_id: str | None = None
    mode: Mode | None = None
    review_enabled: bool | None = None


#: The keys of ``EffectiveSettings.limits`` (and of ``limits`` on /health, flags show, console).
LIMIT_FIELDS = ("enabled", "sample_rate", "timeout_ms", "profile_id", "policy_enabled", "mode")
FLAGS_UNAVAILABLE = "flags unavailable"


def _pick(
    name: str,
    flag_key: str,
    served: T | None,
    env: EnvDefaults,
    env_value: T,
    stricter: Callable[[T, T], T],
) -> tuple[T, str]:
    """(value, what decided it) for one setting."""
    is_set = name in env.explicit
    if served is None:  # not served: the variable, or the runbook's default when it is unset
        return env_value, f"env {name}" if is_set else "default"
    if not is_set:
        return served, f"flag {flag_key}"
    value = stricter(served, env_value)
    return value, f"env {name}" if value == env_value else f"flag {flag_key}"


def _env_wins(served: T, env_value: T) -> T:
    return env_value


@dataclass(frozen=True, slots=True)
class Ceilinged:
    """Each setting after the ceiling, before "off" zeroes them: (value, what decided it)."""

    enabled: tuple[bool, str]
    sample_rate: tuple[float, str]
    timeout_ms: tuple[int, str]
    profile_id: tuple[str | None, str]
    policy_enabled: tuple[bool, str]
    mode: tuple[Mode, str] = (DEFAULT_MODE, "default")
    mode_capped: bool = False


def ceilinged(
    flags: FlagValues,
    env: EnvDefaults,
    policy_default: bool = False,
    *,
    keys: FlagKeys | None = None,
    mode_cap: tuple[Mode, str] | None = None,
) -> Ceilinged:
    """The per-setting half of ``apply_ceiling`` (the flag console shows it row by row).
    ``keys``: the corridor's flag keys (named in ``limits``; default the shopping corridor's).
    ``mode_cap``: (the furthest mode, what caps it), e.g. ``(shadow, "risk class admin")``."""
    k = keys or _SHOPPING_KEYS
    enabled = _pick(ENV_ENABLED, k.enabled, flags.enabled, env, env.enabled, lambda f, e: f and e)
    if enabled[0] and flags.enabled is not None:  # "true" set never holds it on: the flag does
        enabled = (True, f"flag {k.enabled}")
    rate = _pick(ENV_SAMPLE_RATE, k.sample_rate, flags.sample_rate, env, env.sample_rate, min)
    timeout = _pick(ENV_TIMEOUT_MS, k.timeout_ms, flags.timeout_ms, env, env.timeout_ms, min)
    profile = _pick(ENV_PROFILE_ID, k.profile_id, flags.profile_id, env, env.profile_id, _env_wins)
    if env.policy_enabled is None:
        policy = (policy_default, "policy file")
    else:
        policy = (env.policy_enabled, f"env {ENV_POLICY_ENABLED}")
    mode = _pick(ENV_MODE, k.mode, flags.mode, env, env.mode, stricter_mode)
    capped = False
    if mode_cap is not None and stricter_mode(mode[0], mode_cap[0]) is not mode[0]:
        mode, capped = mode_cap, True
    profile_pair = (parse_profile_id(profile[0]), profile[1])
    return Ceilinged(enabled, rate, timeout, profile_pair, policy, mode, capped)


def apply_ceiling(
    flags: FlagValues,
    env: EnvDefaults,
    *,
    policy_default: bool = False,
    source: str = "env",
    flags_available: bool = True,
    keys: FlagKeys | None = None,
    mode_cap: tuple[Mode, str] | None = None,
) -> EffectiveSettings:
    """THE rule: set variables are ceilings, the stricter wins; unset ones leave the flags.

    ``enabled``: a set variable can only turn the corridor off (``true`` set does not force
    it on). ``sample_rate`` and ``timeout_ms``: the minimum (a set timeout of 0 or garbage is
    0, the corridor off). ``PARTIAL_TRUST_INTENT`` set to an intent off the allowlist: off.
    ``PARTIAL_TRUST_MODE``: the stricter of off < shadow < canary (``off``: the corridor off;
    garbage reads as ``off``). ``PARTIAL_TRUST_PROFILE_ID`` set: it wins (profiles have no
    order, so the operator's pinned profile is the conservative choice).
    ``LLM_POLICY_ENABLED`` has no flag: set, it beats the policy file's ``enabled`` (false:
    ``skipped/policy_disabled``, no LLM call).
    On equal values the variable is named, because it is what holds the value there.
    ``limits`` says what decided each setting: ``flag <key>``, ``env <VARIABLE>``,
    ``default`` (neither served nor set), ``policy file``, or, when the corridor is off, the
    first reason it is off (``flags unavailable`` first). ``keys`` are the corridor's flag
    keys (``partial_trust.corridors.flag_keys``); ``mode_cap`` its risk class's cap, applied
    after the ceiling (``limits["mode"]`` then names it, ``mode_capped`` is true).
    """
    c = ceilinged(flags, env, policy_default, keys=keys, mode_cap=mode_cap)
    (enabled, by_enabled), (timeout, by_timeout) = c.enabled, c.timeout_ms
    on, off_by = True, ""
    if not flags_available:
        on, off_by = False, FLAGS_UNAVAILABLE
    elif not enabled:
        on, off_by = False, by_enabled
    elif env.intent is None:
        on, off_by = False, f"env {ENV_INTENT}"
    elif timeout <= 0:
        on, off_by = False, by_timeout
    elif c.mode[0] is Mode.OFF:
        on, off_by = False, c.mode[1]
    decided = (by_enabled, c.sample_rate[1], by_timeout, c.profile_id[1]) if on else (off_by,) * 4
    return EffectiveSettings.build(
        enabled=on,
        intent=env.intent,
        sample_rate=c.sample_rate[0],
        timeout_ms=timeout,
        profile_id=c.profile_id[0],
        policy_enabled=c.policy_enabled[0],
        flags_available=flags_available,
        source=source,
        limits=(
            *zip(LIMIT_FIELDS, decided, strict=False),
            ("policy_enabled", c.policy_enabled[1]),
            ("mode", c.mode[1] if on else off_by),
        ),
        mode=c.mode[0],
        review_enabled=flags.review_enabled is True,
        mode_capped=c.mode_capped,
    )


class SettingsSource(Protocol):
    """Anything that can say, cheaply and without I/O, what the current settings are."""

    def current(self) -> EffectiveSettings: ...


class StaticSettings:
    """A fixed ``EffectiveSettings``: the ``env`` provider, and tests."""

    def __init__(self, settings: EffectiveSettings) -> None:
        self._settings = settings

    def current(self) -> EffectiveSettings:
        return self._settings
