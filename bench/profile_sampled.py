"""Where a sampled request's CPU goes, in process: cProfile over the corridor at sample rate 1
with the instant LLM connection of ``bench_middleware.py`` (no sockets, so the figure is the
app's own Python), top functions by own time.

    .venv/bin/python bench/profile_sampled.py [--requests 3000] [--top 30]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from starlette.applications import Starlette
from starlette.routing import Route

from bench.bench_middleware import body_for, corridor, drive, settings
from partial_trust.apps.reference.app import route_endpoint


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args()
    router = Starlette(routes=[Route("/route", route_endpoint, methods=["POST"])])
    app = corridor(router, settings(sample_rate=1.0), Path(tempfile.mkdtemp(prefix="pt-prof-")))
    body = body_for("c-1")

    async def run() -> None:
        await drive(app, "/route", body, 300)  # warm-up
        profile = cProfile.Profile()
        profile.enable()
        await drive(app, "/route", body, args.requests)
        profile.disable()
        stats = pstats.Stats(profile).sort_stats("tottime")
        stats.print_stats(args.top)

    asyncio.run(run())


if __name__ == "__main__":
    main()
