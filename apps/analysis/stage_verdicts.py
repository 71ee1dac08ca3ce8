"""Every stage's verdict as ``gate --stage N`` gives it, for every report that shows one.

The records' verdict (``gate.evaluate``), then HOLD until the stage has run its minimum
duration at its sample rate (``durations``, ``gate.held``). ``gate --stage N``, the HTML of
``analyze --html`` and ``gate --html``, and the triage bundle's ``gate-stage-N.json`` all go
through ``stage_verdict``, so no report shows a GO that the gate would hold.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from partial_trust.apps.analysis import durations
from partial_trust.apps.analysis import gate as gate_mod
from partial_trust.apps.analysis.figures import Figures


@dataclass(frozen=True, slots=True)
class Clock:
    """Where a stage's start comes from: ``since`` wins, then the flag audit log, then the
    risk logs' first record at the stage's rate (``durations.stage_duration``)."""

    since: datetime | None = None
    until: datetime | None = None
    audit_log: Path | None = None
    risk_logs: tuple[Path, ...] = ()

    def duration(self, stage: int) -> durations.Duration:
        """Raises ``durations.DurationError`` when the audit log cannot be read."""
        return durations.stage_duration(
            stage,
            since=self.since,
            audit_log=self.audit_log,
            risk_logs=self.risk_logs,
            until=self.until,
        )


@dataclass(frozen=True, slots=True)
class StageVerdict:
    stage: int
    verdict: gate_mod.Verdict  # the gate's word: data_verdict, GO held until the duration
    data_verdict: gate_mod.Verdict  # the records alone
    criteria: list[gate_mod.Criterion]
    stability: gate_mod.Stability
    duration: durations.Duration

    @property
    def gate(self) -> tuple[int, gate_mod.Verdict, list[gate_mod.Criterion]]:
        """The ``(stage, verdict, criteria)`` the HTML report takes."""
        return self.stage, self.verdict, self.criteria

    def duration_line(self) -> str:
        """``HOLD: stage 1 has run ...; ... left (start from: risk-log)``, as the gate prints."""
        label = "HOLD" if self.verdict is gate_mod.Verdict.HOLD else "duration"
        return f"{label}: {self.duration.summary()} (start from: {self.duration.source})"

    def to_json(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "verdict": self.verdict.value,
            "exit_code": self.verdict.exit_code,
            "data_verdict": self.data_verdict.value,
            "duration": self.duration.to_json(),
        }


def stage_verdict(fig: Figures, stage: int, clock: Clock, **evaluate_kw: Any) -> StageVerdict:
    """``stage``'s verdict with the duration rule; ``evaluate_kw`` go to ``gate.evaluate``."""
    data_verdict, criteria, stab = gate_mod.evaluate(fig, stage, **evaluate_kw)
    duration = clock.duration(stage)
    verdict = gate_mod.held(data_verdict, duration)
    return StageVerdict(stage, verdict, data_verdict, criteria, stab, duration)


def every_stage(fig: Figures, clock: Clock) -> list[StageVerdict]:
    return [stage_verdict(fig, s, clock) for s in sorted(gate_mod.STAGES)]


def notes(verdicts: Sequence[StageVerdict]) -> dict[int | str, str]:
    """Each stage's duration line, for the HTML report under the stage's verdict."""
    return {v.stage: v.duration_line() for v in verdicts}
