"""Connection, header and body timeouts and a concurrency limit for the served apps.

``partial-trust serve`` and ``partial-trust flags serve`` run uvicorn, whose defaults hold a
connection for as long as a client likes before its request is complete: a slowloris client
that trickles its header one byte a second, or an upload that stops after 10 of 1000 bytes,
keeps a connection (and a file descriptor) forever. These limits close them:

Each is an option of both commands, else its ``PARTIAL_TRUST_SERVE_*`` variable, else the default:

* ``--header-timeout`` / ``PARTIAL_TRUST_SERVE_HEADER_TIMEOUT_S`` (10): seconds from a new
  connection, or from the first byte of the next request on a kept-alive one, to the end of
  the request head; then 408 and close.
* ``--body-timeout`` / ``PARTIAL_TRUST_SERVE_BODY_TIMEOUT_S`` (30): seconds from the end of
  the head to the last byte of the body; then 408 (if no answer has started) and close.
* ``--keep-alive`` / ``PARTIAL_TRUST_SERVE_KEEP_ALIVE_S`` (5): idle seconds between requests
  on one connection (uvicorn's ``timeout_keep_alive``).
* ``--limit-concurrency`` / ``PARTIAL_TRUST_SERVE_LIMIT_CONCURRENCY`` (1000): open connections
  plus requests in progress per worker beyond which uvicorn answers 503.
* ``--max-header-bytes`` / ``PARTIAL_TRUST_SERVE_MAX_HEADER_BYTES`` (16384): the largest
  request head; 431 and close beyond it (also h11's ``h11_max_incomplete_event_size``).
* ``--graceful-shutdown`` / ``PARTIAL_TRUST_SERVE_GRACEFUL_SHUTDOWN_S`` (10): seconds a
  shutdown waits for requests in progress (``timeout_graceful_shutdown``).
* ``--http`` / ``PARTIAL_TRUST_SERVE_HTTP`` (auto): the HTTP parser, ``httptools`` when it is
  installed (``uvicorn[standard]``), else ``h11``; both get the same deadlines.

uvicorn has no header or body timeout (its keep-alive timer is armed only after a response and
is cancelled by any byte received), so the two timeouts live in
``partial_trust.apps.reference.serve_protocol``,
a subclass of uvicorn's protocol passed as ``http=``. The limits reach every worker process
through these variables: ``serve`` hands ``env_vars()`` to the workers' environment
before uvicorn starts (the way ``PROMETHEUS_MULTIPROC_DIR`` is passed on).
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from partial_trust.environment import Environment


class ServeLimits(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    header_timeout_s: float = Field(default=10.0, gt=0, le=3600)
    body_timeout_s: float = Field(default=30.0, gt=0, le=3600)
    keep_alive_s: int = Field(default=5, ge=1, le=3600)
    limit_concurrency: int = Field(default=1000, ge=1)
    max_header_bytes: int = Field(default=16384, ge=1024, le=1024 * 1024)
    graceful_shutdown_s: int = Field(default=10, ge=0, le=3600)
    http: Literal["auto", "h11", "httptools"] = "auto"

    def uvicorn_options(self) -> dict[str, Any]:
        """Keyword arguments for ``uvicorn.run``/``uvicorn.Config``."""
        from partial_trust.apps.reference.serve_protocol import protocol_path

        return {
            "http": protocol_path(self.http),
            "ws": "none",  # neither app has a websocket: an upgrade is just a request
            "timeout_keep_alive": self.keep_alive_s,
            "limit_concurrency": self.limit_concurrency,
            "h11_max_incomplete_event_size": self.max_header_bytes,
            "timeout_graceful_shutdown": self.graceful_shutdown_s,
        }

    def env_vars(self) -> dict[str, str]:
        """The values as variables: ``serve`` hands them to the worker processes, whose
        protocol class reads them back (``partial_trust.environment.hand_to_workers``)."""
        return {name: str(getattr(self, field)) for field, name in ENV.items()}


#: field -> environment variable
ENV: Mapping[str, str] = {
    "header_timeout_s": "PARTIAL_TRUST_SERVE_HEADER_TIMEOUT_S",
    "body_timeout_s": "PARTIAL_TRUST_SERVE_BODY_TIMEOUT_S",
    "keep_alive_s": "PARTIAL_TRUST_SERVE_KEEP_ALIVE_S",
    "limit_concurrency": "PARTIAL_TRUST_SERVE_LIMIT_CONCURRENCY",
    "max_header_bytes": "PARTIAL_TRUST_SERVE_MAX_HEADER_BYTES",
    "graceful_shutdown_s": "PARTIAL_TRUST_SERVE_GRACEFUL_SHUTDOWN_S",
    "http": "PARTIAL_TRUST_SERVE_HTTP",
}
_OPTIONS: Mapping[str, tuple[str, type, str]] = {
    "header_timeout_s": ("--header-timeout", float, "seconds to receive a request head"),
    "body_timeout_s": ("--body-timeout", float, "seconds to receive a request body"),
    "keep_alive_s": ("--keep-alive", int, "idle seconds between requests on one connection"),
    "limit_concurrency": ("--limit-concurrency", int, "connections + requests per worker (503)"),
    "max_header_bytes": ("--max-header-bytes", int, "largest request head in bytes (431)"),
    "graceful_shutdown_s": ("--graceful-shutdown", int, "seconds a shutdown waits"),
    "http": ("--http", str, "HTTP parser: auto, h11 or httptools"),
}


def from_env(env: Environment) -> ServeLimits:
    """The limits from ``PARTIAL_TRUST_SERVE_*`` (unset or empty: the default)."""
    values = {field: env.get(name) for field, name in ENV.items() if env.value(name)}
    try:
        return ServeLimits.model_validate(values)
    except ValidationError as exc:
        raise ValueError(_describe(exc, ENV)) from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``--header-timeout`` ... ``--http`` options (default: the variable, else the default)."""
    group = parser.add_argument_group("connection limits (see apps/reference/serve_limits.py)")
    defaults = ServeLimits()
    for field, (option, kind, text) in _OPTIONS.items():
        group.add_argument(
            option,
            dest=f"limit_{field}",
            type=kind,
            default=None,
            help=f"{text}; default {ENV[field]} or {getattr(defaults, field)}",
        )


def from_args(args: argparse.Namespace, env: Environment) -> ServeLimits:
    """Command line over environment over default; ``ValueError`` names what is wrong."""
    base = from_env(env).model_dump()
    given = {f: getattr(args, f"limit_{f}", None) for f in _OPTIONS}
    given = {f: v for f, v in given.items() if v is not None}
    try:
        return ServeLimits.model_validate({**base, **given})
    except ValidationError as exc:
        names = {field: option for field, (option, _, _) in _OPTIONS.items()}
        raise ValueError(_describe(exc, names)) from None


def _describe(exc: ValidationError, names: Mapping[str, str]) -> str:
    parts = []
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else ""
        parts.append(f"{names.get(field, field)}: {error['msg']}")
    return "serve limits: " + "; ".join(parts)
