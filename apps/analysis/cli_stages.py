"""``partial-trust gate --stage shadow`` and ``--stage advisory``, and the review-store
options ``analyze`` shares with the advisory gate (the reviewers' override rate).

Split from ``cli``: the stages that are not a rollout stage's numbers (``gate_mod.STAGES``)
each have their own evaluation (``shadow_gate``, ``advisory_gate``) and JSON payload.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from partial_trust import thresholds
from partial_trust.apps.analysis import advisory_gate, durations, html, report, shadow_gate
from partial_trust.apps.analysis import gate as gate_mod
from partial_trust.apps.analysis.cli_common import criterion_json, write_json, write_text
from partial_trust.apps.analysis.figures import Figures
from partial_trust.apps.analysis.limits import InputError
from partial_trust.apps.analysis.reader import expand
from partial_trust.apps.analysis.tally import parse_time
from partial_trust.corridors import CORRIDOR_ALLOWLIST


def print_verdict(
    args: argparse.Namespace,
    fig: Figures,
    stage: str,
    verdict: gate_mod.Verdict,
    criteria: list[gate_mod.Criterion],
    manual: tuple[str, ...],
) -> str | None:
    """Why the figures cannot be judged (said on stderr), else the verdict table on stdout
    unless JSON goes there: the same first lines for every stage that is not a rollout's."""
    why = gate_mod.unevaluable(fig)
    if why is not None:
        print(f"partial-trust gate: cannot evaluate: {why}", file=sys.stderr)
    elif args.output_json != "-":
        stab = gate_mod.Stability((), None, None)
        print(report.gate_table(stage, verdict, criteria, stab, manual))
    return why


def shadow_gate_main(args: argparse.Namespace, fig: Figures) -> int:
    """``gate --stage shadow`` (``shadow_gate``): agreement, its records, errors, duration."""
    since = parse_time(args.since) if args.since else None
    until = parse_time(args.until) if args.until else None
    risk_logs = expand(args.risk_log) if args.risk_log else ()
    duration = durations.shadow_duration(since=since, risk_logs=risk_logs, until=until)
    data_verdict, criteria = shadow_gate.evaluate(fig, duration)
    verdict = gate_mod.held(data_verdict, duration)
    why = print_verdict(args, fig, "shadow", verdict, criteria, shadow_gate.MANUAL)
    if why is None and args.output_json != "-":
        label = "HOLD" if verdict is gate_mod.Verdict.HOLD else "duration"
        print(f"{label}: {duration.summary()} (start from: {duration.source})")
    payload = {
        "stage": "shadow",
        "next_stage": thresholds.SHADOW.next_stage,
        "verdict": verdict.value,
        "exit_code": verdict.exit_code,
        "data_verdict": data_verdict.value,
        "agreement_line": shadow_gate.agreement_line(duration),
        "duration": duration.to_json(),
        "cannot_evaluate": why,
        "criteria": [criterion_json(c) for c in criteria],
        "manual_checks": list(shadow_gate.MANUAL),
        "figures": fig.to_json(),
    }
    write_json(args.output_json, payload)
    if args.html:
        write_text(args.html, html.render(fig, [("shadow", verdict, criteria)]))
    return verdict.exit_code


def review_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--review-store",
        metavar="PATH",
        help="the advisory review store (SQLite): adds the reviewers' override rate (no key "
        "needed: only verdicts and categories are read)",
    )
    p.add_argument(
        "--review-corridor", metavar="NAME", help="only this corridor's verdicts (default: all)"
    )


def review_override(args: argparse.Namespace) -> dict[str, Any] | None:
    if not args.review_store:
        return None
    try:
        figures: dict[str, Any] = advisory_gate.override_of(
            args.review_store, args.review_corridor, args.since, args.until
        )
    except ValueError as exc:
        raise InputError(str(exc)) from None
    return figures


def _class_of(corridor: str | None) -> str:
    """The allowlist's class for the reviewed corridor; ``read`` (the strictest line) when
    none is named or the name is not allow-listed."""
    found = CORRIDOR_ALLOWLIST.get(corridor) if corridor else None
    return found.value if found is not None else "read"


def advisory_gate_main(p: argparse.ArgumentParser, args: argparse.Namespace, fig: Figures) -> int:
    """``gate --stage advisory`` (``advisory_gate``): the override rate, its verdict count."""
    override = review_override(args)
    if override is None:
        p.error("--stage advisory needs --review-store PATH")
    risk_class = args.risk_class or _class_of(args.review_corridor)
    verdict, criteria = advisory_gate.evaluate(fig, override, risk_class)
    why = print_verdict(args, fig, "advisory", verdict, criteria, advisory_gate.MANUAL)
    payload = {
        "stage": "advisory",
        "risk_class": risk_class,
        "verdict": verdict.value,
        "exit_code": verdict.exit_code,
        "cannot_evaluate": why,
        "override": override,
        "criteria": [criterion_json(c) for c in criteria],
        "manual_checks": list(advisory_gate.MANUAL),
    }
    write_json(args.output_json, payload)
    if args.html:
        page = html.render(fig, [("advisory", verdict, criteria)])
        write_text(
            args.html, page.replace("</body>", advisory_gate.override_html(override) + "</body>", 1)
        )
    return verdict.exit_code
