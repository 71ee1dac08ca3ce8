"""The console's stage clock: how long the current stage has run, and the gate it feeds.

The same rule as ``partial-trust gate --stage N`` (``partial_trust.apps.analysis.durations``): the
clock starts at the console's own audit log's latest run at the stage's sample rate (every
change through the console, the CLI and the auto-rollback is there), else at the risk log's
first record of its latest run at that rate. ``judge`` turns the data's GO into HOLD until the
minimum is met (``gate.held``), and ``advance_check`` is the server-side rule of "next stage":
anything but GO is refused (409) unless the body says ``override`` (with its reason), and an
override is recorded as one (``override``, ``overridden_verdict``, ``gate_why``).

The audit log is re-read on every call (it is small and append-only); the risk-log scan reads
the whole log, so it is cached like ``state.GateCache`` (recomputed when the stage changes,
else at most every ``max_age_s``).
"""

from __future__ import annotations

import os
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from partial_trust.apps.analysis.durations import (
    STAGE_SAMPLE_RATE,
    Duration,
    Run,
    audit_run,
    from_run,
    read_audit,
)
from partial_trust.apps.console.corridor_log import audit_for
from partial_trust.corridors import SHOPPING

NOT_AVAILABLE = "NOT-AVAILABLE"


class StageClock:
    def __init__(self, audit_path: Path, risk_log: Path | None, max_age_s: float = 30.0) -> None:
        self.audit_path = audit_path
        self.risk_log = risk_log
        self.max_age_s = max_age_s
        self._lock = threading.Lock()
        self._key: tuple[object, ...] | None = None
        self._at = 0.0
        self._run: Run | None = None

    def duration(self, stage: int, corridor: str = SHOPPING) -> Duration:
        """Blocking (file I/O): call it from a worker thread. ``corridor``: whose rate changes
        count (``corridor_log.audit_for``); the risk-log fallback reads the rate field of
        every line, so it is the shopping corridor's only (another corridor's stage is
        changed through the console or the CLI, so its audit lines are there)."""
        now = datetime.now(UTC)
        rate = STAGE_SAMPLE_RATE[stage]
        run = audit_run(audit_for(read_audit(self.audit_path), corridor), rate, now)
        if run is not None:
            return from_run(stage, run, "flag-audit-log", now)
        if corridor != SHOPPING:
            return from_run(stage, None, "none", now)
        run = self._risk_log_run(stage, now)
        return from_run(stage, run, "risk-log" if run is not None else "none", now)

    def _risk_log_run(self, stage: int, now: datetime) -> Run | None:
        if self.risk_log is None:
            return None
        try:
            st = os.stat(self.risk_log)
        except OSError:
            return None
        key = (stage, st.st_size, st.st_mtime_ns)
        with self._lock:
            fresh = time.monotonic() - self._at < self.max_age_s
            if self._key is not None and (key == self._key or (fresh and key[0] == self._key[0])):
                return self._run
            from partial_trust.apps.analysis.stage_start import risk_log_run

            try:
                run = risk_log_run([self.risk_log], STAGE_SAMPLE_RATE[stage], now)
            except Exception:  # the analyzer is optional here: an unknown start, never a crash
                run = None
            self._key, self._at, self._run = key, time.monotonic(), run
            return run


def judge(gate: dict[str, Any], clock: StageClock, corridor: str = SHOPPING) -> dict[str, Any]:
    """``gate`` (``state.GateCache.verdict``) with the stage clock: ``duration``,
    ``data_verdict`` (what the records say) and ``verdict`` (HOLD while the clock runs)."""
    if not gate.get("available") or not isinstance(gate.get("stage"), int):
        return gate
    from partial_trust.apps.analysis.gate import Verdict, held

    duration = clock.duration(gate["stage"], corridor)
    data = Verdict(gate["verdict"])
    return {
        **gate,
        "data_verdict": data.value,
        "verdict": held(data, duration).value,
        "duration": duration.to_json(),
    }


def why(gate: dict[str, Any]) -> str:
    """The gate's reason in one line, for a refusal and the override's audit line."""
    if not gate.get("available"):
        return str(gate.get("why") or "the gate is not available")
    verdict = gate.get("verdict")
    if verdict == "HOLD":
        return str(gate["duration"]["summary"])
    if verdict == "CANNOT-EVALUATE":
        return "the risk log is not evidence (too few records, or too many foreign lines)"
    # NO-GO: the go lines not passed; ROLLBACK: the rollback lines crossed
    kind = "rollback" if verdict == "ROLLBACK" else "go"
    failing = [
        f"{c['text']}: {c['result']}"
        for c in gate.get("criteria", [])
        if c.get("kind") == kind and c.get("result") != "pass"
    ]
    return f"{verdict}: " + ("; ".join(failing) or "see the criteria")


def verdict_of(gate: dict[str, Any]) -> str:
    return str(gate["verdict"]) if gate.get("available") else NOT_AVAILABLE
