"""Turn five flag evaluations into one ``EffectiveSettings``, with the runbook's rules.

This runs when flags may have changed (a provider event or the refresh interval), never per
request: one evaluation costs ~12 µs and the whole not-sampled budget is 15 µs.

Rules, the same for every provider:
* a flag the provider does not serve (undefined, flagd ``DISABLED`` state, no
  ``defaultVariant``) → not served, so the environment decides (``config.apply_ceiling``);
  the environment's value is also the default passed in, so a provider that answers such a
  flag with the default instead of saying "not found" gives the same effective value;
* a value of the wrong type (``TYPE_MISMATCH``) → as if the runbook had read garbage: enable →
  false (fail closed), sample rate → the environment default, timeout → 0 (corridor off),
  profile → default profile, mode → ``off``. Numbers of the other numeric type (an int sample
  rate, a float timeout) are re-evaluated as that type and parsed, so ``7`` clamps to 1.0 like the
  environment variable would (the extra evaluation happens only for such a malformed value);
* the provider not ready or fatal → ``ProviderUnavailable``; any other error code
  (``TARGETING_KEY_MISSING``, ``INVALID_CONTEXT``, ``PARSE_ERROR``, ``GENERAL``) →
  ``ProviderError``, naming the flag and the code: the caller fails closed and shows it.
Then ``config.apply_ceiling``: environment variables that are set are ceilings.

Every evaluation carries ``context`` (``evaluation_context``): a stable per-corridor targeting
key and the attributes ``corridor`` and ``service``, nothing from a request, so providers
that require a targeting key (LaunchDarkly's answers ``TARGETING_KEY_MISSING`` without one)
serve the corridor.
"""

from __future__ import annotations

from typing import Any

from openfeature.client import OpenFeatureClient
from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import Reason

from partial_trust.config import (
    EffectiveSettings,
    EnvDefaults,
    FlagValues,
    apply_ceiling,
    parse_sample_rate,
    parse_timeout_ms,
)
from partial_trust.flags.flagfile import ENABLED, MODE, PROFILE_ID, SAMPLE_RATE, TIMEOUT_MS
from partial_trust.flags.flagmodel import REVIEW_ENABLED
from partial_trust.mode import Mode, parse_mode

_UNAVAILABLE = frozenset({ErrorCode.PROVIDER_NOT_READY, ErrorCode.PROVIDER_FATAL})
_MESSAGE_MAX = 200


class ProviderUnavailable(Exception):
    """The provider answered "not ready" or "fatal" while we evaluated."""


class ProviderError(Exception):
    """The provider answered an error code other than a type mismatch (the flag and code)."""


def evaluation_context(corridor: str, service: str) -> EvaluationContext:
    """The context of every evaluation: no raw data, the same for every request."""
    return EvaluationContext(
        targeting_key=f"partial-trust/{corridor}",
        attributes={"corridor": corridor, "service": service},
    )


class _Reader:
    """One evaluation pass: the client, the context and the error rules."""

    def __init__(self, client: OpenFeatureClient, context: EvaluationContext | None) -> None:
        self.client = client
        self.context = context

    def get(self, kind: str, key: str, default: Any) -> tuple[bool, object]:
        """(served, value); value ``_GARBAGE`` for a value not of the flag's type."""
        method = getattr(self.client, f"get_{kind}_details")
        details = method(key, default, evaluation_context=self.context)
        code = details.error_code
        if code in _UNAVAILABLE:
            raise ProviderUnavailable(f"{key}: {code.value}")
        if code == ErrorCode.FLAG_NOT_FOUND or details.reason == Reason.DISABLED:
            return False, None
        if code == ErrorCode.TYPE_MISMATCH:
            return True, _GARBAGE
        if code is not None:
            message = (details.error_message or "").strip()[:_MESSAGE_MAX]
            raise ProviderError(f"{key}: {code.value}" + (f" ({message})" if message else ""))
        if (
            details.reason == Reason.DEFAULT
            and details.variant is None
            and details.value == default
        ):
            return False, None  # flagd without a defaultVariant: nothing served
        return True, details.value


_GARBAGE = object()


def read_flags(
    client: OpenFeatureClient, defaults: EnvDefaults, context: EvaluationContext | None = None
) -> FlagValues:
    """The five flags as served, parsed with the runbook's rules (``None``: not served)."""
    r = _Reader(client, context)
    served, value = r.get("boolean", ENABLED, defaults.enabled)
    enabled = (value is True) if served else None

    served, rate = r.get("float", SAMPLE_RATE, float(defaults.sample_rate))
    if rate is _GARBAGE:  # an int (7) fails a float flag's type check in some providers
        served, rate = r.get("integer", SAMPLE_RATE, 0)
    sample_rate = None
    if served:
        raw = None if rate is _GARBAGE else rate
        sample_rate = parse_sample_rate(raw, default=defaults.sample_rate)

    served, timeout = r.get("integer", TIMEOUT_MS, defaults.timeout_ms)
    if timeout is _GARBAGE:  # 250.0 is a whole number of ms; "abc" is not
        served, timeout = r.get("float", TIMEOUT_MS, 0.0)
    timeout_ms = None
    if served:
        timeout_ms = 0 if timeout is _GARBAGE else parse_timeout_ms(timeout, defaults.timeout_ms)

    served, profile = r.get("string", PROFILE_ID, defaults.profile_id or "")
    profile_id = None
    if served:
        profile_id = profile if isinstance(profile, str) else ""

    served, raw_mode = r.get("string", MODE, defaults.mode.value)
    mode = None
    if served:  # garbage or a value of the wrong type: the strictest reading, off
        mode = parse_mode(raw_mode) if isinstance(raw_mode, str) and raw_mode.strip() else Mode.OFF

    try:  # an optional flag: its own error turns review off, never the corridor
        served, review = r.get("boolean", REVIEW_ENABLED, False)
    except ProviderError:
        served, review = True, False
    review_enabled = (review is True) if served else None  # garbage: off, like enable
    return FlagValues(enabled, sample_rate, timeout_ms, profile_id, mode, review_enabled)


def evaluate(
    client: OpenFeatureClient,
    defaults: EnvDefaults,
    policy_default: bool,
    source: str,
    context: EvaluationContext | None = None,
) -> EffectiveSettings:
    """Evaluate the five flags once, apply the environment's ceilings, freeze the result."""
    return apply_ceiling(
        read_flags(client, defaults, context),
        defaults,
        policy_default=policy_default,
        source=source,
    )


def unavailable(defaults: EnvDefaults, policy_default: bool, source: str) -> EffectiveSettings:
    """Fail closed: the corridor off, with ``flags_available=False`` for the engine's reason."""
    return apply_ceiling(
        FlagValues(), defaults, policy_default=policy_default, source=source, flags_available=False
    )
