"""``partial-trust replay --corpus FILE``: the seed-002 gates, offline.

Every command of a fixed corpus goes through the baseline router
(``middleware.reference.baseline.route``) and through the candidate path, which is the real
corridor engine without ASGI: ``CorridorEngine.admit`` (corridor, capability and policy
checks; the sample rate is 1, so every corridor command is asked), ``ask`` (the request built
by ``ShoppingCorridor.build_request``, sent through the real ``LLMClient`` under the profile's
deadline) and ``decide`` (``corridor.judge``, and ``merge`` for an accepted candidate). The
candidate comes from an in-process llm-sim (``middleware.llm_sim.create_app`` under
``httpx.ASGITransport``, fault-free unless ``--sim-force``) or from ``--llm-url`` (a real
OpenAI-compatible model).

Figures (a zero denominator gives ``null``):

* corridor commands: commands the LLM was asked about (status accepted_llm,
  fallback_deterministic or error: the analyzer's "sampled");
* disagreement_rate = corridor commands whose final decision (the merged candidate if
  accepted, else the baseline's) differs from the baseline decision / corridor commands;
* acceptance_rate = accepted_llm / corridor commands;
* counts by status and by reason code (commands outside the corridor are ``skipped``);
* determinism: the whole corpus is run twice (the in-process sim is rebuilt with the same
  seed for each run) and every command's (status, reason, final decision) must be identical;
  timestamps and latencies are never compared.

Exit: 0 when disagreement_rate <= --max-disagreement (default 0.01, seed-002's "<= 1%") and
both runs agree; 1 otherwise (also when no command entered the corridor: no evidence is not
a pass); 2 bad input (unreadable or malformed corpus, bad options, missing policy file).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from pydantic import ValidationError

from middleware.config import EffectiveSettings, StaticSettings
from middleware.contracts import CommandDTO
from middleware.corridor import ShoppingCorridor
from middleware.engine import CorridorEngine
from middleware.llm_client import LLMClient
from middleware.llm_sim import Mode, SimConfig, create_app
from middleware.outcome import Outcome, Reason, Status
from middleware.policy import DEFAULT_POLICY_PATH, PolicyError, PolicyRegistry
from middleware.reference.baseline import route
from middleware.sampling import CommandKeyer

SHIPPED_CORPUS = Path(__file__).parent / "corpus" / "shopping.json"
DEFAULT_MAX_DISAGREEMENT = 0.01
SIM_URL = "http://llm-sim.invalid/v1"
#: Command keys never leave this process; a fixed key keeps runs identical and quiet.
_REPLAY_KEY = b"partial-trust-replay"
_SAMPLED = frozenset({Status.ACCEPTED_LLM, Status.FALLBACK_DETERMINISTIC, Status.ERROR})

TransportFactory = Callable[[], httpx.AsyncBaseTransport]


class CorpusError(ValueError):
    """The corpus cannot be read or is not a list of CommandDTOs (exit 2)."""


@dataclass(frozen=True, slots=True)
class CommandResult:
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


def load_corpus(path: str | Path) -> list[CommandDTO]:
    """A JSON list of CommandDTOs (or ``{"commands": [...]}``); ids must be unique."""
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise CorpusError(f"{path}: cannot read the corpus ({exc.strerror or exc})") from None
    except ValueError as exc:
        raise CorpusError(f"{path}: not JSON ({exc})") from None
    if isinstance(raw, dict) and "commands" in raw:
        raw = raw["commands"]
    if not isinstance(raw, list) or not raw:
        raise CorpusError(f"{path}: expected a non-empty JSON list of commands")
    commands: list[CommandDTO] = []
    for index, item in enumerate(raw):
        try:
            commands.append(CommandDTO.model_validate(item))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "<item>"
            raise CorpusError(f"{path}: command #{index}: {where}: {first['msg']}") from None
    ids = Counter(c.command_id for c in commands)
    dupes = sorted(i for i, n in ids.items() if n > 1)
    if dupes:
        raise CorpusError(f"{path}: duplicate command_id(s): {', '.join(dupes[:5])}")
    return commands


def sim_transport(config: SimConfig | None = None) -> TransportFactory:
    """A fresh in-process llm-sim per run, so a seeded fault mix replays identically."""
    return lambda: httpx.ASGITransport(app=create_app(config or SimConfig()))


def _settings(timeout_ms: int, profile_id: str | None) -> EffectiveSettings:
    return EffectiveSettings.build(
        enabled=True,
        intent=ShoppingCorridor().name,
        sample_rate=1.0,
        timeout_ms=timeout_ms,
        profile_id=profile_id,
        policy_enabled=True,
    )


async def run_once(
    commands: Sequence[CommandDTO],
    llm: LLMClient,
    policy: PolicyRegistry,
    *,
    timeout_ms: int = 60_000,
    profile_id: str | None = None,
) -> tuple[CommandResult, ...]:
    """One pass over the corpus, in order (a seeded sim draws its faults in request order)."""
    settings = _settings(timeout_ms, profile_id)
    engine = CorridorEngine(
        ShoppingCorridor(),
        settings=StaticSettings(settings),
        policy=policy,
        llm=llm,
        keyer=CommandKeyer(_REPLAY_KEY),
    )
    corridor = engine.corridor
    out: list[CommandResult] = []
    for command in commands:
        baseline = route(command).model_dump(mode="json")
        admitted = engine.admit(settings, command.model_dump_json().encode())
        final = baseline
        if isinstance(admitted, Outcome):
            status, reason = admitted.status, admitted.reason
        elif corridor.baseline_decision(json.dumps(baseline).encode()) is None:
            # The middleware cancels the candidate: the baseline did not decide in the corridor.
            status, reason = Status.SKIPPED, Reason.CORRIDOR_MISMATCH
        else:
            result = await engine.ask(admitted)
            outcome, body = engine.decide(admitted, result, baseline, 0.0)
            status, reason = outcome.status, outcome.reason
            if body is not None:
                final = json.loads(body)
        out.append(CommandResult(command.command_id, status.value, reason.value, baseline, final))
    return tuple(out)


async def replay(
    commands: Sequence[CommandDTO],
    policy: PolicyRegistry,
    *,
    transport: TransportFactory | None = None,
    llm_url: str | None = None,
    api_key: str | None = None,
    runs: int = 2,
    timeout_ms: int = 60_000,
    profile_id: str | None = None,
    max_disagreement: float = DEFAULT_MAX_DISAGREEMENT,
) -> ReplayReport:
    """Run the corpus ``runs`` times; ``transport`` (default: the in-process sim) is called
    once per run. With ``llm_url`` and no ``transport``, a real endpoint is asked."""
    if transport is None and llm_url is None:
        transport = sim_transport()
    results: list[tuple[CommandResult, ...]] = []
    for _ in range(max(1, runs)):
        client = httpx.AsyncClient(transport=transport()) if transport is not None else None
        async with LLMClient(llm_url or SIM_URL, api_key=api_key, client=client) as llm:
            results.append(
                await run_once(commands, llm, policy, timeout_ms=timeout_ms, profile_id=profile_id)
            )
        if client is not None:
            await client.aclose()
    return ReplayReport(tuple(results), max_disagreement)


def _fmt(rate: float | None) -> str:
    return "n/a" if rate is None else f"{rate:.2%}"


def table(report: ReplayReport) -> str:
    lines = [
        f"commands                {report.commands}",
        f"corridor commands       {report.corridor_commands}",
        f"disagreement_rate       {_fmt(report.disagreement_rate)}"
        f"  ({len(report.disagreements)}/{report.corridor_commands};"
        f" max {report.max_disagreement:.2%})",
        f"acceptance_rate         {_fmt(report.acceptance_rate)}"
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


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="partial-trust replay",
        description="Offline replay of a command corpus: baseline vs candidate path.",
        epilog="Figures" + (__doc__ or "").split("Figures", 1)[-1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--corpus",
        default=str(SHIPPED_CORPUS),
        help="JSON list of CommandDTOs (default: the shipped bilingual shopping corpus)",
    )
    p.add_argument("--llm-url", help="OpenAI-compatible base URL (default: in-process llm-sim)")
    p.add_argument("--max-disagreement", type=float, default=DEFAULT_MAX_DISAGREEMENT)
    p.add_argument("--output-json", metavar="FILE", help="write every figure as JSON ('-': stdout)")
    p.add_argument("--policy", help="LLM policy file (default: $LLM_POLICY_PATH or the repo's)")
    p.add_argument("--profile", help="policy profile id (default: the task's default)")
    p.add_argument(
        "--timeout-ms", type=int, default=60_000, help="LLM deadline (the profile's cap applies)"
    )
    p.add_argument("--runs", type=int, default=2, help="passes for the determinism check")
    p.add_argument("--sim-force", choices=[m.value for m in Mode], help="force a sim fault mode")
    p.add_argument("--sim-seed", type=int, default=0, help="the in-process sim's seed")
    return p


def main(argv: Sequence[str], *, transport: TransportFactory | None = None) -> int:
    p = _parser()
    try:
        args = p.parse_args(list(argv))
    except SystemExit as exc:
        return 0 if exc.code == 0 else 2
    if not 0.0 <= args.max_disagreement <= 1.0 or args.runs < 2 or args.timeout_ms < 1:
        print(
            "partial-trust replay: need 0 <= --max-disagreement <= 1, --runs >= 2, "
            "--timeout-ms >= 1",
            file=sys.stderr,
        )
        return 2
    try:
        commands = load_corpus(args.corpus)
        policy = PolicyRegistry.load(
            args.policy or os.environ.get("LLM_POLICY_PATH") or DEFAULT_POLICY_PATH
        )
    except (CorpusError, PolicyError) as exc:
        print(f"partial-trust replay: {exc}", file=sys.stderr)
        return 2
    if transport is None and args.llm_url is None:
        force = Mode(args.sim_force) if args.sim_force else None
        transport = sim_transport(SimConfig(seed=args.sim_seed, force=force))
    report = asyncio.run(
        replay(
            commands,
            policy,
            transport=transport,
            llm_url=args.llm_url,
            api_key=os.environ.get("LLM_API_KEY") or None,
            runs=args.runs,
            timeout_ms=args.timeout_ms,
            profile_id=args.profile,
            max_disagreement=args.max_disagreement,
        )
    )
    if args.output_json != "-":
        print(table(report))
    if args.output_json:
        text = json.dumps(report.to_json(), indent=2, ensure_ascii=False) + "\n"
        if args.output_json == "-":
            sys.stdout.write(text)
        else:
            Path(args.output_json).parent.mkdir(parents=True, exist_ok=True)
            Path(args.output_json).write_text(text, encoding="utf-8")
    return 0 if report.passed else 1
