"""The one value that describes what the corridor did with a request.

Every sink (risk log, Prometheus, OpenTelemetry) reads the same ``Outcome``, so the three
can never disagree. Statuses and reasons are closed enums: they become metric labels and
span attributes, so nothing from the request may ever flow into them.
"""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field

from partial_trust.mode import Mode


class Status(enum.StrEnum):
    ACCEPTED_LLM = "accepted_llm"
    FALLBACK_DETERMINISTIC = "fallback_deterministic"
    ERROR = "error"
    SKIPPED = "skipped"


class Reason(enum.StrEnum):
    # accepted_llm
    ACCEPTED = "accepted"
    # skipped: the LLM was not asked
    CORRIDOR_MISMATCH = "corridor_mismatch"
    CAPABILITY_MISMATCH = "capability_mismatch"
    POLICY_DISABLED = "policy_disabled"
    FLAGS_UNAVAILABLE = "flags_unavailable"
    NOT_SAMPLED = "not_sampled"
    INVALID_COMMAND = "invalid_command"
    BASELINE_ERROR = "baseline_error"
    # error: the LLM was asked and gave no usable candidate
    LLM_TIMEOUT = "llm_timeout"
    LLM_HTTP_ERROR = "llm_http_error"
    LLM_INVALID_RESPONSE = "llm_invalid_response"
    LLM_UNAVAILABLE = "llm_unavailable"
    CIRCUIT_OPEN = "circuit_open"
    INTERNAL_ERROR = "internal_error"
    # fallback_deterministic: a candidate was parsed and an acceptance rule refused it
    INTENT_MISMATCH = "intent_mismatch"
    SCHEMA_VIOLATION = "schema_violation"
    EMPTY_ITEMS = "empty_items"
    TOO_MANY_ITEMS = "too_many_items"
    INVALID_ITEM_NAME = "invalid_item_name"
    LIST_ID_NOT_ALLOWED = "list_id_not_allowed"
    LOW_CONFIDENCE = "low_confidence"
    ITEM_NOT_GROUNDED = "item_not_grounded"


SKIP_REASONS: frozenset[Reason] = frozenset(
    {
        Reason.CORRIDOR_MISMATCH,
        Reason.CAPABILITY_MISMATCH,
        Reason.POLICY_DISABLED,
        Reason.FLAGS_UNAVAILABLE,
        Reason.NOT_SAMPLED,
        Reason.INVALID_COMMAND,
        Reason.BASELINE_ERROR,
    }
)
ERROR_REASONS: frozenset[Reason] = frozenset(
    {
        Reason.LLM_TIMEOUT,
        Reason.LLM_HTTP_ERROR,
        Reason.LLM_INVALID_RESPONSE,
        Reason.LLM_UNAVAILABLE,
        Reason.CIRCUIT_OPEN,
        Reason.INTERNAL_ERROR,
    }
)
FALLBACK_REASONS: frozenset[Reason] = frozenset(
    {
        Reason.INTENT_MISMATCH,
        Reason.SCHEMA_VIOLATION,
        Reason.EMPTY_ITEMS,
        Reason.TOO_MANY_ITEMS,
        Reason.INVALID_ITEM_NAME,
        Reason.LIST_ID_NOT_ALLOWED,
        Reason.LOW_CONFIDENCE,
        Reason.ITEM_NOT_GROUNDED,
    }
)

#: Which reasons each status may carry; ``Outcome`` refuses any other pairing.
REASONS_BY_STATUS: dict[Status, frozenset[Reason]] = {
    Status.ACCEPTED_LLM: frozenset({Reason.ACCEPTED}),
    Status.SKIPPED: SKIP_REASONS,
    Status.ERROR: ERROR_REASONS,
    Status.FALLBACK_DETERMINISTIC: FALLBACK_REASONS,
}

#: Every (status, reason) pair the corridor can produce; metrics pre-initialise these.
STATUS_REASONS: tuple[tuple[Status, Reason], ...] = tuple(
    (status, reason)
    for status, allowed in REASONS_BY_STATUS.items()
    for reason in Reason
    if reason in allowed
)

#: Statuses for which an LLM call was due: the analyzer's "sampled" records.
SAMPLED_STATUSES: frozenset[Status] = frozenset(
    {Status.ACCEPTED_LLM, Status.FALLBACK_DETERMINISTIC, Status.ERROR}
)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to one corridor request. Holds no raw text, names or ids.

    ``command_key`` is a keyed hash of the command id (see ``sampling.command_key``);
    the counts and match flags are summaries, never the items themselves.
    """

    corridor: str
    status: Status
    reason: Reason
    sampled: bool
    sample_rate: float
    profile_id: str | None = None
    command_key: str | None = None
    latency_ms: float | None = None
    baseline_latency_ms: float | None = None
    intent_match: bool | None = None
    entity_key_match: bool | None = None
    confidence: float | None = None
    items_baseline: int | None = None
    items_llm: int | None = None
    timestamp: float = field(default_factory=time.time)
    #: ``canary`` (an accepted candidate was served) or ``shadow`` (nothing was served: the
    #: status says what canary would have done); never ``off`` (nothing is recorded then).
    mode: Mode = Mode.CANARY
    #: The candidate's decision equals the baseline's (intent, list id, items as a multiset of
    #: normalised name and quantity); ``None`` when no candidate was parsed.
    agreement: bool | None = None
    #: The corridor's risk class held the mode below what the flags asked (``admin`` asked
    #: for canary runs in shadow): on the span (``partial_trust.mode_capped``) and /health.
    mode_capped: bool = False

    def __post_init__(self) -> None:
        allowed = REASONS_BY_STATUS[self.status]
        if self.reason not in allowed:
            raise ValueError(f"reason {self.reason.value!r} is not valid for {self.status.value!r}")
        if self.mode is Mode.OFF:
            raise ValueError("an outcome's mode is shadow or canary")

    @property
    def logged(self) -> bool:
        """``skipped/not_sampled`` is 90-99% of traffic: counted in metrics, not written."""
        return self.reason is not Reason.NOT_SAMPLED

    @property
    def llm_called(self) -> bool:
        return self.status in SAMPLED_STATUSES and self.reason is not Reason.CIRCUIT_OPEN
