"""``partial-trust serve``: the reference app under uvicorn."""

from __future__ import annotations

import argparse
import logging

import uvicorn


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="partial-trust serve",
        description="Run the reference router with the partial trust corridor mounted.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    uvicorn.run(
        "middleware.reference.app:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level=args.log_level,
        access_log=False,
    )
    return 0
