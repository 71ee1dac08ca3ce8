"""``partial-trust review``: ``export --out DIR`` (a labelled replay corpus of the judged
cases) and ``keygen`` (a new ``PARTIAL_TRUST_REVIEW_KEY``). The store and key come from
``PARTIAL_TRUST_REVIEW_STORE`` / ``PARTIAL_TRUST_REVIEW_KEY`` (``--store`` overrides the path);
the key never goes on a command line, where other users of the machine could read it."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from partial_trust.environment import Environment


def main(argv: Sequence[str], env: Environment | None = None) -> int:
    env = Environment.from_os() if env is None else env
    p = argparse.ArgumentParser(prog="partial-trust review", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    ex = sub.add_parser("export", help="write the judged cases as a labelled replay corpus")
    ex.add_argument("--out", required=True, type=Path, help="the folder to write into")
    ex.add_argument("--store", help="the store file (default: PARTIAL_TRUST_REVIEW_STORE)")
    sub.add_parser("keygen", help="print a new PARTIAL_TRUST_REVIEW_KEY")
    args = p.parse_args(list(argv))
    if args.command == "keygen":
        from cryptography.fernet import Fernet

        print(Fernet.generate_key().decode())
        return 0

    from partial_trust.apps.review.export import export
    from partial_trust.middleware.review import ENV_KEY, ENV_STORE, ReviewSettings
    from partial_trust.middleware.review_store import ReviewStoreError

    try:
        if args.store:
            env = Environment.from_mapping({**env.variables, ENV_STORE: args.store})
        settings = ReviewSettings.from_env(env)
    except ValueError as exc:
        p.error(str(exc))
    if settings is None:
        p.error("no store: give --store PATH or set PARTIAL_TRUST_REVIEW_STORE")
    if not os.path.isfile(settings.path):
        print(f"partial-trust review: {settings.path}: no such store", file=sys.stderr)
        return 2
    try:
        target, count = export(settings, args.out)
    except ReviewStoreError as exc:
        print(f"partial-trust review: {exc} ({ENV_KEY})", file=sys.stderr)
        return 2
    print(f"wrote {count} judged case(s) to {target}")
    return 0
