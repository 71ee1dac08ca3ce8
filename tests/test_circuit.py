"""Every transition of the circuit breaker, driven by a fake clock (no sleeps)."""

from __future__ import annotations

import math

import pytest

from partial_trust.middleware.circuit import CircuitBreaker


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def changes() -> list[str]:
    return []


@pytest.fixture
def breaker(clock: FakeClock, changes: list[str]) -> CircuitBreaker:
    return CircuitBreaker(
        failure_threshold=3, cooldown_s=10.0, clock=clock, on_change=changes.append
    )


def state(breaker: CircuitBreaker) -> str:
    """Read through a plain ``str`` so mypy does not narrow the Literal across transitions."""
    return breaker.state


def trip(breaker: CircuitBreaker) -> None:
    for _ in range(3):
        assert breaker.allow()
        breaker.record_failure()


def test_starts_closed_and_allows(breaker: CircuitBreaker) -> None:
    assert state(breaker) == "closed"
    assert breaker.state_code == 0
    assert all(breaker.allow() for _ in range(100))


def test_opens_at_threshold_of_consecutive_failures(
    breaker: CircuitBreaker, changes: list[str]
) -> None:
    breaker.record_failure()
    breaker.record_failure()
    assert state(breaker) == "closed"
    assert breaker.consecutive_failures == 2
    breaker.record_failure()
    assert state(breaker) == "open"
    assert breaker.state_code == 1
    assert changes == ["open"]
    assert not breaker.allow()


def test_success_resets_the_consecutive_count(breaker: CircuitBreaker) -> None:
    breaker.record_failure()
    breaker.record_failure()
    breaker.record_success()
    assert breaker.consecutive_failures == 0
    breaker.record_failure()
    breaker.record_failure()
    assert state(breaker) == "closed"


def test_threshold_one_opens_on_first_failure(clock: FakeClock) -> None:
    breaker = CircuitBreaker(failure_threshold=1, cooldown_s=1.0, clock=clock)
    breaker.record_failure()
    assert state(breaker) == "open"


def test_open_refuses_until_cooldown_then_half_open_allows_one_trial(
    breaker: CircuitBreaker, clock: FakeClock, changes: list[str]
) -> None:
    trip(breaker)
    clock.now += 9.999
    assert not breaker.allow()
    assert state(breaker) == "open"
    clock.now += 0.001
    assert breaker.allow()  # the one trial
    assert state(breaker) == "half_open"
    assert breaker.state_code == 2
    assert changes == ["open", "half_open"]
    # While the trial is in flight nobody else gets through.
    assert not breaker.allow()
    assert not breaker.allow()


def test_successful_trial_closes(
    breaker: CircuitBreaker, clock: FakeClock, changes: list[str]
) -> None:
    trip(breaker)
    clock.now += 10
    assert breaker.allow()
    breaker.record_success()
    assert state(breaker) == "closed"
    assert breaker.consecutive_failures == 0
    assert changes == ["open", "half_open", "closed"]
    assert breaker.allow()
    # A fresh count: it takes the full threshold to open again.
    breaker.record_failure()
    breaker.record_failure()
    assert state(breaker) == "closed"


def test_failed_trial_reopens_with_a_new_cooldown(
    breaker: CircuitBreaker, clock: FakeClock, changes: list[str]
) -> None:
    trip(breaker)
    clock.now += 10
    assert breaker.allow()
    clock.now += 2  # the trial takes a while, then fails
    breaker.record_failure()
    assert state(breaker) == "open"
    assert changes == ["open", "half_open", "open"]
    clock.now += 9.9  # the new cooldown runs from the failed trial, not the first opening
    assert not breaker.allow()
    clock.now += 0.1
    assert breaker.allow()
    assert state(breaker) == "half_open"


def test_results_reported_while_open_are_ignored(
    breaker: CircuitBreaker, clock: FakeClock, changes: list[str]
) -> None:
    trip(breaker)
    clock.now += 5
    breaker.record_failure()  # a late call started before the breaker opened
    breaker.record_success()
    assert state(breaker) == "open"
    clock.now += 5  # cooldown counted from the opening, not extended by the late failure
    assert breaker.allow()
    assert changes == ["open", "half_open"]


def test_abandoned_trial_is_replaced_after_a_cooldown(
    breaker: CircuitBreaker, clock: FakeClock
) -> None:
    trip(breaker)
    clock.now += 10
    assert breaker.allow()  # this trial's task is cancelled and never reports
    clock.now += 9
    assert not breaker.allow()
    clock.now += 1
    assert breaker.allow()  # a new trial
    assert not breaker.allow()
    breaker.record_success()
    assert state(breaker) == "closed"


def test_on_change_is_optional(clock: FakeClock) -> None:
    breaker = CircuitBreaker(failure_threshold=1, cooldown_s=1.0, clock=clock)
    breaker.record_failure()
    clock.now += 1
    assert breaker.allow()
    breaker.record_success()
    assert state(breaker) == "closed"


def test_defaults() -> None:
    breaker = CircuitBreaker()
    for _ in range(4):
        breaker.record_failure()
    assert state(breaker) == "closed"
    breaker.record_failure()
    assert state(breaker) == "open"
    assert not breaker.allow()  # 30 s cooldown on the real monotonic clock


@pytest.mark.parametrize("threshold", [0, -1, True, 2.5])
def test_rejects_bad_threshold(threshold: object) -> None:
    with pytest.raises(ValueError, match="failure_threshold"):
        CircuitBreaker(failure_threshold=threshold)  # type: ignore[arg-type]  # a wrong type on purpose


@pytest.mark.parametrize("cooldown", [0, -1.0, math.nan, math.inf])
def test_rejects_bad_cooldown(cooldown: float) -> None:
    with pytest.raises(ValueError, match="cooldown_s"):
        CircuitBreaker(cooldown_s=cooldown)
