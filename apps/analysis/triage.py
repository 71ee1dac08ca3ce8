"""``partial-trust triage --out FILE.tar.gz``: one archive with what a triage item needs.

Seed 002's "artifacts to retain for triage", for this project: the analyzer's JSON and HTML
over the risk logs, every stage's gate verdict (run in-process on the same figures), the flag
audit log, the effective flags, ``/health`` and a ``/metrics`` snapshot of the app, the alert
state from Prometheus, and the versions. Collected in the moment of an incident, so nothing
is allowed to stop the bundle: a source that is missing, refused or slow is written into
``MANIFEST.json`` as unavailable, with why, and the rest is still collected. Never raw user
data: see ``triage_parts`` for what is left out and why.

``MANIFEST.json`` lists every part (name, bytes, sha256, what it is) and every unavailable
part; the archive is written to a temporary file and renamed, so a half-written bundle is
never left under the requested name.

Exit: 0 the bundle was written (parts may be unavailable: the manifest says which); 2 it was
not (bad options, the output cannot be written).
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import io
import json
import os
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from partial_trust.apps.analysis.triage_parts import (
    Part,
    Unavailable,
    analysis_parts,
    audit_log,
    effective_flags,
    fetch,
    versions,
)
from partial_trust.environment import Environment

PREFIX = "partial-trust-triage"
DEFAULT_TIMEOUT_S = 3.0


def _parser(env: Environment) -> argparse.ArgumentParser:
    from partial_trust.apps.console.audit import default_audit_path
    from partial_trust.flags.provider import flags_file_path

    risk_log = env.risk_log_path
    p = argparse.ArgumentParser(
        prog="partial-trust triage",
        description=(__doc__ or "").split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--out", required=True, metavar="FILE.tar.gz", help="the bundle to write")
    p.add_argument(
        "--risk-log",
        nargs="+",
        default=[risk_log],
        metavar="PATH",
        help="risk logs, globs or folders (default: $PARTIAL_TRUST_RISK_LOG_PATH or %(default)s)",
    )
    p.add_argument(
        "--flags-file",
        default=str(flags_file_path(env)),
        help="flag file (default: $PARTIAL_TRUST_FLAGS_FILE or %(default)s)",
    )
    p.add_argument(
        "--audit-log",
        default=str(default_audit_path(env)),
        help="flag audit log (default: $PARTIAL_TRUST_FLAGS_AUDIT_LOG or %(default)s)",
    )
    p.add_argument("--app-url", help="the app's base URL, for /health and /metrics (optional)")
    p.add_argument("--prometheus", metavar="URL", help="Prometheus, for /api/v1/alerts")
    p.add_argument(
        "--timeout-s",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        help="per HTTP fetch (default %(default)s)",
    )
    return p


def collect(args: argparse.Namespace) -> tuple[list[Part], dict[str, str]]:
    """Every part that could be collected, and why each of the others could not."""
    parts: list[Part] = []
    unavailable: dict[str, str] = {}

    def take(names: Sequence[str], make: Callable[[], Part | list[Part]]) -> None:
        try:
            made = make()
        except Unavailable as exc:
            unavailable.update(dict.fromkeys(names, str(exc)))
            return
        except Exception as exc:  # one broken source must never cost the others
            unavailable.update(dict.fromkeys(names, f"{type(exc).__name__}: {exc}"))
            return
        parts.extend(made if isinstance(made, list) else [made])

    analysis = ["analysis.json", "analysis.html", *(f"gate-stage-{s}.json" for s in (1, 2, 3))]
    take(analysis, lambda: analysis_parts(*_figures(args.risk_log, Path(args.audit_log))))
    take(["flag-audit.jsonl"], lambda: audit_log(Path(args.audit_log)))
    take(["flags.json"], lambda: effective_flags(Path(args.flags_file)))
    t = args.timeout_s
    for name, base, path, what, as_json in (
        ("health.json", args.app_url, "/health", "the app's /health", True),
        ("metrics.txt", args.app_url, "/metrics", "the app's /metrics snapshot", False),
        ("alerts.json", args.prometheus, "/api/v1/alerts", "Prometheus alert state", True),
    ):
        if not base:
            option = "--prometheus" if name == "alerts.json" else "--app-url"
            unavailable[name] = f"not collected: no {option} given"
            continue
        url = base.rstrip("/") + path
        take([name], functools.partial(fetch, url, name, what, t, as_json=as_json))
    take(["versions.json"], versions)
    return parts, unavailable


def _figures(risk_log: Sequence[str], audit: Path) -> tuple[Any, Any]:
    """The figures of ``risk_log`` and the stages' clock (``stage_verdicts.Clock``): the
    audit log when it can be read (else the risk logs alone: the bundle must not fail)."""
    from partial_trust.apps.analysis.durations import DurationError, read_audit
    from partial_trust.apps.analysis.figures import from_tally
    from partial_trust.apps.analysis.limits import InputError
    from partial_trust.apps.analysis.reader import expand, tally_files
    from partial_trust.apps.analysis.stage_verdicts import Clock
    from partial_trust.apps.analysis.tally import Window

    try:
        paths = expand(list(risk_log))
        tally = tally_files(paths, Window(), jobs=1)
    except InputError as exc:
        raise Unavailable(str(exc)) from None
    try:
        read_audit(audit)
        audit_log: Path | None = audit
    except DurationError:
        audit_log = None  # flag-audit.jsonl is then listed as unavailable, with why
    fig = from_tally(tally, {"files": [str(p) for p in paths]})
    return fig, Clock(audit_log=audit_log, risk_logs=tuple(paths))


def manifest(parts: Sequence[Part], unavailable: dict[str, str]) -> bytes:
    payload = {
        "schema": "partial_trust_triage/v1",
        "created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "parts": [
            {
                "name": p.name,
                "bytes": len(p.data),
                "sha256": hashlib.sha256(p.data).hexdigest(),
                "what": p.what,
            }
            for p in parts
        ],
        "unavailable": [{"name": k, "why": v} for k, v in sorted(unavailable.items())],
    }
    return (json.dumps(payload, indent=2, ensure_ascii=False) + "\n").encode()


def write_bundle(out: Path, parts: Sequence[Part], unavailable: dict[str, str]) -> None:
    """``out`` as a gzip'd tar of every part under ``partial-trust-triage/``, atomically."""
    out.parent.mkdir(parents=True, exist_ok=True)
    members = [*parts, Part("MANIFEST.json", manifest(parts, unavailable), "this list")]
    fd, tmp = tempfile.mkstemp(prefix=".triage-", suffix=".tmp", dir=out.parent)
    try:
        with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar:
            now = time.time()
            for part in members:
                info = tarfile.TarInfo(f"{PREFIX}/{part.name}")
                info.size, info.mtime, info.mode = len(part.data), now, 0o600
                tar.addfile(info, io.BytesIO(part.data))
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def main(argv: Sequence[str]) -> int:
    p = _parser(Environment.from_os())
    try:
        args = p.parse_args(list(argv))
    except SystemExit as exc:
        return 0 if exc.code == 0 else 2
    if not args.timeout_s > 0:
        print("partial-trust triage: --timeout-s must be > 0", file=sys.stderr)
        return 2
    parts, unavailable = collect(args)
    out = Path(args.out)
    try:
        write_bundle(out, parts, unavailable)
    except OSError as exc:
        print(f"partial-trust triage: cannot write {out}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    print(f"triage bundle: {out} ({len(parts)} parts)")
    for name, why in sorted(unavailable.items()):
        print(f"  unavailable: {name}: {why}")
    return 0
