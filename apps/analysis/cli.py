"""``partial-trust analyze`` and ``partial-trust gate`` (and the runbook's script shim).

Exit codes. analyze: 0 report written; 1 ``--self-test`` failed or ``--strict`` found odd
lines; 2 could not analyze (bad arguments, an unreadable, non-regular or oversized input, or
an internal error). gate: 0 GO, 1 NO-GO (hold), 2 ROLLBACK, 3 the gate could not be
evaluated (bad arguments, such an input, a log that is not evidence: see ``gate.unevaluable``,
or an internal error): 2 is taken by ROLLBACK, and an operator's typo must never read as
"roll back". HOLD (the data say GO, the stage's minimum duration is not met) exits 1 too.
Every failure is one line on stderr, never a traceback, whatever the input.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from partial_trust import thresholds
from partial_trust.apps.analysis import (
    advisory_gate,
    durations,
    html,
    report,
    selftest,
    shadow_gate,
)
from partial_trust.apps.analysis import gate as gate_mod
from partial_trust.apps.analysis.figures import Figures, from_tally
from partial_trust.apps.analysis.limits import InputError
from partial_trust.apps.analysis.reader import expand, tally_files
from partial_trust.apps.analysis.tally import Window, parse_time
from partial_trust.environment import Environment

ANALYZE_ERROR = 2
GATE_ERROR = 3


def _one_line_errors(prog: str, code: int) -> Callable[[Callable[..., int]], Callable[..., int]]:
    """Any failure of ``main`` becomes one line on stderr and ``code``: never a traceback.

    An input error names the input; anything else is a bug, reported by type and message so
    that an operator can paste it into an issue. argparse's own exits pass through.
    """

    def wrap(main: Callable[..., int]) -> Callable[..., int]:
        @functools.wraps(main)
        def run(argv: Sequence[str], *a: Any, **kw: Any) -> int:
            try:
                return main(argv, *a, **kw)
            except InputError as exc:
                message = str(exc)
            except KeyboardInterrupt:
                message = "interrupted"
            except BrokenPipeError:
                return code  # the reader went away (``| head``): nothing left to tell it
            except Exception as exc:
                message = f"internal error: {type(exc).__name__}: {exc}"
            print(f"{prog}: {_oneline(message)}", file=sys.stderr)
            return code

        return run

    return wrap


def _oneline(text: str, limit: int = 400) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


class _Parser(argparse.ArgumentParser):
    """argparse with a configurable exit code for usage errors (the gate's is 3, not 2)."""

    error_code = 2

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(self.error_code, f"{self.prog}: error: {message}\n")


def _time(text: str) -> str:
    if parse_time(text) is None:
        raise argparse.ArgumentTypeError(f"not an RFC 3339 time: {text!r}")
    return text


def _source_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--risk-log",
        nargs="+",
        metavar="PATH",
        help="risk-log files, globs (quote them) or folders; plain, rotated or .gz",
    )
    p.add_argument("--since", type=_time, help="only records at or after this RFC 3339 time")
    p.add_argument("--until", type=_time, help="only records before this RFC 3339 time")
    p.add_argument("--jobs", type=int, default=0, help="worker processes (default: automatic)")
    p.add_argument("--no-progress", action="store_true", help="never draw the progress bar")
    p.add_argument("--output-json", metavar="FILE", help="write every figure as JSON ('-': stdout)")
    p.add_argument("--html", metavar="FILE", help="write a self-contained HTML report with charts")


def _figures(args: argparse.Namespace) -> Figures:
    """Figures from the risk log; raises InputError on unreadable input."""
    paths = expand(args.risk_log)
    since = parse_time(args.since) if args.since else None
    until = parse_time(args.until) if args.until else None
    progress = report.Progress(enabled=False if args.no_progress else None)
    tally = tally_files(paths, Window(since, until), jobs=args.jobs, progress=progress)
    info = {"files": [str(p) for p in paths], "since": args.since, "until": args.until}
    return from_tally(tally, info)


def _write_json(target: str | None, payload: dict[str, Any]) -> None:
    if target:  # strict JSON: a NaN or Infinity is a bug to report, never output
        _write_text(target, json.dumps(payload, indent=2, allow_nan=False) + "\n")


def _write_text(target: str, text: str) -> None:
    if target == "-":
        sys.stdout.write(text)
        return
    Path(target).parent.mkdir(parents=True, exist_ok=True)
    Path(target).write_text(text, encoding="utf-8")


