"""In-process cost of the corridor, against a bare Starlette app measured in the same run.

Each case drives the ASGI app directly (no HTTP client in the loop, whose cost would drown the
middleware's) with the DESIGN's command, and prints µs per request and the ratio to bare:

    .venv/bin/python bench/bench_middleware.py [--requests 20000] [--spans]

``--spans`` installs an OpenTelemetry SDK tracer provider with a batch processor (the way a
production app would) so the span cost is included; without it the API's no-op tracer runs.
The "instant candidate" is the real LLM client as shipped (its default transport: llhttp's
parser in the keep-alive pool) on an in-process network backend that answers every request
at once, so everything but the socket system calls is counted; its own cost is measured
alone and printed, so the corridor's overhead can be read beyond it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.routing import Route

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from partial_trust.apps.reference.app import route_endpoint
from partial_trust.config import EffectiveSettings, StaticSettings
from partial_trust.contracts import CommandDTO
from partial_trust.middleware.asgi import PartialTrustMiddleware
from partial_trust.middleware.candidate import ShoppingCandidate
from partial_trust.middleware.circuit import CircuitBreaker
from partial_trust.middleware.corridor import ShoppingCorridor
from partial_trust.middleware.engine import CorridorEngine
from partial_trust.middleware.llm_client import LLMClient
from partial_trust.middleware.metrics import CorridorMetrics
from partial_trust.middleware.policy import PolicyRegistry, Profile
from partial_trust.middleware.risk_log import RiskLog
from partial_trust.middleware.sampling import CommandKeyer, is_sampled
from tests.support.asgi import post_scope
from tests.support.instant_llm import InstantBackend

REPO = Path(__file__).resolve().parents[1]
CANDIDATE = {
    "intent": "add_shopping_item",
    "job": {
        "job_type": "add_shopping_item",
        "payload": {
            "list_id": "l-1",
            "items": [{"name": "milk", "quantity": 1}, {"name": "eggs", "quantity": 2}],
        },
    },
    "confidence": 0.95,
}
COMPLETION = json.dumps({"choices": [{"message": {"content": json.dumps(CANDIDATE)}}]}).encode()
App = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


def body_for(command_id: str) -> bytes:
    return json.dumps(
        {
            "command_id": command_id,
            "user_id": "u-1",
            "text": "add milk and two eggs to my shopping list",
            "capabilities": ["start_job"],
            "context": {"default_list_id": "l-1", "lists": ["l-1", "l-2"]},
        }
    ).encode()


#: The clock of every figure: wall time, or with ``--cpu`` the event-loop thread's own CPU
#: time (``time.thread_time``), which a shared machine's queue for a core does not inflate.
CLOCK = time.perf_counter


async def drive(app: App, path: str, body: bytes, n: int) -> float:
    """Mean µs per request over ``n`` requests."""
    scope = post_scope(path)
    message = {"type": "http.request", "body": body, "more_body": False}

    async def receive() -> dict[str, Any]:
        return message

    async def send(_: dict[str, Any]) -> None:
        return None

    started = CLOCK()
    for _ in range(n):
        await app(dict(scope), receive, send)
    return (CLOCK() - started) / n * 1e6


def settings(**kw: Any) -> EffectiveSettings:
    values: dict[str, Any] = {
        "enabled": True,
        "intent": "add_shopping_item",
        "sample_rate": 0.01,
        "timeout_ms": 200,
        "profile_id": None,
        "policy_enabled": True,
    }
    values.update(kw)
    return EffectiveSettings.build(**values)


def mock_llm() -> LLMClient:
    return LLMClient("http://llm.bench/v1", network_backend=InstantBackend(COMPLETION))


def corridor(
    router: Starlette, current: EffectiveSettings, log_dir: Path
) -> PartialTrustMiddleware[CommandDTO, ShoppingCandidate]:
    risk_log = RiskLog(log_dir / "risk.jsonl", max_queue=1_000_000)
    risk_log.start()
    engine = CorridorEngine(
        ShoppingCorridor(),
        settings=StaticSettings(current),
        policy=PolicyRegistry.load(REPO / "llm_policy" / "llm-policy.yaml"),
        llm=mock_llm(),
        circuit=CircuitBreaker(),
        risk_log=risk_log,
        metrics=CorridorMetrics(CollectorRegistry()),
        keyer=CommandKeyer(b"bench"),
    )
    return PartialTrustMiddleware(router, engine=engine, paths=["/route"])


async def candidate_cost(n: int) -> float:
    """One ``LLMClient.complete`` of the request the corridor sends for the bench command."""
    llm = mock_llm()
    request = ShoppingCorridor().build_request(
        CommandDTO.model_validate_json(body_for("c-1")),
        Profile(
            model="m",
            temperature=0.0,
            max_tokens=256,
            confidence_threshold=0.5,
            timeout_cap_ms=1000,
        ),
    )
    await llm.complete(request, timeout_s=1.0)
    started = CLOCK()
    for _ in range(n):
        await llm.complete(request, timeout_s=1.0)
    return (CLOCK() - started) / n * 1e6


async def main(n: int, repeats: int) -> None:
    router = Starlette(
        routes=[
            Route("/route", route_endpoint, methods=["POST"]),
            Route("/other", route_endpoint, methods=["POST"]),
        ]
    )
    unsampled = next(
        f"c-{i}" for i in range(1000) if not is_sampled("add_shopping_item", f"c-{i}", 0.01)
    )
    log_dir = Path(tempfile.mkdtemp(prefix="pt-bench-"))
    cases: list[tuple[str, App, str, bytes, int]] = [
        ("bare Starlette", router, "/route", body_for("c-1"), n),
        ("foreign path", corridor(router, settings(), log_dir), "/other", body_for("c-1"), n),
        (
            "corridor disabled",
            corridor(router, settings(enabled=False), log_dir),
            "/route",
            body_for("c-1"),
            n,
        ),
        (
            "enabled, not sampled",
            corridor(router, settings(), log_dir),
            "/route",
            body_for(unsampled),
            n,
        ),
        (
            "sampled, instant candidate",
            corridor(router, settings(sample_rate=1.0), log_dir),
            "/route",
            body_for("c-1"),
            max(n // 4, 100),
        ),
    ]
    for _, app, path, body, count in cases:  # warm-up: imports, caches, pools
        await drive(app, path, body, min(count, 500))
    results: dict[str, list[float]] = {name: [] for name, *_ in cases}
    for _ in range(repeats):  # interleaved, so drift hits every case alike
        for name, app, path, body, count in cases:
            results[name].append(await drive(app, path, body, count))
    own = statistics.median([await candidate_cost(max(n // 4, 100)) for _ in range(repeats)])
    bare = statistics.median(results["bare Starlette"])
    print(f"{'case':<28}{'µs/req':>10}{'+µs':>10}{'ratio':>8}")
    for name, values in results.items():
        med = statistics.median(values)
        print(f"{name:<28}{med:>10.1f}{med - bare:>+10.1f}{med / bare:>8.2f}")
    sampled = statistics.median(results["sampled, instant candidate"])
    print(f"{'candidate alone':<28}{own:>10.1f}")
    print(
        f"sampled overhead beyond bare and the candidate's own cost: {sampled - bare - own:+.1f} µs"
    )
    overheads = {name: statistics.median(results[name]) - bare for name in BUDGETS_US}
    overheads["sampled, instant candidate"] -= own
    for line in verdicts(overheads, bare):
        print(line)


#: The DESIGN's in-process budgets, µs over bare (the sampled one beyond the candidate's own).
BUDGETS_US = {
    "foreign path": 1.0,
    "corridor disabled": 3.0,
    "enabled, not sampled": 15.0,
    "sampled, instant candidate": 60.0,
}
#: What bare Starlette took where the DESIGN measured its peers and set those budgets.
DESIGN_BARE_US = 11.9


def verdicts(overheads: dict[str, float], bare: float) -> list[str]:
    """One line per budget: the verdict against the DESIGN's µs, and, for reading a slower or
    faster machine, the same budget scaled by this run's bare app (information, not a verdict)."""
    scale = bare / DESIGN_BARE_US
    lines = []
    for name, budget in BUDGETS_US.items():
        over = overheads[name]
        verdict = "PASS" if over <= budget else "MISS"
        lines.append(
            f"  [{verdict}] {name}: {over:+.1f} µs, budget +{budget:g} µs "
            f"(x{scale:.2f} for this machine's bare app: +{budget * scale:.1f})"
        )
    return lines


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--spans", action="store_true", help="install an SDK tracer provider")
    parser.add_argument(
        "--cpu", action="store_true", help="the event-loop thread's CPU time, not wall time"
    )
    args = parser.parse_args()
    if args.cpu:
        CLOCK = time.thread_time
    if args.spans:
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        provider = TracerProvider()
        provider.add_span_processor(BatchSpanProcessor(InMemorySpanExporter()))
        trace.set_tracer_provider(provider)
    asyncio.run(main(args.requests, args.repeats))
