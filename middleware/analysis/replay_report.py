"""The replay's figures: per-command results, the seed-002 verdict, and both renderings.

Kept apart from the run so the verdict can be recomputed from stored runs (another
``max_disagreement`` over the same results) without asking a model again.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from typing import Any

from middleware.outcome import Status

_SAMPLED = frozenset({Status.ACCEPTED_LLM, Status.FALLBACK_DETERMINISTIC, Status.ERROR})


@dataclass(frozen=True, slots=True)
class CommandResult:
    """One command in one pass; the baseline is kept beside the final decision so a
    disagreement can be shown, not only counted."""

    command_id: str
    status: str
    reason: str
    baseline: dict[str, Any]
    final: dict[str, Any]

    @property
    def in_corridor(self) -> bool:
        return self.status in _SAMPLED

    @property
    def disagrees(self) -> bool:
        return self.in_corridor and self.final != self.baseline

    def key(self) -> tuple[str, str, str]:
        """What the determinism check compares: never a timestamp or a latency."""
        return self.status, self.reason, json.dumps(self.final, sort_keys=True)


@dataclass(frozen=True)
class ReplayReport:
    """Every pass over the corpus: the figures come from the first pass, the later passes
    only check that each command's outcome repeats."""

    runs: tuple[tuple[CommandResult, ...], ...]
    max_disagreement: float

    @property
    def first(self) -> tuple[CommandResult, ...]:
        return self.runs[0]

    @property
    def commands(self) -> int:
        return len(self.first)

    @property
    def corridor_commands(self) -> int:
        return sum(1 for r in self.first if r.in_corridor)

    @property
    def disagreements(self) -> list[CommandResult]:
        return [r for r in self.first if r.disagrees]

    @property
    def disagreement_rate(self) -> float | None:
        n = self.corridor_commands
        return len(self.disagreements) / n if n else None

    @property
    def accepted(self) -> int:
        return sum(1 for r in self.first if r.status == Status.ACCEPTED_LLM)

    @property
    def acceptance_rate(self) -> float | None:
        n = self.corridor_commands
        return self.accepted / n if n else None

    @property
    def status_counts(self) -> dict[str, int]:
        return dict(sorted(Counter(r.status for r in self.first).items()))

    @property
    def reason_counts(self) -> dict[str, int]:
        return dict(sorted(Counter(r.reason for r in self.first).items()))

    @property
    def nondeterministic(self) -> list[str]:
        """Command ids whose outcome differs between any two runs."""
        base = self.first
        return [
            base[i].command_id
            for i in range(len(base))
            if any(run[i].key() != base[i].key() for run in self.runs[1:])
        ]

    @property
    def deterministic(self) -> bool:
        return not self.nondeterministic

    @property
    def passed(self) -> bool:
        rate = self.disagreement_rate
        return rate is not None and rate <= self.max_disagreement + 1e-12 and self.deterministic

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": "partial_trust_replay/v1",
            "passed": self.passed,
            "commands": self.commands,
            "corridor_commands": self.corridor_commands,
            "disagreement_rate": self.disagreement_rate,
            "disagreements": len(self.disagreements),
            "max_disagreement": self.max_disagreement,
            "acceptance_rate": self.acceptance_rate,
            "accepted": self.accepted,
            "status_counts": self.status_counts,
            "reason_counts": self.reason_counts,
            "runs": len(self.runs),
            "deterministic": self.deterministic,
            "nondeterministic_commands": self.nondeterministic,
            "disagreeing_commands": [
                {"command_id": r.command_id, "baseline": r.baseline, "final": r.final}
                for r in self.disagreements
            ],
        }


def _percent(rate: float | None) -> str:
    return "n/a" if rate is None else f"{rate:.2%}"


def table(report: ReplayReport) -> str:
    """The operator's summary for the terminal; ``to_json`` carries the same figures."""
    lines = [
        f"commands                {report.commands}",
        f"corridor commands       {report.corridor_commands}",
        f"disagreement_rate       {_percent(report.disagreement_rate)}"
        f"  ({len(report.disagreements)}/{report.corridor_commands};"
        f" max {report.max_disagreement:.2%})",
        f"acceptance_rate         {_percent(report.acceptance_rate)}"
        f"  ({report.accepted}/{report.corridor_commands})",
        f"determinism ({len(report.runs)} runs)  "
        + ("identical" if report.deterministic else f"{len(report.nondeterministic)} differ"),
        "by status:  " + ", ".join(f"{k}={v}" for k, v in report.status_counts.items()),
        "by reason:  " + ", ".join(f"{k}={v}" for k, v in report.reason_counts.items()),
    ]
    for r in report.disagreements[:10]:
        lines.append(f"  disagrees: {r.command_id}")
    for cid in report.nondeterministic[:10]:
        lines.append(f"  nondeterministic: {cid}")
    if report.corridor_commands == 0:
        lines.append("no command entered the corridor: nothing was judged")
    lines.append("PASS" if report.passed else "FAIL")
    return "\n".join(lines)
