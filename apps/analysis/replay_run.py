"""The replay computation: each command through the baseline and the real corridor engine.

The engine is driven without ASGI (``admit``, ``ask``, ``decide``) so the replay judges the
same code that serves traffic, while staying offline and reproducible.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import httpx

from partial_trust.apps.analysis.replay_report import (
    DEFAULT_MAX_DISAGREEMENT,
    DEFAULT_MAX_ERROR_RATE,
    CommandResult,
    ReplayReport,
)
from partial_trust.apps.llm_sim import SimConfig, create_app
from partial_trust.config import EffectiveSettings, StaticSettings
from partial_trust.contracts import CommandDTO
from partial_trust.middleware.baseline import route
from partial_trust.middleware.corridor import ShoppingCorridor
from partial_trust.middleware.engine import CorridorEngine
from partial_trust.middleware.llm_client import LLMClient
from partial_trust.middleware.policy import PolicyRegistry
from partial_trust.middleware.sampling import CommandKeyer
from partial_trust.outcome import Outcome, Reason, Status

#: Stop a pass whose first this-many corridor calls all failed: an unreachable or hanging
#: LLM would otherwise cost every command its full timeout, twice, to learn nothing.
DEFAULT_GIVE_UP_AFTER = 10
SIM_URL = "http://llm-sim.invalid/v1"
#: Command keys never leave this process; a fixed key keeps runs identical and quiet.
_REPLAY_KEY = b"partial-trust-replay"

TransportFactory = Callable[[], httpx.AsyncBaseTransport]


def sim_transport(config: SimConfig | None = None) -> TransportFactory:
    """A fresh in-process llm-sim per run, so a seeded fault mix replays identically."""
    return lambda: httpx.ASGITransport(app=create_app(config or SimConfig()))


def _settings(timeout_ms: int, profile_id: str | None) -> EffectiveSettings:
    return EffectiveSettings.build(
        enabled=True,
        intent=ShoppingCorridor().name,
        sample_rate=1.0,
        timeout_ms=timeout_ms,
        profile_id=profile_id,
        policy_enabled=True,
    )


async def run_once(
    commands: Sequence[CommandDTO],
    llm: LLMClient,
    policy: PolicyRegistry,
    *,
    timeout_ms: int = 60_000,
    profile_id: str | None = None,
    give_up_after: int = 0,
) -> tuple[CommandResult, ...]:
    """One pass over the corpus, in order (a seeded sim draws its faults in request order).

    With ``give_up_after`` > 0 the pass stops (returns fewer results than commands) once that
    many corridor calls have failed before any call came back with an answer."""
    settings = _settings(timeout_ms, profile_id)
    engine = CorridorEngine(
        ShoppingCorridor(),
        settings=StaticSettings(settings),
        policy=policy,
        llm=llm,
        keyer=CommandKeyer(_REPLAY_KEY),
    )
    corridor = engine.corridor
    out: list[CommandResult] = []
    failed_from_start: int | None = 0  # None once any call was answered
    for command in commands:
        if give_up_after and failed_from_start is not None and failed_from_start >= give_up_after:
            break
        baseline = route(command).model_dump(mode="json")
        admitted = engine.admit(settings, command.model_dump_json().encode())
        final = baseline
        if isinstance(admitted, Outcome):
            status, reason = admitted.status, admitted.reason
        elif corridor.baseline_decision(json.dumps(baseline).encode()) is None:
            # The middleware cancels the candidate: the baseline did not decide in the corridor.
            status, reason = Status.SKIPPED, Reason.CORRIDOR_MISMATCH
        else:
            result = await engine.ask(admitted)
            outcome, body = engine.decide(admitted, result, baseline, 0.0)
            status, reason = outcome.status, outcome.reason
            if body is not None:
                final = json.loads(body)
            if failed_from_start is not None:
                failed_from_start = failed_from_start + 1 if status is Status.ERROR else None
        out.append(CommandResult(command.command_id, status.value, reason.value, baseline, final))
    return tuple(out)


async def replay(
    commands: Sequence[CommandDTO],
    policy: PolicyRegistry,
    *,
    transport: TransportFactory | None = None,
    llm_url: str | None = None,
    api_key: str | None = None,
    runs: int = 2,
    timeout_ms: int = 60_000,
    profile_id: str | None = None,
    max_disagreement: float = DEFAULT_MAX_DISAGREEMENT,
    max_error_rate: float = DEFAULT_MAX_ERROR_RATE,
    give_up_after: int = DEFAULT_GIVE_UP_AFTER,
    source: dict[str, Any] | None = None,
) -> ReplayReport:
    """Run the corpus ``runs`` times; ``transport`` (default: the in-process sim) is called
    once per run. With ``llm_url`` and no ``transport``, a real endpoint is asked. A pass
    that gives up (see ``run_once``) ends the replay: there is nothing to repeat."""
    if transport is None and llm_url is None:
        transport = sim_transport()
    results: list[tuple[CommandResult, ...]] = []
    aborted = False
    for _ in range(max(1, runs)):
        client = httpx.AsyncClient(transport=transport()) if transport is not None else None
        async with LLMClient(llm_url or SIM_URL, api_key=api_key, client=client) as llm:
            results.append(
                await run_once(
                    commands,
                    llm,
                    policy,
                    timeout_ms=timeout_ms,
                    profile_id=profile_id,
                    give_up_after=give_up_after,
                )
            )
        if client is not None:
            await client.aclose()
        if len(results[-1]) < len(commands):
            aborted = True
            break
    if source is None:
        source = {"kind": "url" if llm_url and transport is None else "transport"}
    return ReplayReport(tuple(results), max_disagreement, max_error_rate, aborted, source)
