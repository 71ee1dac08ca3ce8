"""Corridor settings with the rollout runbook's exact parsing rules.

Two layers. ``EnvDefaults`` is read once from the environment with the runbook's semantics;
flag providers (``flags/``) override it live. Either way, the engine reads one frozen
``EffectiveSettings`` value per request, so a flag change can never be half-applied to a
request that is already running.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

logger = logging.getLogger("partial_trust.config")

#: The only intents that may ever get a corridor. Hard-coded on purpose (ADR-004).
INTENT_ALLOWLIST: frozenset[str] = frozenset({"add_shopping_item"})

DEFAULT_INTENT = "add_shopping_item"
DEFAULT_SAMPLE_RATE = 0.01
DEFAULT_TIMEOUT_MS = 200
DEFAULT_RISK_LOG_PATH = "logs/partial_trust_risk.jsonl"
_TRUE = frozenset({"true", "1", "yes"})


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
        value = float(raw)  # type: ignore[arg-type]
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
    ) -> EffectiveSettings:
        """Apply the runbook's rule: a missing intent or a zero timeout disables the corridor."""
        on = enabled and intent is not None and timeout_ms > 0 and flags_available
        if not on:
            return cls(False, intent, 0.0, 0, None, policy_enabled, flags_available, source)
        return cls(True, intent, sample_rate, timeout_ms, profile_id, policy_enabled, True, source)


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

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> EnvDefaults:
        env = os.environ if environ is None else environ
        return cls(
            enabled=parse_bool(env.get("PARTIAL_TRUST_ENABLED")),
            intent=parse_intent(env.get("PARTIAL_TRUST_INTENT")),
            sample_rate=parse_sample_rate(env.get("PARTIAL_TRUST_SAMPLE_RATE")),
            timeout_ms=parse_timeout_ms(env.get("PARTIAL_TRUST_TIMEOUT_MS")),
            profile_id=parse_profile_id(env.get("PARTIAL_TRUST_PROFILE_ID")),
            risk_log_path=env.get("PARTIAL_TRUST_RISK_LOG_PATH") or DEFAULT_RISK_LOG_PATH,
            policy_enabled=parse_optional_bool(env.get("LLM_POLICY_ENABLED")),
        )

    def effective(self, policy_default: bool = False) -> EffectiveSettings:
        policy = self.policy_enabled if self.policy_enabled is not None else policy_default
        return EffectiveSettings.build(
            enabled=self.enabled,
            intent=self.intent,
            sample_rate=self.sample_rate,
            timeout_ms=self.timeout_ms,
            profile_id=self.profile_id,
            policy_enabled=policy,
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
