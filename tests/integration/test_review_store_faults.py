"""The review store breaking under the real app: ``partial-trust serve`` (uvicorn on
127.0.0.1, flags from a file with the review flag on, shadow) and llm-sim disagreeing.

Each fault comes while the app serves or between two of its runs: the store overwritten, a
disk that fills (SQLite's real ``SQLITE_FULL``: the same CLI started with the writer's
``PAGE_LIMIT`` hook set), and the key changed between two runs. Every request is answered
200 with the baseline's bytes, ``/health`` shows review off with the reason, the metrics
count every later case ``dropped_off`` or ``failed``, and the app's log holds no canary.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet

from partial_trust.apps.review.store import ReviewReader
from partial_trust.config import FLAG_TIMEOUT_MS
from partial_trust.flags import flagfile
from partial_trust.flags.flagmodel import REVIEW_ENABLED
from tests.apps.console.helpers import SHIPPED
from tests.integration.stack import BASE_ENV, llm_sim, metric_value, reference_app
from tests.review_helpers import KEY, canary_command, leaks, review_settings
from tests.support.procs import PYTHON, Server, free_port, run_server

pytestmark = pytest.mark.integration
CORRIDOR = "add_shopping_item"


def _flags(tmp_path: Path) -> Path:
    flags = tmp_path / "partial-trust.flagd.json"
    flags.write_bytes(SHIPPED.read_bytes())
    flagfile.set_flag(flags, flagfile.SAMPLE_RATE, 1.0, reason="test: every command")
    flagfile.resume(flags, reason="test: on", keep_rate=True)
    flagfile.set_flag(flags, REVIEW_ENABLED, True, reason="test: keep disagreements")
    # shadow serves the baseline at once; a long timeout only keeps a busy machine's slow
    # llm-sim answers from turning into errors (which are not disagreements)
    flagfile.set_flag(flags, FLAG_TIMEOUT_MS, 5000, reason="test: a busy machine")
    return flags


def _env(tmp_path: Path, store: Path, key: str) -> dict[str, str]:
    return {
        "PARTIAL_TRUST_FLAGS_PROVIDER": "file",
        "PARTIAL_TRUST_FLAGS_FILE": str(_flags(tmp_path)),
        "PARTIAL_TRUST_TIMEOUT_MS": "5000",
        "PARTIAL_TRUST_REVIEW_STORE": str(store),
        "PARTIAL_TRUST_REVIEW_KEY": key,
    }


def _baseline_bytes(body: dict[str, Any]) -> bytes:
    from partial_trust.contracts import CommandDTO
    from partial_trust.middleware.baseline import route

    decision = route(CommandDTO.model_validate(body)).model_dump(mode="json")
    return json.dumps(decision, ensure_ascii=False, separators=(",", ":")).encode()


def _post(app: Server, prefix: str, n: int) -> float:
    """``n`` canary commands, each answered 200 with the baseline; the slowest, in seconds."""
    slowest = 0.0
    with httpx.Client(timeout=10) as client:
        for i in range(n):
            body = canary_command(f"{prefix}-{i}")
            started = time.perf_counter()
            response = client.post(f"{app.url}/route", json=body)
            slowest = max(slowest, time.perf_counter() - started)
            assert response.status_code == 200
            assert response.content == _baseline_bytes(body)
    return slowest


def _review(app: Server) -> dict[str, Any]:
    health = httpx.get(f"{app.url}/health", timeout=5).json()
    review: dict[str, Any] = health["partial_trust"]["review_store"]
    return review


def _counted(app: Server, result: str) -> float:
    labels = {"corridor": CORRIDOR, "result": result}
    return metric_value(app, "partial_trust_review_cases_total", labels)


def _wait(predicate: Callable[[], bool], timeout_s: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.1)
    return predicate()


def _why(app: Server, risk: Path) -> str:
    lines = [json.loads(x) for x in risk.read_text().splitlines()] if risk.exists() else []
    statuses = [(x.get("status"), x.get("reason"), x.get("agreement")) for x in lines]
    return f"{_review(app)} {statuses}"


def _lost(app: Server) -> float:
    return _counted(app, "dropped_off") + _counted(app, "failed")


def test_a_store_overwritten_while_the_app_serves(tmp_path: Path) -> None:
    store = tmp_path / "store" / "review.db"
    with (
        llm_sim(tmp_path, "--disagree-rate", "1") as sim,
        reference_app(tmp_path, f"{sim.url}/v1", **_env(tmp_path, store, KEY)) as (app, risk),
    ):
        _post(app, "before", 3)
        assert _wait(lambda: _review(app).get("kept") == 3), _why(app, risk)
        for part in (store, store.with_name("review.db-wal")):
            with open(part, "r+b") as handle:
                handle.write(b"not sqlite " * 800)
        assert _post(app, "after", 6) < 5.0, "a request stalled"
        assert _wait(lambda: _lost(app) == 6), _review(app)
        review = _review(app)
        assert review["active"] is False and "changed while the app ran" in review["reason"]
        assert _counted(app, "kept") == 3
        assert _post(app, "later", 2) < 5.0  # still serving once review is off
        assert _wait(lambda: _counted(app, "dropped_off") >= 8)
    assert not leaks(app.output()), "a canary in the app's log"
    assert not leaks(risk.read_text()), "a canary in the risk log"


def test_a_disk_that_fills_while_the_app_serves(tmp_path: Path) -> None:
    store = tmp_path / "store" / "review.db"
    port = free_port()
    # the real CLI in a real process, with the writer's documented test hook set first
    hook = (
        "import sys; from partial_trust.middleware.review_writer import ReviewWriter;"
        " ReviewWriter.PAGE_LIMIT = 9; from partial_trust.apps.cli import main;"
        " sys.exit(main(sys.argv[1:]))"
    )
    with llm_sim(tmp_path, "--disagree-rate", "1") as sim:
        env = {
            **BASE_ENV,
            "LLM_BASE_URL": f"{sim.url}/v1",
            "PARTIAL_TRUST_RISK_LOG_PATH": str(tmp_path / "risk.jsonl"),
            **_env(tmp_path, store, KEY),
        }
        argv = [PYTHON, "-c", hook, "serve", "--port", str(port), "--log-level", "warning"]
        with run_server(
            argv, port=port, ready_path="/health", log_path=tmp_path / "app.log", env=env
        ) as app:
            assert _post(app, "fill", 30) < 5.0, "a request stalled"
            assert _wait(lambda: _review(app)["active"] is False), _review(app)
            assert _review(app)["reason"] == "the store's disk is full"
            kept = _counted(app, "kept")
            assert _wait(lambda: kept + _lost(app) == 30), _review(app)
            assert 1 <= kept < 30 and _counted(app, "failed") == 1
    assert not leaks(app.output()), "a canary in the app's log"


def test_the_key_changed_between_two_runs(tmp_path: Path) -> None:
    store = tmp_path / "store" / "review.db"
    with llm_sim(tmp_path, "--disagree-rate", "1") as sim:
        with reference_app(tmp_path, f"{sim.url}/v1", "first", **_env(tmp_path, store, KEY)) as (
            first,
            risk,
        ):
            _post(first, "first", 3)
            assert _wait(lambda: _review(first).get("kept") == 3), _why(first, risk)
        other = Fernet.generate_key().decode()
        with reference_app(tmp_path, f"{sim.url}/v1", "second", **_env(tmp_path, store, other)) as (
            second,
            _,
        ):
            review = _review(second)
            assert review["active"] is False and "wrong key" in review["reason"]
            assert _post(second, "second", 5) < 5.0, "a request stalled"
            assert _wait(lambda: _counted(second, "dropped_off") == 5), _review(second)
            assert _counted(second, "kept") == 0
    # the first run's cases are untouched and still open with the first key
    with ReviewReader(review_settings(store)) as reader:
        assert reader.progress() == {"reviewed": 0, "total": 3}
    assert not leaks(first.output() + second.output()), "a canary in the app's log"
