"""Privacy of the advisory review store: raw data reaches the encrypted store and only it.

Canary strings (an item name, a command id, a user id) go through the real in-process
corridor (engine, risk log thread, metrics registry, spans, logging) with the LLM disagreeing.
With the store off nothing is kept; with it on the canaries come back out of the store with
the key, and appear nowhere else: not in the risk log, metric labels, spans or log records,
and not in clear text in any file of the store's directory (store, WAL, shared memory).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest
import respx

from partial_trust.apps.review.store import ReviewReader
from partial_trust.middleware.review import ReviewCase
from partial_trust.middleware.review_store import ReviewStoreError
from partial_trust.mode import Mode
from tests.corridor_harness import LLM_URL, completion, harness
from tests.corridor_harness import settings as corridor_settings
from tests.review_helpers import (
    CANARY_ITEM,
    canary_command,
    disagreeing_candidate,
    disk_bytes,
    flush,
    leaks,
    review_settings,
    started,
)
from tests.support.otel import install_span_exporter
from tests.support.sinks import span_strings

pytestmark = pytest.mark.anyio
_install_tracing_once = install_span_exporter


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record) + repr(record.args) + repr(record.__dict__))


async def _run_disagreement(tmp_path: Path, *, store_on: bool, flag_on: bool) -> dict[str, str]:
    """One disagreeing canary request; returns what every sink but the store received."""
    install_span_exporter().clear()
    collect = _Collect()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(collect)
    root.setLevel(logging.DEBUG)
    store_dir = tmp_path / "store"
    writer = started(review_settings(store_dir / "review.db")) if store_on else None
    try:
        initial = corridor_settings(mode=Mode.SHADOW, review_enabled=flag_on)
        async with harness(tmp_path, initial) as h:
            h.engine.review = writer
            with respx.mock(assert_all_called=True) as mock:
                mock.post(f"{LLM_URL}/chat/completions").mock(
                    return_value=completion(disagreeing_candidate())
                )
                await h.engine.shadow.start()
                response = await h.post(canary_command())
                await h.engine.shadow.join()
                await h.engine.shadow.stop()
            assert response.status_code == 200
            lines = h.lines()
            assert [line["agreement"] for line in lines] == [False]
            labels = [
                str(v)
                for family in h.registry.collect()
                for sample in family.samples
                for v in sample.labels.values()
            ]
    finally:
        root.removeHandler(collect)
        root.setLevel(old_level)
        if writer is not None:
            flush(writer)
    return {
        "risk log": repr(lines),
        "metrics": " ".join(labels),
        "spans": " ".join(span_strings()),
        "logs": "\n".join(collect.lines),
    }


async def test_store_off_keeps_nothing(tmp_path: Path) -> None:
    """Configured but the corridor's flag off: the file holds no case."""
    seen = await _run_disagreement(tmp_path, store_on=True, flag_on=False)
    with ReviewReader(review_settings(tmp_path / "store" / "review.db")) as reader:
        assert reader.progress() == {"reviewed": 0, "total": 0}
    assert all(not leaks(text) for text in seen.values())


async def test_store_not_configured_keeps_nothing(tmp_path: Path) -> None:
    await _run_disagreement(tmp_path, store_on=False, flag_on=True)
    assert not (tmp_path / "store").exists()


async def test_canaries_reach_the_store_only(tmp_path: Path) -> None:
    seen = await _run_disagreement(tmp_path, store_on=True, flag_on=True)
    for sink, text in seen.items():
        assert not leaks(text), f"canary in the {sink}"
    store_dir = tmp_path / "store"
    assert not leaks(disk_bytes(store_dir).decode("latin-1")), "canary in clear text on disk"
    with ReviewReader(review_settings(store_dir / "review.db")) as reader:
        case = reader.next_case()
        assert case is not None and case.mode == "shadow" and case.status == "accepted_llm"
        assert case.text is not None and CANARY_ITEM in case.text
        assert len(case.candidate["job"]["payload"]["items"]) == 1
        assert len(case.baseline["job"]["payload"]["items"]) == 2
        assert reader.progress() == {"reviewed": 0, "total": 1}


def _case(created: float) -> ReviewCase:
    return ReviewCase(
        corridor="add_shopping_item", mode="shadow", status="accepted_llm", reason="accepted",
        command_key="ab" * 8, command=canary_command(), baseline={"intent": "x"},
        candidate=disagreeing_candidate(), created=created,
    )  # fmt: skip


def test_expired_cases_are_gone(tmp_path: Path) -> None:
    path = tmp_path / "review.db"
    writer = started(review_settings(path, retention_days=14))
    now = time.time()
    assert writer.submit(_case(now - 15 * 86_400))
    assert writer.submit(_case(now - 13 * 86_400))
    flush(writer)
    with ReviewReader(review_settings(path, retention_days=14)) as reader:  # purges on open
        assert reader.progress()["total"] == 1
        case = reader.next_case()
        assert case is not None and case.created == pytest.approx(now - 13 * 86_400)
    # The writer sweeps too, with no reader at all: a short retention, a fresh writer.
    writer = started(review_settings(path, retention_days=1))
    assert writer.status()["purged"] == 1
    writer.close()
    # Fernet tokens start "gAAAAA": only the key check is left, the deleted rows overwritten
    assert disk_bytes(tmp_path).count(b"gAAAAA") == 1, "an expired case is still on disk"


@pytest.mark.parametrize("key", ["", "not-a-key", None])
def test_a_wrong_or_missing_key_reads_nothing(tmp_path: Path, key: str | None) -> None:
    path = tmp_path / "review.db"
    writer = started(review_settings(path))
    writer.submit(_case(time.time()))
    flush(writer)
    from cryptography.fernet import Fernet

    other = Fernet.generate_key().decode() if key is None else key
    with pytest.raises(ReviewStoreError) as caught:
        ReviewReader(review_settings(path, key=other))
    assert not leaks(str(caught.value))
