"""Which outcomes the review store keeps, and what a full store or a hostile candidate does."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from partial_trust.apps.review.store import ReviewReader
from partial_trust.middleware.review import ReviewCase, in_share, wanted
from partial_trust.middleware.sampling import CommandKeyer
from partial_trust.mode import Mode
from partial_trust.outcome import Outcome, Reason, Status
from tests.review_helpers import canary_command, flush, review_settings, started


def outcome(status: Status, reason: Reason, agreement: bool | None, key: str) -> Outcome:
    return Outcome(
        corridor="add_shopping_item", status=status, reason=reason, sampled=True,
        sample_rate=1.0, command_key=key, agreement=agreement, mode=Mode.SHADOW,
    )  # fmt: skip


KEYS = [CommandKeyer(b"k")(f"c-{i}") for i in range(2000)]  # real command keys


def test_disagreements_are_kept_agreements_never(tmp_path: Path) -> None:
    s = review_settings(tmp_path / "r.db")
    assert wanted(outcome(Status.ACCEPTED_LLM, Reason.ACCEPTED, False, KEYS[0]), s)
    assert not wanted(outcome(Status.ACCEPTED_LLM, Reason.ACCEPTED, True, KEYS[0]), s)
    assert not wanted(outcome(Status.ERROR, Reason.LLM_TIMEOUT, None, KEYS[0]), s)
    fallback = outcome(Status.FALLBACK_DETERMINISTIC, Reason.LOW_CONFIDENCE, None, KEYS[0])
    assert not wanted(fallback, s)
    assert wanted(fallback, review_settings(tmp_path / "r.db", include_fallbacks=True))


def test_the_share_is_stable_and_monotonic() -> None:
    tenth = {k for k in KEYS if in_share(k, 0.1)}
    half = {k for k in KEYS if in_share(k, 0.5)}
    assert tenth < half and 0.05 < len(tenth) / len(KEYS) < 0.15
    assert not any(in_share(k, 0.0) for k in KEYS) and all(in_share(k, 1.0) for k in KEYS)
    assert not in_share(None, 0.5) and not in_share("not-hex!", 0.5)


def _case(candidate: object) -> ReviewCase:
    return ReviewCase(
        corridor="add_shopping_item", mode="shadow", status="accepted_llm", reason="accepted",
        command_key="00", command=canary_command(), baseline={}, candidate=candidate,
        created=time.time(),
    )  # fmt: skip


def test_a_full_store_drops_and_counts(tmp_path: Path) -> None:
    writer = started(review_settings(tmp_path / "r.db", max_cases=3))
    for _ in range(5):
        assert writer.submit(_case({"x": 1}))
    flush(writer)
    status = writer.status()
    assert status["kept"] == 3 and status["dropped_full"] == 2 and status["active"] is True


@pytest.mark.parametrize("candidate", [float("nan"), {"a": {1, 2}}, "\ud800", b"\xff"])
def test_hostile_candidates_never_stop_the_writer(tmp_path: Path, candidate: object) -> None:
    writer = started(review_settings(tmp_path / "r.db"))
    writer.submit(_case(candidate))
    writer.submit(_case({"ok": True}))
    flush(writer)
    assert writer.status()["active"] is True
    with ReviewReader(review_settings(tmp_path / "r.db")) as reader:
        assert reader.progress()["total"] >= 1
