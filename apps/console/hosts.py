"""The console's ``Host`` allow-list: a DNS-rebinding page never reads the state or the audit.

DNS rebinding: a page on ``attacker.example`` re-resolves its own name to 127.0.0.1; the
browser then sends the page's requests to the console as *same-origin* requests, from a
loopback client, with ``Host: attacker.example``. The loopback rule of ``auth`` lets them
view, so the page could read ``/api/state`` (flags, the audit log with actors and client
addresses). Checking ``Host`` stops it: the browser always sends the name the page was loaded
from, and the attacker cannot make it one of the console's own names.

Allowed by default: ``127.0.0.1``, ``localhost`` and ``[::1]`` (any port), plus the address the
server binds to when it is a specific one (not ``0.0.0.0``/``::``). More names (the machine's
name, a reverse proxy's public name; ``*.example.com`` for sub-domains; ``*`` turns the check
off) come from ``PARTIAL_TRUST_CONSOLE_ALLOWED_HOSTS`` (comma-separated) and, for ``partial-trust
flags serve``, ``--allowed-host``. Another ``Host``, or none, is refused with 400 and no data
(starlette's ``TrustedHostMiddleware``).

Checked: everything a browser shows or changes (the page, ``/api/*``). Not checked, on
purpose: ``/health`` (``{"status": "ok"}``), ``/metrics`` (two counters and a gauge, no actor,
reason or address) and ``/alertmanager`` (its own bearer token, which a rebinding page never
has): Prometheus and Alertmanager reach them by whatever name the deployment gives the host
(``host.docker.internal:8000`` in ``docker-compose.monitoring.yaml``), and the loopback and
token rules still apply to them. The corridor's own paths (``/route``) never pass through this
check: it wraps the console only.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable

from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from partial_trust.environment import Environment

ALLOWED_HOSTS_ENV = "PARTIAL_TRUST_CONSOLE_ALLOWED_HOSTS"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")
#: console paths a machine reads by any host name (see the module docstring)
UNCHECKED_PATHS = frozenset({"/health", "/metrics", "/alertmanager"})
_NAME = re.compile(r"(\*\.)?[a-z0-9_]([a-z0-9_.-]*[a-z0-9_])?")


def normalise(entry: str) -> str | None:
    """A ``Host`` name as ``TrustedHostMiddleware`` compares it (lower case, no port, IPv6 in
    brackets); None for a wildcard bind address (``0.0.0.0``, ``::``, empty), which is no
    name a client sends. ``ValueError`` for anything that cannot be a host name."""
    value = entry.strip().lower()
    if value in {"", "0.0.0.0", "::", "[::]"}:
        return None
    if value == "*":
        return value
    bare = value[1:-1] if value.startswith("[") and value.endswith("]") else value
    try:
        address = ipaddress.ip_address(bare)
    except ValueError:
        pass
    else:
        return f"[{address.compressed}]" if address.version == 6 else address.compressed
    if value.startswith("[") and "]:" in value:  # [v6]:port
        return normalise(value.rsplit(":", 1)[0])
    name = value.rsplit(":", 1)[0] if value.count(":") == 1 else value
    if not _NAME.fullmatch(name):
        raise ValueError(f"{entry!r} is not a host name (name, IP address, [IPv6], *.domain or *)")
    return name


def allowed_hosts(
    bind_host: str | None = None,
    extra: Iterable[str] = (),
    env: Environment | None = None,
) -> list[str]:
    """The loopback names, ``bind_host``, ``extra`` and ``PARTIAL_TRUST_CONSOLE_ALLOWED_HOSTS``
    (from ``env``; ``None``: no configured names)."""
    listed = env.value(ALLOWED_HOSTS_ENV) if env is not None else ""
    configured = [part for part in listed.split(",") if part.strip()]
    out: list[str] = []
    for entry in [*LOOPBACK_HOSTS, bind_host or "", *extra, *configured]:
        name = normalise(entry)
        if name is not None and name not in out:
            out.append(name)
    return out


class ConsoleHostGuard:
    """Pure ASGI: ``TrustedHostMiddleware`` for the console's browser paths, nothing else."""

    def __init__(self, app: ASGIApp, allowed: Iterable[str]) -> None:
        self.app = app
        self.allowed = list(allowed)
        self.checked = TrustedHostMiddleware(app, allowed_hosts=self.allowed, www_redirect=False)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and _console_path(scope) in UNCHECKED_PATHS:
            await self.app(scope, receive, send)
            return
        await self.checked(scope, receive, send)


def _console_path(scope: Scope) -> str:
    """The path inside the console (``/flags/metrics`` mounted at ``/flags`` is ``/metrics``)."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


def guard(
    app: ASGIApp,
    *,
    bind_host: str | None = None,
    extra: Iterable[str] = (),
    env: Environment | None = None,
) -> ConsoleHostGuard:
    """The console behind its ``Host`` allow-list (what ``serve`` and ``flags serve`` use)."""
    return ConsoleHostGuard(app, allowed_hosts(bind_host, extra, env))
