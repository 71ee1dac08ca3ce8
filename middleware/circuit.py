"""A small circuit breaker in front of the LLM candidate call.

Why: when the LLM endpoint is down or slow, every sampled request would still spend its whole
timeout budget waiting for it and then fall back anyway. After ``failure_threshold``
consecutive failures the breaker opens and the corridor answers ``error/circuit_open`` at
once (the baseline is served, nothing waits); after ``cooldown_s`` exactly one trial call is
let through to find out whether the endpoint is back.

It lives on the event loop and is only touched from there, so it needs no locks, and it does
no I/O: ``on_change`` is how logging and the state gauge learn about transitions.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Final, Literal

State = Literal["closed", "open", "half_open"]

CLOSED: Final = "closed"
OPEN: Final = "open"
HALF_OPEN: Final = "half_open"

#: Numeric state for a Prometheus gauge (0 closed, 1 open, 2 half open).
STATE_CODES: Final[dict[State, int]] = {CLOSED: 0, OPEN: 1, HALF_OPEN: 2}


class CircuitBreaker:
    """Consecutive-failure breaker: closed → open → half_open → closed (or open again).

    Callers ask ``allow()`` before the call and report it with ``record_success()`` or
    ``record_failure()``. Results reported while the breaker is open are ignored: they come
    from calls started before it opened and must not extend the cooldown.
    """

    def __init__(
        self,
        failure_threshold: int = 5,
        cooldown_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        *,
        on_change: Callable[[str], None] | None = None,
    ) -> None:
        if isinstance(failure_threshold, bool) or not isinstance(failure_threshold, int):
            raise ValueError(f"failure_threshold must be an int, got {failure_threshold!r}")
        if failure_threshold < 1:
            raise ValueError(f"failure_threshold must be >= 1, got {failure_threshold}")
        if not (cooldown_s > 0 and math.isfinite(cooldown_s)):
            raise ValueError(f"cooldown_s must be a finite number > 0, got {cooldown_s!r}")
        self._threshold = failure_threshold
        self._cooldown_s = float(cooldown_s)
        self._clock = clock
        self._on_change = on_change
        self._state: State = CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._trial_started_at: float | None = None

    @property
    def state(self) -> State:
        return self._state

    @property
    def state_code(self) -> int:
        return STATE_CODES[self._state]

    @property
    def consecutive_failures(self) -> int:
        return self._failures

    def allow(self) -> bool:
        """May a call go out now? In half_open, True for exactly one caller at a time."""
        if self._state == CLOSED:
            return True
        now = self._clock()
        if self._state == OPEN:
            if now - self._opened_at < self._cooldown_s:
                return False
            self._set_state(HALF_OPEN)
            self._trial_started_at = now
            return True
        # half_open: one trial in flight at a time. A trial whose result never came back (its
        # task was cancelled before reporting) is abandoned after a cooldown, so the breaker
        # cannot stay stuck in half_open forever.
        if self._trial_started_at is not None and now - self._trial_started_at < self._cooldown_s:
            return False
        self._trial_started_at = now
        return True

    def record_success(self) -> None:
        if self._state == OPEN:
            return
        self._failures = 0
        if self._state == HALF_OPEN:
            self._trial_started_at = None
            self._set_state(CLOSED)

    def record_failure(self) -> None:
        if self._state == OPEN:
            return
        self._failures += 1
        if self._state == HALF_OPEN or self._failures >= self._threshold:
            self._trial_started_at = None
            self._opened_at = self._clock()
            self._set_state(OPEN)

    def _set_state(self, new: State) -> None:
        if new == self._state:
            return
        self._state = new
        if new == CLOSED:
            self._failures = 0
        if self._on_change is not None:
            self._on_change(new)
