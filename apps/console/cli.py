"""``partial-trust flags serve`` (also ``python -m partial_trust.apps.console``): the console under
uvicorn.

Tokens come from the environment only (``PARTIAL_TRUST_CONSOLE_TOKEN``,
``PARTIAL_TRUST_WEBHOOK_TOKEN``), never from the command line, where ``ps`` would show them.
Whatever the bind address, the page and ``/api/*`` refuse a ``Host`` that is not a loopback
name, the bind address, an ``--allowed-host`` or in ``PARTIAL_TRUST_CONSOLE_ALLOWED_HOSTS``
(``partial_trust.apps.console.hosts``: DNS rebinding). The server has the same connection, header
and body
timeouts and concurrency limit as ``partial-trust serve``
(``partial_trust.apps.reference.serve_limits``).
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import sys
from pathlib import Path

from starlette.types import ASGIApp

from partial_trust.apps.console.audit import default_audit_path
from partial_trust.apps.console.webhook import CRITICAL_ALERT
from partial_trust.apps.reference.serve_limits import add_arguments, from_args
from partial_trust.environment import Environment, hand_to_workers


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parser(env: Environment | None = None) -> argparse.ArgumentParser:
    """The options; defaults from ``env`` (``None``: the process environment, read now)."""
    env = Environment.from_os() if env is None else env
    from partial_trust.flags.provider import flags_file_path

    p = argparse.ArgumentParser(
        prog="partial-trust flags serve",
        description="The flag console: effective flags, stage presets, kill switch, audit log "
        "and the Alertmanager auto-rollback webhook (POST /alertmanager, bearer "
        "PARTIAL_TRUST_WEBHOOK_TOKEN). Changes need PARTIAL_TRUST_CONSOLE_TOKEN; without it "
        "the console is read-only.",
    )
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8090)
    p.add_argument("--file", type=Path, default=flags_file_path(env), help="flag file (flagd JSON)")
    p.add_argument(
        "--audit-log", type=Path, default=default_audit_path(env), help="JSONL audit log"
    )
    p.add_argument(
        "--risk-log", type=Path, default=Path(env.risk_log_path), help="for the gate verdict"
    )
    p.add_argument("--corridor", default=None, help="corridor label of the alerts to act on")
    p.add_argument("--allow-remote-read", action="store_true", help="let other hosts view")
    p.add_argument(
        "--allow-remote-changes",
        action="store_true",
        help="let other hosts change (with the token) and post the webhook",
    )
    p.add_argument(
        "--allowed-host",
        action="append",
        default=[],
        metavar="NAME",
        help="another Host name for the page and /api (the machine's name, a reverse proxy's "
        "public name, *.example.com); repeatable; also PARTIAL_TRUST_CONSOLE_ALLOWED_HOSTS",
    )
    p.add_argument(
        "--rollback-alertname",
        default=CRITICAL_ALERT,
        help=f"the alert (with severity=critical) that rolls back (default {CRITICAL_ALERT})",
    )
    p.add_argument("--no-auto-rollback", action="store_true", help="webhook acts on nothing")
    p.add_argument("--log-level", default="info")
    add_arguments(p)
    return p


def build_app(args: argparse.Namespace, env: Environment | None = None) -> ASGIApp:
    """The console for parsed arguments, behind its ``Host`` allow-list."""
    from partial_trust.apps.console import TOKEN_ENV, create_console_app, hosts
    from partial_trust.apps.console.webhook import AutoRollback

    env = Environment.from_os() if env is None else env
    log = logging.getLogger("partial_trust.console")
    token = env.console_tokens.token
    if token is None:
        log.warning("%s is not set: the console is read-only", TOKEN_ENV)
    elif len(token) < 16:
        log.warning("%s is shorter than 16 characters: use a long random token", TOKEN_ENV)
    app: ASGIApp = create_console_app(
        args.file,
        audit_path=args.audit_log,
        token=token,
        webhook_token=env.console_tokens.webhook_token,
        allow_remote_read=args.allow_remote_read,
        allow_remote_changes=args.allow_remote_changes,
        risk_log_path=args.risk_log,
        corridor=args.corridor,
        auto_rollback=AutoRollback(
            enabled=not args.no_auto_rollback,
            matchers={"alertname": args.rollback_alertname, "severity": "critical"},
        ),
        env=env,
    )
    guarded = hosts.guard(app, bind_host=args.host, extra=args.allowed_host, env=env)
    if not _is_loopback(args.host):
        if not (args.allow_remote_read or args.allow_remote_changes):
            print(
                f"note: bound to {args.host}, but other hosts get 403 without --allow-remote-read",
                file=sys.stderr,
            )
        print(
            f"note: the page and /api answer only Host {', '.join(guarded.allowed)}; add the "
            f"names browsers use with --allowed-host or {hosts.ALLOWED_HOSTS_ENV}",
            file=sys.stderr,
        )
    return guarded


def main(argv: list[str] | None = None) -> int:
    import uvicorn

    env = Environment.from_os()
    p = parser(env)
    args = p.parse_args(argv)
    try:
        limits = from_args(args, env)
    except ValueError as exc:
        p.error(str(exc))
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    try:
        app = build_app(args, env)
    except ValueError as exc:  # a malformed allowed host name
        p.error(str(exc))
    hand_to_workers(limits.env_vars())  # the protocol class reads them (serve_protocol)
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        access_log=False,
        **limits.uvicorn_options(),
    )
    return 0