@_one_line_errors("partial-trust analyze", ANALYZE_ERROR)
def analyze_main(argv: Sequence[str]) -> int:
    p = _Parser(
        prog="partial-trust analyze",
        description="Report the runbook's figures from partial-trust risk logs (streaming).",
        epilog=report.DEFINITIONS + "\n\nexit: 0 ok; 1 self-test failed or --strict found "
        "foreign/torn lines; 2 could not analyze (bad arguments; a missing, unreadable, "
        "non-regular or oversized input; an internal error), with one line on stderr",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _source_args(p)
    p.add_argument("--self-test", action="store_true", help="check against built-in fixtures")
    _review_args(p)
    p.add_argument("--strict", action="store_true", help="exit 1 if any line was not a record")
    args = p.parse_args(list(argv))
    if args.self_test:
        return 0 if selftest.run() else 1
    if not args.risk_log:
        p.error("--risk-log is required (or --self-test)")
    fig = _figures(args)
    override = _override(args)
    if args.output_json != "-":
        print(report.analysis_table(fig))
        if override is not None:
            print(f"override_rate: {override['override_rate']} {override['by_category']}")
    _write_json(args.output_json, {**fig.to_json(), **({"override": override} if override else {})})
    if args.html:
        gates = [(s, *gate_mod.evaluate(fig, s)[:2]) for s in sorted(gate_mod.STAGES)]
        page = html.render(fig, gates)
        if override is not None:
            page = page.replace("</body>", advisory_gate.override_html(override) + "</body>", 1)
        _write_text(args.html, page)
    odd = fig.input.get("foreign_lines", 0) + fig.input.get("torn_lines", 0)
    if odd:
        share = fig.input.get("foreign_share", 0.0)
        print(
            f"warning: {odd} line(s) ({share:.2%}) were not valid risk records (see the table)",
            file=sys.stderr,
        )
    return 1 if args.strict and odd else 0


@_one_line_errors("partial-trust gate", GATE_ERROR)
def gate_main(argv: Sequence[str]) -> int:
    p = _Parser(
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
    _source_args(p)
    _review_args(p)
    p.add_argument(
        "--risk-class",
        choices=thresholds.RISK_CLASSES,
        default="read",
        help="with --stage advisory: the corridor's risk class (default read: the strictest line)",
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
    p.add_argument(
        "--audit-log",
        metavar="PATH",
        help="the flag audit log that says when the stage's sample rate was set (default: "
        f"{durations.AUDIT_ENV} or {durations.DEFAULT_AUDIT_LOG}); --since overrides it",
    )
    args = p.parse_args(list(argv))
    if bool(args.risk_log) == bool(args.prometheus):
        p.error("give exactly one source: --risk-log PATH ... or --prometheus URL")
    fig = _prometheus_figures(p, args) if args.prometheus else _figures(args)
    if args.stage == "shadow":
        return _shadow_gate(args, fig)
    if args.stage == "advisory":
        return _advisory_gate(p, args, fig)
    args.stage = int(args.stage)
    data_verdict, criteria, stab = gate_mod.evaluate(
        fig,
        args.stage,
        window_hours=args.window_hours,
        min_window_sampled=args.min_window_sampled,
        min_sampled=args.min_sampled,
    )
    duration = _duration(args)
    verdict = gate_mod.held(data_verdict, duration)
    manual = gate_mod.STAGES[args.stage].manual
    why = gate_mod.unevaluable(fig)
    if why is not None:
        print(f"partial-trust gate: cannot evaluate: {why}", file=sys.stderr)
    elif args.output_json != "-":
        print(report.gate_table(args.stage, verdict, criteria, stab, manual))
        label = "HOLD" if verdict is gate_mod.Verdict.HOLD else "duration"
        print(f"{label}: {duration.summary()} (start from: {duration.source})")
    payload = {
        "stage": args.stage,
        "verdict": verdict.value,
        "exit_code": verdict.exit_code,
        "data_verdict": data_verdict.value,
        "duration": duration.to_json(),
        "cannot_evaluate": why,
        "criteria": [_criterion_json(c) for c in criteria],
        "manual_checks": list(manual),
        "stability_windows": [
            {"first_hour": w[0], "sampled": w[1], "accepted_llm": w[2]} for w in stab.windows
        ],
        "figures": fig.to_json(),
    }
    _write_json(args.output_json, payload)
    if args.html:
        _write_text(args.html, html.render(fig, [(args.stage, verdict, criteria)]))
    return verdict.exit_code


def _shadow_gate(args: argparse.Namespace, fig: Figures) -> int:
    """``gate --stage shadow`` (``shadow_gate``): agreement, its records, errors, duration."""
    since = parse_time(args.since) if args.since else None
    until = parse_time(args.until) if args.until else None
    risk_logs = expand(args.risk_log) if args.risk_log else ()
    duration = durations.shadow_duration(since=since, risk_logs=risk_logs, until=until)
    data_verdict, criteria = shadow_gate.evaluate(fig, duration)
    verdict = gate_mod.held(data_verdict, duration)
    why = gate_mod.unevaluable(fig)
    if why is not None:
        print(f"partial-trust gate: cannot evaluate: {why}", file=sys.stderr)
    elif args.output_json != "-":
        stab = gate_mod.Stability((), None, None)
        print(report.gate_table("shadow", verdict, criteria, stab, shadow_gate.MANUAL))
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
        "criteria": [_criterion_json(c) for c in criteria],
        "manual_checks": list(shadow_gate.MANUAL),
        "figures": fig.to_json(),
    }
    _write_json(args.output_json, payload)
    if args.html:
        _write_text(args.html, html.render(fig, [("shadow", verdict, criteria)]))
    return verdict.exit_code


def _review_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--review-store",
        metavar="PATH",
        help="the advisory review store (SQLite): adds the reviewers' override rate (no key "
        "needed: only verdicts and categories are read)",
    )
    p.add_argument(
        "--review-corridor", metavar="NAME", help="only this corridor's verdicts (default: all)"
    )


def _override(args: argparse.Namespace) -> dict[str, Any] | None:
    if not args.review_store:
        return None
    try:
        figures: dict[str, Any] = advisory_gate.override_of(
            args.review_store, args.review_corridor, args.since, args.until
        )
    except ValueError as exc:
        raise InputError(str(exc)) from None
    return figures


def _advisory_gate(p: argparse.ArgumentParser, args: argparse.Namespace, fig: Figures) -> int:
    """``gate --stage advisory`` (``advisory_gate``): the override rate, its verdict count."""
    override = _override(args)
    if override is None:
        p.error("--stage advisory needs --review-store PATH")
    verdict, criteria = advisory_gate.evaluate(fig, override, args.risk_class)
    why = gate_mod.unevaluable(fig)
    if why is not None:
        print(f"partial-trust gate: cannot evaluate: {why}", file=sys.stderr)
    elif args.output_json != "-":
        stab = gate_mod.Stability((), None, None)
        print(report.gate_table("advisory", verdict, criteria, stab, advisory_gate.MANUAL))
    payload = {
        "stage": "advisory",
        "risk_class": args.risk_class,
        "verdict": verdict.value,
        "exit_code": verdict.exit_code,
        "cannot_evaluate": why,
        "override": override,
        "criteria": [_criterion_json(c) for c in criteria],
        "manual_checks": list(advisory_gate.MANUAL),
    }
    _write_json(args.output_json, payload)
    if args.html:
        page = html.render(fig, [("advisory", verdict, criteria)])
        _write_text(
            args.html, page.replace("</body>", advisory_gate.override_html(override) + "</body>", 1)
        )
    return verdict.exit_code


def _duration(args: argparse.Namespace) -> durations.Duration:
    """How long the stage has run at its rate (``durations``); ``--since`` wins."""
    since = parse_time(args.since) if args.since else None
    until = parse_time(args.until) if args.until else None
    audit = (
        Path(args.audit_log)
        if args.audit_log
        else durations.default_audit_log(Environment.from_os())
    )  # a CLI entry
    try:
        return durations.stage_duration(
            args.stage,
            since=since,
            audit_log=audit,
            risk_logs=expand(args.risk_log) if args.risk_log else (),
            until=until,
        )
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


def _criterion_json(c: gate_mod.Criterion) -> dict[str, Any]:
    b = c.bound
    return {
        "kind": c.kind,
        "criterion": c.text,
        "figure": b.figure,
        "op": b.op,
        "limit": b.limit,
        "value": c.value,
        "result": c.result.value,
        "detail": c.detail,
    }


def replay_main(argv: Sequence[str]) -> int:
    """``partial-trust replay``: baseline vs candidate path over a corpus (seed-002 gates)."""
    from partial_trust.apps.analysis import replay

    return replay.main(argv)
