"""What ``partial-trust analyze`` and every ``partial-trust gate`` stage share: one-line
errors with the command's exit code, the parser, the risk-log source options, and writing
the JSON and HTML outputs. Split from ``cli`` so each command's module stays small.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from partial_trust.apps.analysis import gate as gate_mod
from partial_trust.apps.analysis import report
from partial_trust.apps.analysis.figures import Figures, from_tally
from partial_trust.apps.analysis.limits import InputError
from partial_trust.apps.analysis.reader import expand, tally_files
from partial_trust.apps.analysis.tally import Window, parse_time

ANALYZE_ERROR = 2
GATE_ERROR = 3


def one_line_errors(prog: str, code: int) -> Callable[[Callable[..., int]], Callable[..., int]]:
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
            print(f"{prog}: {oneline(message)}", file=sys.stderr)
            return code

        return run

    return wrap


def oneline(text: str, limit: int = 400) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


class Parser(argparse.ArgumentParser):
    """argparse with a configurable exit code for usage errors (the gate's is 3, not 2)."""

    error_code = 2

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(self.error_code, f"{self.prog}: error: {message}\n")


def time_arg(text: str) -> str:
    if parse_time(text) is None:
        raise argparse.ArgumentTypeError(f"not an RFC 3339 time: {text!r}")
    return text


def source_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--risk-log",
        nargs="+",
        metavar="PATH",
        help="risk-log files, globs (quote them) or folders; plain, rotated or .gz (default: "
        "the file PARTIAL_TRUST_RISK_LOG_PATH names, when set)",
    )
    p.add_argument("--since", type=time_arg, help="only records at or after this RFC 3339 time")
    p.add_argument("--until", type=time_arg, help="only records before this RFC 3339 time")
    p.add_argument("--jobs", type=int, default=0, help="worker processes (default: automatic)")
    p.add_argument("--no-progress", action="store_true", help="never draw the progress bar")
    p.add_argument("--output-json", metavar="FILE", help="write every figure as JSON ('-': stdout)")
    p.add_argument("--html", metavar="FILE", help="write a self-contained HTML report with charts")


def figures_of(args: argparse.Namespace, give_up_share: float) -> Figures:
    """Figures from the risk log; raises InputError on unreadable input, or once more than
    ``give_up_share`` of its lines are sure to be foreign (not a risk log: stop reading)."""
    paths = expand(args.risk_log)
    since = parse_time(args.since) if args.since else None
    until = parse_time(args.until) if args.until else None
    progress = report.Progress(enabled=False if args.no_progress else None)
    tally = tally_files(
        paths, Window(since, until), jobs=args.jobs, progress=progress, give_up_share=give_up_share
    )
    info = {"files": [str(p) for p in paths], "since": args.since, "until": args.until}
    return from_tally(tally, info)


def write_json(target: str | None, payload: dict[str, Any]) -> None:
    if target:  # strict JSON: a NaN or Infinity is a bug to report, never output
        write_text(target, json.dumps(payload, indent=2, allow_nan=False) + "\n")


def write_text(target: str, text: str) -> None:
    if target == "-":
        sys.stdout.write(text)
        return
    Path(target).parent.mkdir(parents=True, exist_ok=True)
    Path(target).write_text(text, encoding="utf-8")


def criterion_json(c: gate_mod.Criterion) -> dict[str, Any]:
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
