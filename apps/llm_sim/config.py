"""What the LLM double does to each request: its fault mix, latency and knobs.

Design: every request gets exactly ONE fault mode (or ``none``). The per-mode rates are
disjoint shares of the requests, so they must add up to at most 1; one uniform draw per
request picks the mode by walking the cumulative shares in ``Mode`` order. That keeps the
observed share of each mode equal to its configured rate (no masking between modes), makes a
seeded run reproducible whatever the other knobs are, and lets ``force`` pin one mode for all
requests. Latency is separate: a fixed delay plus uniform jitter before every answer.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Mode(StrEnum):
    """One request's fault mode. Order matters: it is the order of the cumulative shares."""

    NONE = "none"
    ERROR = "error"
    HANG = "hang"
    DRIP = "drip"
    MALFORMED = "malformed"
    WRONG_INTENT = "wrong_intent"
    EXTRA_FIELDS = "extra_fields"
    FOREIGN_LIST = "foreign_list"
    LOW_CONFIDENCE = "low_confidence"
    NO_CONFIDENCE = "no_confidence"
    OVERSIZED = "oversized"
    INVALID_UTF8 = "invalid_utf8"
    INJECTION = "injection"
    EMPTY_ITEMS = "empty_items"
    MANY_ITEMS = "many_items"
    #: Last, so adding it left every other mode's seeded draw where it was.
    DISAGREE = "disagree"


#: Every fault mode (all but ``none``), in draw order.
FAULT_MODES: tuple[Mode, ...] = tuple(m for m in Mode if m is not Mode.NONE)

Rate = Annotated[float, Field(ge=0.0, le=1.0)]
Unit = Annotated[float, Field(ge=0.0, le=1.0)]
TEN_MIB = 10 * 1024 * 1024


class SimConfig(BaseModel):
    """The double's live configuration; ``POST /sim/config`` merges a partial one into it."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    seed: int = 0
    force: Mode | None = None
    latency_ms: Annotated[float, Field(ge=0.0, le=600_000.0)] = 0.0
    latency_jitter_ms: Annotated[float, Field(ge=0.0, le=600_000.0)] = 0.0
    error_rate: Rate = 0.0
    hang_rate: Rate = 0.0
    drip_rate: Rate = 0.0
    malformed_rate: Rate = 0.0
    wrong_intent_rate: Rate = 0.0
    extra_fields_rate: Rate = 0.0
    foreign_list_rate: Rate = 0.0
    low_confidence_rate: Rate = 0.0
    no_confidence_rate: Rate = 0.0
    oversized_rate: Rate = 0.0
    invalid_utf8_rate: Rate = 0.0
    injection_rate: Rate = 0.0
    empty_items_rate: Rate = 0.0
    many_items_rate: Rate = 0.0
    disagree_rate: Rate = 0.0
    confidence: Unit = 0.9
    low_confidence: Unit = 0.2
    drip_interval_ms: Annotated[float, Field(gt=0.0, le=60_000.0)] = 50.0
    drip_chunk_bytes: Annotated[int, Field(ge=1, le=1_000_000)] = 1
    hang_max_s: Annotated[float, Field(gt=0.0, le=86_400.0)] = 600.0
    oversized_bytes: Annotated[int, Field(ge=1, le=1_000_000_000)] = TEN_MIB

    @model_validator(mode="after")
    def _shares_fit(self) -> Self:
        total = sum(self.rate(mode) for mode in FAULT_MODES)
        if total > 1.0 + 1e-9:
            raise ValueError(f"fault rates are disjoint shares and must sum to <= 1, got {total}")
        return self

    def rate(self, mode: Mode) -> float:
        """The configured share of requests that get ``mode``."""
        value: float = getattr(self, f"{mode.value}_rate")
        return value

    def pick(self, draw: float) -> Mode:
        """The mode for one request, given a uniform draw in [0, 1)."""
        if self.force is not None:
            return self.force
        edge = 0.0
        for mode in FAULT_MODES:
            edge += self.rate(mode)
            if draw < edge:
                return mode
        return Mode.NONE
