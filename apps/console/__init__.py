"""The flag console: a phone-usable page over the flag file, an audit log, auto-rollback.

Mount it in any Starlette app (``partial-trust serve`` mounts it at ``/flags``)::

    from starlette.routing import Mount
    from partial_trust.apps.console import create_console_app, create_console_app_from_env

    console = create_console_app_from_env()            # reads the variables below
    # or explicitly:
    console = create_console_app(
        Path("flags/partial-trust.flagd.json"),
        audit_path=Path("logs/partial_trust_flag_audit.jsonl"),
        token=env.console_tokens.token,          # env = Environment.from_os()
        webhook_token=env.console_tokens.webhook_token,
        risk_log_path=Path("logs/partial_trust_risk.jsonl"),
    )
    app = Starlette(routes=[..., Mount("/flags", app=console)])

It has no lifespan and no background tasks, so mounting needs nothing else. Standalone:
``partial-trust flags serve`` → ``main(argv)`` (``python -m partial_trust.apps.console`` is the
same).

``create_console_app`` parameters:

* ``flags_file``: the flagd-format file it reads and edits (``partial_trust.flags.flagfile``).
* ``audit_path``: the JSONL audit log (created on first change).
* ``token``: bearer token for changes; ``None`` or empty → read-only console.
* ``webhook_token``: bearer token for ``POST /alertmanager``; ``None`` → webhook refused.
* ``allow_remote_read``: non-loopback clients may view (default: loopback only).
* ``allow_remote_changes``: non-loopback clients may change with the token (default off).
* ``risk_log_path``: the risk log the gate verdict is computed from; ``None`` → "not available".
* ``corridor``: the corridor this flag file controls (alerts for others are ignored);
  default ``PARTIAL_TRUST_INTENT`` or ``add_shopping_item``.
* ``auto_rollback``: a ``partial_trust.apps.console.webhook.AutoRollback`` (matchers, storm
threshold and
  window, enabled).
* ``env``: a ``partial_trust.environment.Environment``, where the environment defaults come
  from (default ``Environment.from_os()``).
* ``registry``: the Prometheus registry for the console's ``/metrics`` (default: its own).

Environment (``create_console_app_from_env`` and ``main``): ``PARTIAL_TRUST_FLAGS_FILE``,
``PARTIAL_TRUST_FLAGS_AUDIT_LOG`` (default ``logs/partial_trust_flag_audit.jsonl``),
``PARTIAL_TRUST_CONSOLE_TOKEN``, ``PARTIAL_TRUST_WEBHOOK_TOKEN``,
``PARTIAL_TRUST_RISK_LOG_PATH``, ``PARTIAL_TRUST_CONSOLE_ALLOW_REMOTE_READ`` (true/1/yes),
``PARTIAL_TRUST_CONSOLE_AUTO_ROLLBACK`` (default true).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from partial_trust.environment import CONSOLE_TOKEN_ENV, WEBHOOK_TOKEN_ENV

if TYPE_CHECKING:  # kept out of import time: `partial_trust.apps.console.audit` is used by the CLI
    from prometheus_client import CollectorRegistry
    from starlette.applications import Starlette

    from partial_trust.apps.console.webhook import AutoRollback
    from partial_trust.environment import Environment

TOKEN_ENV = CONSOLE_TOKEN_ENV
ALLOW_REMOTE_READ_ENV = "PARTIAL_TRUST_CONSOLE_ALLOW_REMOTE_READ"
AUTO_ROLLBACK_ENV = "PARTIAL_TRUST_CONSOLE_AUTO_ROLLBACK"

__all__ = ["WEBHOOK_TOKEN_ENV", "create_console_app", "create_console_app_from_env", "main"]


def create_console_app(
    flags_file: Path,
    *,
    audit_path: Path,
    token: str | None,
    webhook_token: str | None = None,
    allow_remote_read: bool = False,
    allow_remote_changes: bool = False,
    risk_log_path: Path | None = None,
    corridor: str | None = None,
    auto_rollback: AutoRollback | None = None,
    env: Environment | None = None,
    registry: CollectorRegistry | None = None,
) -> Starlette:
    """The console as an ASGI app; see the module docstring for every parameter."""
    from dataclasses import replace

    from partial_trust.apps.console.app import build
    from partial_trust.apps.console.auth import Access
    from partial_trust.apps.console.review import ReviewDeskConfig
    from partial_trust.apps.console.webhook import AutoRollback
    from partial_trust.config import DEFAULT_INTENT
    from partial_trust.environment import Environment

    env = Environment.from_os() if env is None else env  # a host app's entry point
    defaults = env.defaults
    rollback = auto_rollback or AutoRollback()
    rollback = replace(rollback, corridor=corridor or defaults.intent or DEFAULT_INTENT)
    access = Access(
        token=(token or "").strip() or None,
        webhook_token=(webhook_token or "").strip() or None,
        allow_remote_read=allow_remote_read,
        allow_remote_changes=allow_remote_changes,
    )
    return build(
        Path(flags_file).absolute(),
        audit_path=Path(audit_path).absolute(),
        access=access,
        rollback=rollback,
        risk_log_path=Path(risk_log_path).absolute() if risk_log_path else None,
        defaults=defaults,
        registry=registry,
        review=ReviewDeskConfig.from_env(env),
    )


def create_console_app_from_env(
    env: Environment | None = None, *, registry: CollectorRegistry | None = None
) -> Starlette:
    """``create_console_app`` configured by the environment variables listed above."""
    from partial_trust.apps.console.audit import default_audit_path
    from partial_trust.apps.console.webhook import AutoRollback
    from partial_trust.config import parse_bool
    from partial_trust.environment import Environment
    from partial_trust.flags.provider import flags_file_path

    env = Environment.from_os() if env is None else env  # a host app's entry point
    auto = env.get(AUTO_ROLLBACK_ENV)
    return create_console_app(
        flags_file_path(env),
        audit_path=default_audit_path(env),
        token=env.console_tokens.token,
        webhook_token=env.console_tokens.webhook_token,
        allow_remote_read=parse_bool(env.get(ALLOW_REMOTE_READ_ENV)),
        risk_log_path=Path(env.risk_log_path),
        auto_rollback=AutoRollback(enabled=auto is None or parse_bool(auto)),
        env=env,
        registry=registry,
    )


def main(argv: list[str] | None = None) -> int:
    """``partial-trust flags serve``: the standalone console under uvicorn."""
    from partial_trust.apps.console.cli import main as cli_main

    return cli_main(argv)
