"""``partial-trust init [DIR]``: the editable files a new deployment needs, in one place.

An installed package keeps its shipped flag file and policy registry inside site-packages,
read-only and replaced on upgrade; a deployment needs its own copies to edit (``flags
resume``, a new profile) and a directory for its logs. ``init`` writes
``DIR/flags/partial-trust.flagd.json`` (the shipped starter: corridor off, stage 1 ready),
``DIR/llm_policy/llm-policy.yaml`` (the shipped registry) and ``DIR/logs/``, and prints the
``export`` lines that point the service and the CLI at them, so
``eval "$(partial-trust init /srv/partial-trust)"`` configures the current shell.

It never overwrites: an existing file is refused (exit 2, nothing written) unless
``--force``, which replaces the files atomically. Messages go to stderr, the ``export``
lines alone to stdout.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from partial_trust.flags import flagfile
from partial_trust.flags.provider import DEFAULT_FLAGS_FILE, FILE_ENV
from partial_trust.llm_policy import POLICY_FILE

POLICY_ENV = "LLM_POLICY_PATH"
RISK_LOG_ENV = "PARTIAL_TRUST_RISK_LOG_PATH"
AUDIT_ENV = "PARTIAL_TRUST_FLAGS_AUDIT_LOG"
RISK_LOG_NAME = "partial_trust_risk.jsonl"
AUDIT_LOG_NAME = "partial_trust_flag_audit.jsonl"


class InitError(Exception):
    """Nothing was written; the message says why."""


@dataclass(frozen=True, slots=True)
class Layout:
    """Where ``init`` puts each file for a deployment rooted at ``root`` (absolute)."""

    root: Path

    @property
    def flags_file(self) -> Path:
        return self.root / DEFAULT_FLAGS_FILE

    @property
    def policy_file(self) -> Path:
        return self.root / "llm_policy" / POLICY_FILE

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    def exports(self) -> dict[str, Path]:
        return {
            FILE_ENV: self.flags_file,
            POLICY_ENV: self.policy_file,
            RISK_LOG_ENV: self.logs / RISK_LOG_NAME,
            AUDIT_ENV: self.logs / AUDIT_LOG_NAME,
        }


def starter_flags() -> bytes:
    """The shipped flag file, checked to keep the corridor off (a new deployment starts off)."""
    data = flagfile.starter_document()
    doc = flagfile.parse_document(data, flagfile.STARTER_FILE)[1]
    if flagfile.served_value(doc.flags.get(flagfile.ENABLED))[0] is not False:
        raise InitError("the packaged starter flag file does not keep the corridor off")
    return data


def shipped_policy() -> bytes:
    return resources.files("partial_trust.llm_policy").joinpath(POLICY_FILE).read_bytes()


def _write_new(path: Path, data: bytes) -> None:
    """Create ``path`` exclusively (an existing file or symlink there is never followed)."""
    with path.open("xb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def init(root: Path, *, force: bool = False) -> Layout:
    """Write the deployment's files under ``root``; ``InitError``/``OSError`` on failure."""
    layout = Layout(root.absolute())
    files = {layout.flags_file: starter_flags(), layout.policy_file: shipped_policy()}
    existing = [p for p in files if p.exists() or p.is_symlink()]
    if existing and not force:
        names = ", ".join(str(p) for p in existing)
        raise InitError(f"{names}: already exists (--force replaces it); nothing was written")
    for path, data in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        if path in existing:
            flagfile.atomic_write(path, data, mode=0o644)
        else:
            _write_new(path, data)
    layout.logs.mkdir(parents=True, exist_ok=True)
    return layout


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="partial-trust init",
        description="Write an editable flag file (corridor off), the LLM policy file and a "
        "logs/ directory for a new deployment, and print the export lines that use them.",
    )
    parser.add_argument("dir", nargs="?", default=".", type=Path, help="default: the cwd")
    parser.add_argument("--force", action="store_true", help="replace existing files")
    args = parser.parse_args(list(argv))
    try:
        layout = init(args.dir, force=args.force)
    except (InitError, flagfile.FlagFileError) as exc:
        print(f"partial-trust init: refused: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"partial-trust init: {exc}", file=sys.stderr)
        return 2
    print(f"flag file (corridor off): {layout.flags_file}", file=sys.stderr)
    print(f"LLM policy: {layout.policy_file}", file=sys.stderr)
    print(f"logs: {layout.logs}/", file=sys.stderr)
    print(
        "the LLM policy is off as shipped (enabled: false): before any LLM call, set "
        f"`enabled: true` in {layout.policy_file} or export LLM_POLICY_ENABLED=true; "
        "then `partial-trust flags resume` starts the shadow stage (the flag file's mode: "
        "nothing the LLM says is served until `flags set partial-trust-mode canary`)",
        file=sys.stderr,
    )
    print("point the service and the CLI at them:", file=sys.stderr)
    for name, path in layout.exports().items():
        print(f"export {name}={shlex.quote(str(path))}")
    return 0
