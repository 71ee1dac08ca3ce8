"""The advisory review store's write side: which cases the engine hands over, and to what.

Off by default, and twice gated: a deployment setting (``PARTIAL_TRUST_REVIEW_STORE`` and
``PARTIAL_TRUST_REVIEW_KEY``, read once from the environment mapping the stack is built from)
says a store exists (``ReviewSettings.from_env``, from the entry point's ``Environment``),
and the per-corridor flag ``partial-trust-review-enabled`` (read live
with the other flags, ``EffectiveSettings.review_enabled``) says this corridor may use it.

The engine builds a ``ReviewCase`` from the same ``Outcome`` it emits plus the raw command,
baseline decision and candidate, which it holds only in memory for that call; the case goes
to a ``ReviewSink`` and to nothing else. The risk log, metrics, spans and logs keep seeing the
``Outcome`` alone, so raw text can reach the encrypted store and only the store.

Which cases: a shadow or canary disagreement (``agreement`` false), and, when configured,
a fallback (the candidate was refused); of those a stable share, chosen by the command key
(a keyed hash already), so one command is kept in every process or in none.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from partial_trust.environment import Environment
from partial_trust.outcome import Outcome, Status

ENV_STORE: Final = "PARTIAL_TRUST_REVIEW_STORE"
ENV_KEY: Final = "PARTIAL_TRUST_REVIEW_KEY"
ENV_SHARE: Final = "PARTIAL_TRUST_REVIEW_SHARE"
ENV_FALLBACKS: Final = "PARTIAL_TRUST_REVIEW_FALLBACKS"
ENV_RETENTION_DAYS: Final = "PARTIAL_TRUST_REVIEW_RETENTION_DAYS"
ENV_MAX_CASES: Final = "PARTIAL_TRUST_REVIEW_MAX_CASES"
ENV_MAX_MB: Final = "PARTIAL_TRUST_REVIEW_MAX_MB"

DEFAULT_RETENTION_DAYS: Final = 14.0
DEFAULT_MAX_CASES: Final = 10_000
DEFAULT_MAX_MB: Final = 64.0
_TRUE = frozenset({"true", "1", "yes"})


@dataclass(frozen=True, slots=True)
class ReviewCase:
    """One disagreement as people will judge it. Raw data: it goes to the store only."""

    corridor: str
    mode: str
    status: str
    reason: str
    command_key: str | None
    command: Any  # the parsed command (a pydantic model for the shopping corridor)
    baseline: dict[str, Any]
    candidate: object  # the LLM's raw candidate object
    created: float = field(default_factory=time.time)


class ReviewSink(Protocol):
    """Where the engine hands cases. ``submit`` is on the request path: O(1), never blocks
    or raises; ``False`` means not kept (and counted)."""

    def wants(self, outcome: Outcome) -> bool: ...

    def submit(self, case: ReviewCase) -> bool: ...


def _number(env: Environment, name: str, default: float) -> float:
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number, got {raw!r}") from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {raw!r}")
    return value


@dataclass(frozen=True, slots=True)
class ReviewSettings:
    """The deployment's review store settings. ``key`` may be empty: the store then stays
    off with a reason on ``/health`` (never a failed start, never a failed request)."""

    path: str
    key: str
    share: float = 1.0
    include_fallbacks: bool = False
    retention_days: float = DEFAULT_RETENTION_DAYS
    max_cases: int = DEFAULT_MAX_CASES
    max_bytes: int = int(DEFAULT_MAX_MB * 1024 * 1024)

    def __post_init__(self) -> None:
        if not self.path:
            raise ValueError("the review store needs a path")
        if not 0.0 <= self.share <= 1.0:
            raise ValueError(f"{ENV_SHARE} must be within [0, 1], got {self.share}")
        if self.retention_days <= 0:
            raise ValueError(f"{ENV_RETENTION_DAYS} must be > 0, got {self.retention_days}")
        if self.max_cases < 1 or self.max_bytes < 64 * 1024:
            raise ValueError("the review store's caps must allow at least 1 case and 64 KiB")

    @property
    def retention_s(self) -> float:
        return self.retention_days * 86_400.0

    @classmethod
    def from_env(cls, env: Environment) -> ReviewSettings | None:
        """``None`` (no store at all) unless ``PARTIAL_TRUST_REVIEW_STORE`` is set."""
        path = (env.get(ENV_STORE) or "").strip()
        if not path:
            return None
        return cls(
            path=path,
            key=(env.get(ENV_KEY) or "").strip(),
            share=_number(env, ENV_SHARE, 1.0),
            include_fallbacks=(env.get(ENV_FALLBACKS) or "").strip().lower() in _TRUE,
            retention_days=_number(env, ENV_RETENTION_DAYS, DEFAULT_RETENTION_DAYS),
            max_cases=int(_number(env, ENV_MAX_CASES, DEFAULT_MAX_CASES)),
            max_bytes=int(_number(env, ENV_MAX_MB, DEFAULT_MAX_MB) * 1024 * 1024),
        )


def in_share(command_key: str | None, share: float) -> bool:
    """Stable choice by the command key (hex of a keyed hash): same answer in every process."""
    if share >= 1.0:
        return True
    if share <= 0.0 or not command_key:
        return False
    try:
        point = int(command_key[:13], 16) / float(16**13)
    except ValueError:
        return False
    return point < share


def wanted(outcome: Outcome, settings: ReviewSettings) -> bool:
    """A disagreement (or a configured fallback) inside the share."""
    if outcome.agreement is False:
        pass
    elif not (settings.include_fallbacks and outcome.status is Status.FALLBACK_DETERMINISTIC):
        return False
    return in_share(outcome.command_key, settings.share)


def hand_over(
    sink: ReviewSink, outcome: Outcome, command: Any, baseline: dict[str, Any], candidate: object
) -> None:
    """Give ``sink`` the case of ``outcome`` if it wants it (the engine's one call)."""
    if sink.wants(outcome):
        sink.submit(
            ReviewCase(
                corridor=outcome.corridor,
                mode=outcome.mode.value,
                status=outcome.status.value,
                reason=outcome.reason.value,
                command_key=outcome.command_key,
                command=command,
                baseline=baseline,
                candidate=candidate,
            )
        )
