"""``partial-trust llm-sim``: run the fault-injecting OpenAI-compatible double under uvicorn."""

from __future__ import annotations

import argparse
import sys

from pydantic import ValidationError

from partial_trust.apps.llm_sim.config import FAULT_MODES, Mode, SimConfig

#: One line per fault mode for ``--help``: what the client observes.
FAULT_HELP: dict[Mode, str] = {
    Mode.ERROR: "HTTP 500 or 503 (503 with Retry-After) with an OpenAI error body",
    Mode.HANG: "no answer at all until the client disconnects (or --hang-max-s)",
    Mode.DRIP: "headers at once, then the body a few bytes every --drip-interval-ms",
    Mode.MALFORMED: "content is not one JSON object: truncated, prose or ```json fenced",
    Mode.WRONG_INTENT: "the candidate's intent is not the baseline's",
    Mode.EXTRA_FIELDS: "extra keys in the candidate and in an item",
    Mode.FOREIGN_LIST: "list_id is not among the request's lists",
    Mode.LOW_CONFIDENCE: "confidence is --low-confidence",
    Mode.NO_CONFIDENCE: "confidence is omitted",
    Mode.OVERSIZED: "a valid candidate padded with --oversized-bytes of whitespace",
    Mode.INVALID_UTF8: "the response body contains bytes that are not UTF-8",
    Mode.INJECTION: "an item name carries prompt injection, markup or control characters",
    Mode.EMPTY_ITEMS: "the candidate lists no items",
    Mode.MANY_ITEMS: "the candidate lists 50 extra items",
    Mode.DISAGREE: "a valid, confident candidate that differs from the baseline (another of "
    "the command's lists that the text names, else one item fewer): accepted, so it shows up "
    "as disagreement",
}

DESCRIPTION = """\
An OpenAI-compatible LLM double for the shopping corridor. POST /v1/chat/completions (or
/chat/completions) with a partial-trust chat request answers the baseline router's decision as
the candidate, unless a fault is injected. Each request gets at most one fault mode: the rates
are disjoint shares of requests (they must sum to <= 1) drawn from random.Random(--seed), so a
run is reproducible. Control API: GET /sim/stats, GET|POST /sim/config (live changes, same
names as the options with underscores; a "seed" restarts the draws), POST /sim/reset (zero the
counters, restart the draws), GET /health."""

EPILOG = """\
examples:
  partial-trust llm-sim --latency-ms 20 --latency-jitter-ms 10 --error-rate 0.05 --seed 42
  curl -X POST localhost:8081/sim/config -d '{"force": "hang"}'
  curl localhost:8081/sim/stats"""


class _Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults shown, description and examples kept as written."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="partial-trust llm-sim",
        description=DESCRIPTION,
        formatter_class=_Formatter,
        epilog=EPILOG,
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind")
    parser.add_argument("--port", type=int, default=8081, help="port to bind")
    parser.add_argument("--seed", type=int, default=0, help="seed of the fault draws")
    parser.add_argument(
        "--log-level", default="warning", choices=["critical", "error", "warning", "info", "debug"]
    )
    _add_fault_options(parser)
    _add_knobs(parser)
    return parser


def _add_fault_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("faults (share of requests, 0..1)")
    for mode in FAULT_MODES:
        flag = "--" + mode.value.replace("_", "-") + "-rate"
        group.add_argument(flag, type=float, default=0.0, metavar="P", help=FAULT_HELP[mode])
    group.add_argument(
        "--force",
        choices=[m.value for m in Mode],
        default=None,
        metavar="MODE",
        help="give every request MODE, ignoring the rates ('none': always clean); one of "
        + ", ".join(m.value for m in Mode),
    )


def _add_knobs(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("latency and fault details")
    group.add_argument("--latency-ms", type=float, default=0.0, help="fixed delay before answers")
    group.add_argument(
        "--latency-jitter-ms",
        type=float,
        default=0.0,
        help="plus a uniform random delay in [0, this]",
    )
    group.add_argument("--confidence", type=float, default=0.9, help="confidence of good answers")
    group.add_argument(
        "--low-confidence", type=float, default=0.2, help="confidence of low-confidence answers"
    )
    group.add_argument("--drip-interval-ms", type=float, default=50.0, help="pause between chunks")
    group.add_argument("--drip-chunk-bytes", type=int, default=1, help="bytes per drip chunk")
    group.add_argument(
        "--hang-max-s", type=float, default=600.0, help="seconds after which a hang answers 504"
    )
    group.add_argument(
        "--oversized-bytes",
        type=int,
        default=10 * 1024 * 1024,
        help="whitespace added to oversized answers",
    )


def config_from_args(args: argparse.Namespace) -> SimConfig:
    """The validated config the options describe (raises ``ValidationError``)."""
    values = {
        name: value
        for name, value in vars(args).items()
        if name in SimConfig.model_fields and name != "force"
    }
    force = Mode(args.force) if args.force is not None else None
    return SimConfig(force=force, **values)


def main(argv: list[str] | None = None) -> int:
    """Parse options, then serve until interrupted (SIGINT/SIGTERM end it cleanly)."""
    parser = build_parser()
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        config = config_from_args(args)
    except ValidationError as exc:
        parser.error(str(exc))
    import uvicorn

    from partial_trust.apps.llm_sim.app import create_app

    app = create_app(config)
    print(f"llm-sim on http://{args.host}:{args.port} (seed {config.seed})", file=sys.stderr)
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        timeout_graceful_shutdown=1,
    )
    return 0
