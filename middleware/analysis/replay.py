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

This module is the command line; the corpus is read in ``replay_corpus``, the passes run
in ``replay_run`` and the figures and verdict live in ``replay_report``. Their public names
are re-exported here, so ``from middleware.analysis import replay`` stays the one import.

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
from collections.abc import Sequence
from pathlib import Path

from middleware.analysis.replay_corpus import SHIPPED_CORPUS, CorpusError, load_corpus
from middleware.analysis.replay_report import CommandResult, ReplayReport, table
from middleware.analysis.replay_run import (
    DEFAULT_MAX_DISAGREEMENT,
    SIM_URL,
    TransportFactory,
    replay,
    run_once,
    sim_transport,
)
from middleware.llm_sim import Mode, SimConfig
from middleware.policy import DEFAULT_POLICY_PATH, PolicyError, PolicyRegistry

__all__ = [
    "DEFAULT_MAX_DISAGREEMENT",
    "SHIPPED_CORPUS",
    "SIM_URL",
    "CommandResult",
    "CorpusError",
    "ReplayReport",
    "TransportFactory",
    "load_corpus",
    "main",
    "replay",
    "run_once",
    "sim_transport",
    "table",
]


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
