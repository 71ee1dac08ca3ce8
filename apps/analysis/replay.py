"""``partial-trust replay --corpus FILE``: the seed-002 gates, offline.

Every command of a fixed corpus goes through the baseline router
(``partial_trust.middleware.baseline.route``) and through the candidate path, which is the real
corridor engine without ASGI: ``CorridorEngine.admit`` (corridor, capability and policy
checks; the sample rate is 1, so every corridor command is asked), ``ask`` (the request built
by ``ShoppingCorridor.build_request``, sent through the real ``LLMClient`` under the profile's
deadline) and ``decide`` (``corridor.judge``, and ``merge`` for an accepted candidate). The
candidate comes from an in-process llm-sim (``partial_trust.apps.llm_sim.create_app`` under
``httpx.ASGITransport``, fault-free unless ``--sim-force``) or from ``--llm-url`` (a real
OpenAI-compatible model).

This module is the command line; the corpus is read in ``replay_corpus``, the passes run
in ``replay_run`` and the figures and verdict live in ``replay_report``. Their public names
are re-exported here, so ``from partial_trust.apps.analysis import replay`` stays the one import.

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

Lines (a FAIL names each one crossed):

* disagreement_rate <= --max-disagreement (default 0.01: seed-002's "<= 1% on fixed-seed
  regression"); the shipped corpus has 240 corridor commands, so up to 2 may disagree;
* error_rate = error / corridor commands <= --max-error-rate (default 0.05: the runbook's
  error_rate alarm, "> 0.05: rollback immediately", also stage 1's go bar);
* both runs agree on every command.

The default run is a drill, not a model check: the in-process llm-sim disagrees on purpose
(mode ``disagree``: the items on another list the text names, else without the last item, a
candidate every acceptance rule takes) on a seeded --sim-disagree-rate share of calls
(default 0.05). A single item on a list the text does not name has no such wrong answer, so
only some injections change the decision: with the shipped corpus and seed 0 that is 5 of 240
corridor commands, 2.08%, and the default run FAILS (exit 1), which shows that the check
counts what it is meant to. --sim-disagree-rate 0 gives a clean sim (PASS: the
corridor's own code agrees with the baseline); --llm-url asks a real model.

Exit: 0 PASS; 1 FAIL, a line crossed or the runs differ; 2 bad input (unreadable or
malformed corpus, bad options, missing policy file); 3 FAIL, nothing judged: no command
entered the corridor, no LLM call came back with an answer (unreachable, hanging, always
malformed; the replay stops after the first --give-up-after such calls, default 10), or
every answer was refused (nothing accepted, so there was no decision to disagree with).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from partial_trust.apps.analysis.replay_corpus import SHIPPED_CORPUS, CorpusError, load_corpus
from partial_trust.apps.analysis.replay_report import (
    DEFAULT_MAX_DISAGREEMENT,
    DEFAULT_MAX_ERROR_RATE,
    EXIT_BAD_INPUT,
    CommandResult,
    ReplayReport,
    table,
)
from partial_trust.apps.analysis.replay_run import (
    DEFAULT_GIVE_UP_AFTER,
    SIM_URL,
    TransportFactory,
    replay,
    run_once,
    sim_transport,
)
from partial_trust.apps.llm_sim import Mode, SimConfig
from partial_trust.environment import Environment
from partial_trust.middleware.policy import DEFAULT_POLICY_PATH, PolicyError, PolicyRegistry

#: The default run's injected disagreement (see the module docstring): it FAILs on purpose.
DEFAULT_SIM_DISAGREE_RATE = 0.05

__all__ = [
    "DEFAULT_GIVE_UP_AFTER",
    "DEFAULT_MAX_DISAGREEMENT",
    "DEFAULT_MAX_ERROR_RATE",
    "DEFAULT_SIM_DISAGREE_RATE",
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
    p.add_argument("--max-error-rate", type=float, default=DEFAULT_MAX_ERROR_RATE)
    p.add_argument(
        "--give-up-after",
        type=int,
        default=DEFAULT_GIVE_UP_AFTER,
        help="stop when the first N corridor calls all fail (0: never; default %(default)s)",
    )
    p.add_argument("--output-json", metavar="FILE", help="write every figure as JSON ('-': stdout)")
    p.add_argument("--html", metavar="FILE", help="write a self-contained HTML report")
    p.add_argument("--policy", help="LLM policy file (default: $LLM_POLICY_PATH or the repo's)")
    p.add_argument("--profile", help="policy profile id (default: the task's default)")
    p.add_argument(
        "--timeout-ms", type=int, default=60_000, help="LLM deadline (the profile's cap applies)"
    )
    p.add_argument("--runs", type=int, default=2, help="passes for the determinism check")
    p.add_argument("--sim-force", choices=[m.value for m in Mode], help="force a sim fault mode")
    p.add_argument("--sim-seed", type=int, default=0, help="the in-process sim's seed")
    p.add_argument(
        "--sim-disagree-rate",
        type=float,
        default=DEFAULT_SIM_DISAGREE_RATE,
        help="share of sim calls answered with an accepted but different candidate "
        "(default %(default)s: the default run FAILs on purpose; 0: a clean sim)",
    )
    return p


def main(argv: Sequence[str], *, transport: TransportFactory | None = None) -> int:
    p = _parser()
    try:
        args = p.parse_args(list(argv))
    except SystemExit as exc:
        return 0 if exc.code == 0 else 2
    unit = (args.max_disagreement, args.max_error_rate, args.sim_disagree_rate)
    if not all(0.0 <= x <= 1.0 for x in unit) or args.runs < 2 or args.timeout_ms < 1:
        print(
            "partial-trust replay: need --max-disagreement, --max-error-rate and "
            "--sim-disagree-rate in [0, 1], --runs >= 2, --timeout-ms >= 1",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT
    if args.give_up_after < 0:
        print("partial-trust replay: need --give-up-after >= 0", file=sys.stderr)
        return EXIT_BAD_INPUT
    llm = Environment.from_os().llm
    try:
        commands = load_corpus(args.corpus)
        policy = PolicyRegistry.load(args.policy or llm.policy_path or DEFAULT_POLICY_PATH)
    except (CorpusError, PolicyError) as exc:
        print(f"partial-trust replay: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    source: dict[str, object] = {"kind": "url" if args.llm_url else "transport"}
    if transport is None and args.llm_url is None:
        force = Mode(args.sim_force) if args.sim_force else None
        config = SimConfig(seed=args.sim_seed, force=force, disagree_rate=args.sim_disagree_rate)
        transport = sim_transport(config)
        source = {"kind": "llm-sim", "seed": args.sim_seed, "force": args.sim_force}
        source["disagree_rate"] = args.sim_disagree_rate
    report = asyncio.run(
        replay(
            commands,
            policy,
            transport=transport,
            llm_url=args.llm_url,
            api_key=llm.api_key,
            runs=args.runs,
            timeout_ms=args.timeout_ms,
            profile_id=args.profile,
            max_disagreement=args.max_disagreement,
            max_error_rate=args.max_error_rate,
            give_up_after=args.give_up_after,
            source=source,
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
    if args.html:
        from partial_trust.apps.analysis.replay_html import render

        Path(args.html).parent.mkdir(parents=True, exist_ok=True)
        Path(args.html).write_text(render(report), encoding="utf-8")
    return report.exit_code
