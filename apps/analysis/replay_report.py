"""The replay's figures: per-command results, the verdict, and both text renderings.

Kept apart from the run so the verdict can be recomputed from stored runs (another
``max_disagreement`` over the same results) without asking a model again.

The verdict is honest about absence: a replay in which the model never answered (every
corridor call errored: unreachable, hanging, always malformed) has judged nothing, so it is a
FAIL with its own exit code, never a PASS with "0% disagreement". Exit codes (``exit_code``):

* 0 PASS: disagreement_rate <= max_disagreement, error_rate <= max_error_rate, and every
  pass gave every command the same outcome;
* 1 FAIL: a line crossed (disagreement, error rate) or the runs differ;
* 3 FAIL, nothing judged: no command entered the corridor, or no corridor call came back
  with an answer (``aborted``: the first ``give_up_after`` calls all failed, so the replay
  stopped instead of waiting out every timeout); ``2`` is the CLI's bad input.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from partial_trust.outcome import Status

_SAMPLED = frozenset({Status.ACCEPTED_LLM, Status.FALLBACK_DETERMINISTIC, Status.ERROR})
#: seed-002: "Decision disagreement: <= 1% on fixed-seed regression".
DEFAULT_MAX_DISAGREEMENT = 0.01
#: The runbook's error_rate alarm ("> 0.05: rollback immediately"), also stage 1's go bar.
DEFAULT_MAX_ERROR_RATE = 0.05
EXIT_PASS, EXIT_FAIL, EXIT_BAD_INPUT, EXIT_NOTHING_JUDGED = 0, 1, 2, 3


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
    max_disagreement: float = DEFAULT_MAX_DISAGREEMENT
    max_error_rate: float = DEFAULT_MAX_ERROR_RATE
    #: The first pass stopped early: its first calls all failed (see the module docstring).
    aborted: bool = False
    #: Where the candidates came from (``{"kind": "llm-sim", ...}`` or ``{"kind": "url"}``).
    source: dict[str, Any] = field(default_factory=dict)

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
    def errors(self) -> int:
        return sum(1 for r in self.first if r.status == Status.ERROR)

    @property
    def error_rate(self) -> float | None:
        n = self.corridor_commands
        return self.errors / n if n else None

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
    def nothing_judged(self) -> str | None:
        """Why the replay judged nothing (exit 3), or None."""
        if self.aborted:
            return (
                f"the first {self.errors} corridor call(s) all failed "
                f"({_reasons(self.first)}): the LLM is unreachable, hanging or answers garbage"
            )
        if self.corridor_commands == 0:
            return "no command entered the corridor: nothing was judged"
        if self.errors == self.corridor_commands:
            return (
                f"all {self.errors} corridor calls failed ({_reasons(self.first)}): the LLM "
                "is unreachable, hanging or answers garbage"
            )
        if self.accepted == 0:
            # Every answer fell back: the served decisions are the baseline's own, so a 0%
            # disagreement would only say that the check had nothing to compare.
            refused = _counts(r.reason for r in self.first if r.in_corridor)
            return (
                f"no candidate was accepted in {self.corridor_commands} corridor command(s) "
                f"({refused}): the disagreement check judged nothing"
            )
        return None

    @property
    def failures(self) -> list[str]:
        """Every line crossed, in words (empty: PASS)."""
        out = [why] if (why := self.nothing_judged) else []
        rate, err = self.disagreement_rate, self.error_rate
        if rate is not None and rate > self.max_disagreement + 1e-12:
            out.append(f"disagreement_rate {rate:.2%} > {self.max_disagreement:.2%}")
        if err is not None and err > self.max_error_rate + 1e-12 and not self.nothing_judged:
            out.append(f"error_rate {err:.2%} > {self.max_error_rate:.2%}")
        if not self.deterministic:
            out.append(f"{len(self.nondeterministic)} command(s) differ between runs")
        return out

    @property
    def exit_code(self) -> int:
        if self.nothing_judged:
            return EXIT_NOTHING_JUDGED
        return EXIT_FAIL if self.failures else EXIT_PASS

    @property
    def passed(self) -> bool:
        return self.exit_code == EXIT_PASS

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": "partial_trust_replay/v1",
            "passed": self.passed,
            "verdict": "PASS" if self.passed else "FAIL",
            "exit_code": self.exit_code,
            "failures": self.failures,
            "nothing_judged": self.nothing_judged,
            "aborted": self.aborted,
            "source": self.source,
            "commands": self.commands,
            "corridor_commands": self.corridor_commands,
            "disagreement_rate": self.disagreement_rate,
            "disagreements": len(self.disagreements),
            "max_disagreement": self.max_disagreement,
            "error_rate": self.error_rate,
            "errors": self.errors,
            "max_error_rate": self.max_error_rate,
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


def _reasons(results: tuple[CommandResult, ...]) -> str:
    return _counts(r.reason for r in results if r.status == Status.ERROR)


def _counts(reasons: Iterable[str]) -> str:
    """``reason=count`` pairs, sorted by reason (``none`` when there are none)."""
    return ", ".join(f"{k}={v}" for k, v in sorted(Counter(reasons).items())) or "none"


def _percent(rate: float | None) -> str:
    return "n/a" if rate is None else f"{rate:.2%}"


def table(report: ReplayReport) -> str:
    """The operator's summary for the terminal; ``to_json`` carries the same figures."""
    lines = [
        f"candidates from         {source_text(report.source)}",
        f"commands                {report.commands}",
        f"corridor commands       {report.corridor_commands}",
        f"disagreement_rate       {_percent(report.disagreement_rate)}"
        f"  ({len(report.disagreements)}/{report.corridor_commands};"
        f" max {report.max_disagreement:.2%})",
        f"error_rate              {_percent(report.error_rate)}"
        f"  ({report.errors}/{report.corridor_commands}; max {report.max_error_rate:.2%})",
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
    lines += [f"  FAIL: {why}" for why in report.failures]
    lines.append(f"{'PASS' if report.passed else 'FAIL'} (exit {report.exit_code})")
    return "\n".join(lines)


def source_text(source: dict[str, Any]) -> str:
    if source.get("kind") != "llm-sim":
        return str(source.get("kind") or "a caller-supplied transport")
    injected = source.get("disagree_rate") or 0.0
    text = f"in-process llm-sim (seed {source.get('seed', 0)}"
    if source.get("force"):
        text += f", every call forced to {source['force']}"
    elif injected:
        text += f", disagrees ON PURPOSE on a {injected:.0%} seeded share of calls"
    return text + ")"
