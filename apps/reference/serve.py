"""``partial-trust serve``: the reference app under uvicorn.

With connection, header and body timeouts and a concurrency limit
(``partial_trust.apps.reference.serve_limits``
lists the options, variables and defaults), and the bind address passed to the workers as
``PARTIAL_TRUST_SERVE_BIND_HOST``: one of the ``Host`` names the console at ``/flags``
accepts (``partial_trust.apps.console.hosts``).
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from pathlib import Path

import uvicorn
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Receive, Scope, Send

from partial_trust.apps.reference import serve_limits
from partial_trust.apps.reference.app import create_served_app
from partial_trust.environment import (
    BIND_HOST_ENV,
    MULTIPROC_DIR_ENV,
    Environment,
    hand_to_workers,
)
from partial_trust.middleware.shadow_share import LOOP_SHARE_ENV, parse_loop_share

log = logging.getLogger("partial_trust.serve")


class QuietDisconnects:
    """Pure ASGI: a request whose client went away is not an application error.

    When the body deadline (``partial_trust.apps.reference.serve_protocol``) cuts off a stalled
    upload, the app
    waiting in ``receive()`` gets ``http.disconnect`` and starlette raises ``ClientDisconnect``;
    uvicorn would log each one as "Exception in ASGI application" with a traceback, so that
    2,000 stalled uploads would write 2,000 tracebacks. There is nobody left to answer: one
    debug line instead.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.app(scope, receive, send)
        except ClientDisconnect:
            log.debug("the client went away before its request was complete")


def create_app_for_serve() -> ASGIApp:
    """``partial-trust serve``'s factory (what uvicorn imports in every worker)."""
    return QuietDisconnects(create_served_app())


def _prepare_multiprocess_metrics(workers: int, env: Environment) -> str | None:
    """With several workers each process counts alone; prometheus-client's multiprocess mode
    merges them through files in ``PROMETHEUS_MULTIPROC_DIR``. It must be set before any
    worker imports prometheus_client, and emptied first: files of a previous run would be
    added to this run's totals. Returns the directory to hand to the workers; ``None``: the
    variable is removed (set but empty would make prometheus_client write into the cwd)."""
    directory = env.multiproc_dir
    if workers <= 1 and directory is None:
        return None
    directory = directory or tempfile.mkdtemp(prefix="partial-trust-metrics-")
    path = Path(directory)
    if path.exists():
        for child in path.iterdir():
            if child.suffix == ".db":
                child.unlink()
    else:
        path.mkdir(parents=True)
    return str(path)


def main(argv: list[str]) -> int:
    env = Environment.from_os()
    parser = argparse.ArgumentParser(
        prog="partial-trust serve",
        description="Run the reference router with the partial trust corridor mounted. "
        "Configuration comes from the environment (see the README).",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="uvicorn worker processes; above 1, /metrics merges all workers "
        "(PROMETHEUS_MULTIPROC_DIR, a fresh temporary directory unless set)",
    )
    parser.add_argument("--log-level", default="info")
    parser.add_argument(
        "--loop",
        choices=("auto", "asyncio", "uvloop"),
        default=env.get("PARTIAL_TRUST_SERVE_LOOP") or "auto",
        help="event loop (env PARTIAL_TRUST_SERVE_LOOP); auto is uvloop when installed, "
        "as uvicorn does",
    )
    serve_limits.add_arguments(parser)
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    try:
        limits = serve_limits.from_args(args, env)
        parse_loop_share(env.get(LOOP_SHARE_ENV))  # each worker reads it again; checked once
    except ValueError as exc:
        parser.error(str(exc))
    # the workers (and their protocol class) read these from the environment they inherit
    multiproc_dir = _prepare_multiprocess_metrics(args.workers, env)
    hand_to_workers(
        {**limits.env_vars(), BIND_HOST_ENV: args.host, MULTIPROC_DIR_ENV: multiproc_dir}
    )
    from partial_trust.apps.reference.telemetry_env import (
        exit_on_bad_tracing_env,
    )  # OTEL_* checked once

    exit_on_bad_tracing_env(env)  # a wrong value: one line, not a traceback in every worker
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    uvicorn.run(
        "partial_trust.apps.reference.serve:create_app_for_serve",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level=args.log_level,
        access_log=False,
        loop=args.loop,
        **limits.uvicorn_options(),
    )
    return 0
