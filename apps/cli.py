"""``partial-trust``: one entry point, each subcommand in the module that owns it.

Subcommands are imported only when run, so ``partial-trust flags kill`` during an incident
does not pay for importing the web server, and a missing optional extra breaks only the
subcommand that needs it.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Sequence
from importlib import metadata

DISTRIBUTION = "partial-trust-corridor"
#: subcommand -> (module, function, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str, str]] = {
    "init": (
        "partial_trust.apps.init",
        "main",
        "write editable flag and policy files for a deployment",
    ),
    "serve": (
        "partial_trust.apps.reference.serve",
        "main",
        "run the reference app with the corridor",
    ),
    "llm-sim": ("partial_trust.apps.llm_sim", "main", "run the fault-injecting LLM double"),
    "flags": (
        "partial_trust.apps.flags_cli",
        "main",
        "show, set, kill or resume the corridor's flags",
    ),
    "analyze": ("partial_trust.apps.analysis.cli", "analyze_main", "report on risk logs"),
    "gate": ("partial_trust.apps.analysis.cli", "gate_main", "the runbook's go/no-go for a stage"),
    "replay": ("partial_trust.apps.analysis.cli", "replay_main", "offline disagreement check"),
    "review": (
        "partial_trust.apps.review.cli",
        "main",
        "export judged review cases as a replay corpus; make a store key",
    ),
    "triage": ("partial_trust.apps.analysis.triage", "main", "collect a triage bundle (.tar.gz)"),
}


def _usage() -> str:
    width = max(len(name) for name in SUBCOMMANDS)
    lines = ["usage: partial-trust [--version] <command> [options]", "", "commands:"]
    lines += [f"  {name:<{width}}  {help_}" for name, (_, _, help_) in SUBCOMMANDS.items()]
    lines += ["", "Run 'partial-trust <command> --help' for a command's options."]
    return "\n".join(lines)


def version() -> str:
    """The installed distribution's version; a bare checkout on ``sys.path`` has none."""
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in {"-h", "--help", "help"}:
        print(_usage())
        return 0
    if args[0] in {"-V", "--version"}:
        print(f"partial-trust {version()}")
        return 0
    name, rest = args[0], args[1:]
    if name not in SUBCOMMANDS:
        print(f"partial-trust: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module_name, func_name, _ = SUBCOMMANDS[name]
    func: Callable[[list[str]], int] = getattr(importlib.import_module(module_name), func_name)
    return func(rest)


if __name__ == "__main__":
    raise SystemExit(main())
