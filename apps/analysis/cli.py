"""``partial-trust analyze`` and ``partial-trust gate`` (and the runbook's script shim).

Exit codes. analyze: 0 report written; 1 ``--self-test`` failed or ``--strict`` found odd
lines; 2 could not analyze (bad arguments, an unreadable, non-regular or oversized input, or
an internal error). gate: 0 GO, 1 NO-GO (hold), 2 ROLLBACK, 3 the gate could not be
evaluated (bad arguments, such an input, a log that is not evidence: see ``gate.unevaluable``,
or an internal error): 2 is taken by ROLLBACK, and an operator's typo must never read as
"roll back". HOLD (the data say GO, the stage's minimum duration is not met) exits 1 too.
Every failure is one line on stderr, never a traceback, whatever the input.

The parts every command shares are in ``cli_common``; ``gate --stage shadow|advisory`` and
the review-store options in ``cli_stages``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from partial_trust import thresholds
from partial_trust.apps.analysis import (
    advisory_gate,
    durations,
    html,
    report,
    selftest,
)
from partial_trust.apps.analysis import gate as gate_mod
from partial_trust.apps.analysis.cli_common import (
    ANALYZE_ERROR,
    GATE_ERROR,
    Parser,
    criterion_json,
    figures_of,
    one_line_errors,
    source_args,
    write_json,
    write_text,
)
from partial_trust.apps.analysis.cli_stages import (
    advisory_gate_main,
    review_args,
    review_override,
    shadow_gate_main,
)
from partial_trust.apps.analysis.figures import Figures
from partial_trust.apps.analysis.limits import (
    ANALYZE_GIVE_UP_SHARE,
    MAX_FOREIGN_SHARE,
    InputError,
)
from partial_trust.apps.analysis.reader import expand
from partial_trust.apps.analysis.stage_verdicts import (
    Clock,
    StageVerdict,
    every_stage,
    notes,
    stage_verdict,
)
from partial_trust.apps.analysis.tally import parse_time
from partial_trust.environment import RISK_LOG_ENV, Environment

__all__ = ["ANALYZE_ERROR", "GATE_ERROR", "analyze_main", "gate_main", "replay_main"]


@one_line_errors("partial-trust analyze", ANALYZE_ERROR)
def analyze_main(argv: Sequence[str]) -> int:
    p = Parser(
        prog="partial-trust analyze",
        description="Report the runbook's figures from partial-trust risk logs (streaming).",
        epilog=report.DEFINITIONS + "\n\nexit: 0 ok; 1 self-test failed or --strict found "
        "foreign/torn lines; 2 could not analyze (bad arguments; a missing, unreadable, "
        "non-regular or oversized input; an internal error), with one line on stderr",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    source_args(p)
    p.add_argument("--self-test", action="store_true", help="check against built-in fixtures")
    review_args(p)
    p.add_argument("--strict", action="store_true", help="exit 1 if any line was not a record")
    audit_arg(p)  # --html shows each stage's verdict as the gate gives it, clock included
    args = p.parse_args(list(argv))
    if args.self_test:
        return 0 if selftest.run() else 1
    if not args.risk_log and not _risk_log_from_env(args):
        p.error(f"--risk-log is required (or --self-test, or {RISK_LOG_ENV} set)")
    fig = figures_of(args, ANALYZE_GIVE_UP_SHARE)
    override = review_override(args)
    if args.output_json != "-":
        print(report.analysis_table(fig))
        if override is not None:
            print(f"override_rate: {override['override_rate']} {override['by_category']}")
    write_json(args.output_json, {**fig.to_json(), **({"override": override} if override else {})})
    if args.html:
        staged = _every_stage(args, fig)  # the gate's verdicts: GO held until the duration
        page = html.render(fig, [v.gate for v in staged], notes=notes(staged))
        if override is not None:
            page = page.replace("</body>", advisory_gate.override_html(override) + "</body>", 1)
        write_text(args.html, page)
    odd = fig.input.get("foreign_lines", 0) + fig.input.get("torn_lines", 0)
    if odd:
        share = fig.input.get("foreign_share", 0.0)
        print(
            f"warning: {odd} line(s) ({share:.2%}) were not valid risk records (see the table)",
            file=sys.stderr,
        )
    return 1 if args.strict and odd else 0


@one_line_errors("partial-trust gate", GATE_ERROR)
def gate_main(argv: Sequence[str]) -> int:
    p = Parser(
        prog="partial-trust gate",
        description="The runbook's go / no-go / rollback decision for one rollout stage.",
        epilog=(gate_mod.__doc__ or "")
        + "\n"
        + (durations.__doc__ or "")
        + "\nexit: 0 GO, 1 NO-GO or HOLD (hold), 2 ROLLBACK, 3 could not evaluate (one line on "
        "stderr says why)\n\n" + report.DEFINITIONS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.error_code = GATE_ERROR
    p.add_argument(
        "--stage",
        choices=("shadow", "advisory", "1", "2", "3"),
        required=True,
        help="shadow: may the corridor leave shadow for stage 1 (agreement; see shadow_gate); "
        "advisory: the reviewers' override rate (see advisory_gate; needs --review-store)",
    )
    source_args(p)
    review_args(p)
    p.add_argument(
        "--risk-class",
        choices=thresholds.RISK_CLASSES,
        default=None,
        help="with --stage advisory: the corridor's risk class (default: the allowlist's class "
        "of --review-corridor, else read, the strictest line)",
    )
    p.add_argument("--window-hours", type=int, default=24, help="stability window (default 24)")
    p.add_argument(
        "--min-window-sampled",
        type=int,
        default=50,
        help="sampled records a stability window needs before it is judged (default 50)",
    )
    p.add_argument(
        "--min-sampled", type=int, help="raise (never lower) the stage's minimum sampled count"
    )
    p.add_argument(
        "--prometheus",
        metavar="URL",
        help="judge Prometheus' counters instead of the risk log (see the README: p95 is "
        "histogram-interpolated there)",
    )
    p.add_argument(
        "--window", default="24h", help="with --prometheus: the look-back window (default 24h)"
    )
    p.add_argument(
        "--corridor", default="add_shopping_item", help="with --prometheus: the corridor label"
    )
    audit_arg(p)
    args = p.parse_args(list(argv))
    if not args.risk_log and not args.prometheus:
        _risk_log_from_env(args)
    if bool(args.risk_log) == bool(args.prometheus):
        p.error(
            "give exactly one source: --risk-log PATH ... or --prometheus URL "
            f"(or set {RISK_LOG_ENV})"
        )
    fig = _prometheus_figures(p, args) if args.prometheus else figures_of(args, MAX_FOREIGN_SHARE)
    if args.stage == "shadow":
        return shadow_gate_main(args, fig)
    if args.stage == "advisory":
        return advisory_gate_main(p, args, fig)
    args.stage = int(args.stage)
    try:
        sv = stage_verdict(
            fig,
            args.stage,
            _clock(args),
            window_hours=args.window_hours,
            min_window_sampled=args.min_window_sampled,
            min_sampled=args.min_sampled,
        )
    except durations.DurationError as exc:
        raise InputError(str(exc)) from exc
    verdict, criteria = sv.verdict, sv.criteria
    manual = gate_mod.STAGES[args.stage].manual
    why = gate_mod.unevaluable(fig)
    if why is not None:
        print(f"partial-trust gate: cannot evaluate: {why}", file=sys.stderr)
    elif args.output_json != "-":
        print(report.gate_table(args.stage, verdict, criteria, sv.stability, manual))
        print(sv.duration_line())
    payload = {
        **sv.to_json(),
        "cannot_evaluate": why,
        "criteria": [criterion_json(c) for c in criteria],
        "manual_checks": list(manual),
        "stability_windows": [
            {"first_hour": w[0], "sampled": w[1], "accepted_llm": w[2]}
            for w in sv.stability.windows
        ],
        "figures": fig.to_json(),
    }
    write_json(args.output_json, payload)
    if args.html:
        write_text(args.html, html.render(fig, [sv.gate], notes=notes([sv])))
    return verdict.exit_code


def _risk_log_from_env(args: argparse.Namespace) -> bool:
    """No ``--risk-log``: the service's own, when ``PARTIAL_TRUST_RISK_LOG_PATH`` is set (as
    ``partial-trust init`` tells to export it), named on stderr. Only the live file: rotated
    ones are read with ``--risk-log`` and a glob or the folder."""
    path = Environment.from_os().value(RISK_LOG_ENV)  # a CLI entry
    if not path:
        return False
    print(f"reading {RISK_LOG_ENV}: {path}", file=sys.stderr)
    args.risk_log = [path]
    return True


def audit_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--audit-log",
        metavar="PATH",
        help="the flag audit log that says when the stage's sample rate was set (default: "
        f"{durations.AUDIT_ENV} or {durations.DEFAULT_AUDIT_LOG}); --since overrides it",
    )


def _clock(args: argparse.Namespace) -> Clock:
    """Where each stage's clock starts (``stage_verdicts.Clock``): ``--since`` wins, then
    ``--audit-log`` (default: the environment's), then the risk logs."""
    audit = (
        Path(args.audit_log)
        if args.audit_log
        else durations.default_audit_log(Environment.from_os())
    )  # a CLI entry
    return Clock(
        since=parse_time(args.since) if args.since else None,
        until=parse_time(args.until) if args.until else None,
        audit_log=audit,
        risk_logs=tuple(expand(args.risk_log)) if args.risk_log else (),
    )


def _every_stage(args: argparse.Namespace, fig: Figures) -> list[StageVerdict]:
    try:
        return every_stage(fig, _clock(args))
    except durations.DurationError as exc:
        raise InputError(str(exc)) from exc


def _prometheus_figures(p: argparse.ArgumentParser, args: argparse.Namespace) -> Figures:
    # Imported here: it needs httpx, which a bare ``python3 scripts/...`` may not have.
    from partial_trust.apps.analysis import prometheus

    if args.since or args.until:
        p.error("--since/--until apply to --risk-log; use --window with --prometheus")
    try:
        window_s = prometheus.parse_window(args.window)
    except ValueError as exc:
        p.error(str(exc))
    try:
        return prometheus.fetch(args.prometheus, window_s=window_s, corridor=args.corridor)
    except prometheus.PrometheusError as exc:
        raise InputError(str(exc)) from exc


def replay_main(argv: Sequence[str]) -> int:
    """``partial-trust replay``: baseline vs candidate path over a corpus (seed-002 gates)."""
    from partial_trust.apps.analysis import replay

    return replay.main(argv)
