"""An in-process corridor around the reference router, for engine and middleware tests.

Real parts throughout (engine, policy file, risk log thread, metrics registry, LLM client);
only the LLM's HTTP is doubled, by respx, as the project's standards ask for unit tests.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.routing import Route

from partial_trust.apps.reference.app import route_endpoint
from partial_trust.config import EffectiveSettings
from partial_trust.contracts import CommandDTO
from partial_trust.middleware.asgi import PartialTrustMiddleware
from partial_trust.middleware.candidate import ShoppingCandidate
from partial_trust.middleware.circuit import CircuitBreaker
from partial_trust.middleware.corridor import ShoppingCorridor
from partial_trust.middleware.engine import CorridorEngine
from partial_trust.middleware.llm_client import LLMClient
from partial_trust.middleware.metrics import CorridorMetrics
from partial_trust.middleware.policy import PolicyRegistry
from partial_trust.middleware.risk_log import RiskLog
from partial_trust.middleware.sampling import CommandKeyer, is_sampled
from tests.integration.stack import shopping_command
from tests.support.procs import REPO

LLM_URL = "http://llm.test/v1"
CORRIDOR = "add_shopping_item"


def settings(**overrides: Any) -> EffectiveSettings:
    values: dict[str, Any] = {
        "enabled": True,
        "intent": CORRIDOR,
        "sample_rate": 1.0,
        "timeout_ms": 200,
        "profile_id": None,
        "policy_enabled": True,
    }
    values.update(overrides)
    return EffectiveSettings.build(**values)


class MutableSettings:
    def __init__(self, value: EffectiveSettings) -> None:
        self.value = value

    def current(self) -> EffectiveSettings:
        return self.value


def command(command_id: str = "c-1", **changes: Any) -> dict[str, Any]:
    return shopping_command(command_id, **changes)


def unsampled_id(rate: float) -> str:
    return next(f"c-{i}" for i in range(10_000) if not is_sampled(CORRIDOR, f"c-{i}", rate))


def completion(content: object) -> httpx.Response:
    text = content if isinstance(content, str) else json.dumps(content)
    return httpx.Response(
        200, json={"choices": [{"message": {"role": "assistant", "content": text}}]}
    )


#: How the LLM's answer to ``command()`` differs from the baseline's, so a test can tell which
#: one was served: "egg" where the baseline read "eggs". The acceptance rules take it (the name
#: is grounded by stem, the quantity is the one the baseline read), and ``item_key`` does not
#: fold plurals, so the candidate disagrees. Not another list: one the text does not name is
#: refused (``list_id_not_allowed``).
LLM_EGGS = "egg"


def good_candidate(
    list_id: str = "l-1", confidence: float | None = 0.95, *, eggs: str = LLM_EGGS
) -> dict[str, Any]:
    """An answer to ``command()`` that is accepted; with ``eggs="eggs"`` it is the baseline's
    own decision (agreement), by default it differs in one item name (see ``LLM_EGGS``)."""
    raw: dict[str, Any] = {
        "intent": CORRIDOR,
        "job": {
            "job_type": CORRIDOR,
            "payload": {
                "list_id": list_id,
                "items": [{"name": "milk", "quantity": 1}, {"name": eggs, "quantity": 2}],
            },
        },
    }
    if confidence is not None:
        raw["confidence"] = confidence
    return raw


def served_by_llm(body: dict[str, Any]) -> bool:
    """The answer is the LLM's ``good_candidate()`` (merged), not the baseline's."""
    names = [i.get("name") for i in body["job"]["payload"]["items"]]
    if names == ["milk", "eggs"]:
        return False
    assert names == ["milk", LLM_EGGS], names
    return True


@dataclass
class Harness:
    app: PartialTrustMiddleware[CommandDTO, ShoppingCandidate]
    engine: CorridorEngine[CommandDTO, ShoppingCandidate]
    source: MutableSettings
    registry: CollectorRegistry
    risk_log: RiskLog
    log_path: Path
    client: httpx.AsyncClient
    _flushed: list[dict[str, Any]] = field(default_factory=list)

    async def post(self, body: Any, path: str = "/route") -> httpx.Response:
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        return await self.client.post(
            path, content=content, headers={"content-type": "application/json"}
        )

    def lines(self) -> list[dict[str, Any]]:
        """Every risk-log record so far (flushes the writer first)."""
        self.risk_log.close()
        self._flushed += (
            [json.loads(x) for x in self.log_path.read_text().splitlines()]
            if (self.log_path.exists())
            else []
        )
        self.log_path.unlink(missing_ok=True)
        self.risk_log = self.engine.risk_log = RiskLog(self.log_path)
        self.risk_log.start()
        return list(self._flushed)

    def in_flight(self) -> float:
        """The LLM calls the ``partial_trust_llm_in_flight`` gauge counts as waiting now."""
        value = self.registry.get_sample_value(
            "partial_trust_llm_in_flight", {"corridor": CORRIDOR}
        )
        assert value is not None, "the in-flight gauge is missing"
        return value

    def decisions(self, status: str, reason: str) -> float:
        value = self.registry.get_sample_value(
            "partial_trust_decisions_total",
            {"corridor": CORRIDOR, "status": status, "reason": reason},
        )
        return value or 0.0

    def all_decisions(self) -> float:
        """Every outcome counted so far, whatever its status and reason."""
        return sum(
            s.value
            for family in self.registry.collect()
            if family.name == "partial_trust_decisions"
            for s in family.samples
            if s.name == "partial_trust_decisions_total"
        )

    async def baseline_bytes(self, body: Any) -> bytes:
        """What the app alone answers to ``body``: the corridor off for one request."""
        saved = self.source.value
        self.source.value = settings(enabled=False)
        try:
            return (await self.post(body)).content
        finally:
            self.source.value = saved


@asynccontextmanager
async def harness(
    tmp_path: Path, initial: EffectiveSettings | None = None, circuit: CircuitBreaker | None = None
) -> AsyncIterator[Harness]:
    registry = CollectorRegistry()
    metrics = CorridorMetrics(registry)
    log_path = tmp_path / "risk.jsonl"
    risk_log = RiskLog(log_path)
    risk_log.start()
    source = MutableSettings(initial or settings())
    # respx sees httpx/httpcore only: the LLM is reached through an injected httpx client.
    http = httpx.AsyncClient()
    llm = LLMClient(LLM_URL, client=http)
    engine = CorridorEngine(
        ShoppingCorridor(),
        settings=source,
        policy=PolicyRegistry.load(REPO / "llm_policy" / "llm-policy.yaml"),
        llm=llm,
        circuit=circuit or CircuitBreaker(),
        risk_log=risk_log,
        metrics=metrics,
        keyer=CommandKeyer(b"test-key"),
    )
    router = Starlette(
        routes=[
            Route("/route", route_endpoint, methods=["POST"]),
            Route("/other", route_endpoint, methods=["POST"]),
        ]
    )
    app = PartialTrustMiddleware(router, engine=engine, paths=["/route"])
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://app.test") as client:
        h = Harness(app, engine, source, registry, risk_log, log_path, client)
        try:
            yield h
        finally:
            h.risk_log.close()
            await llm.aclose()
            await http.aclose()


def iter_strings(value: object) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield str(k)
            yield from iter_strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from iter_strings(v)
