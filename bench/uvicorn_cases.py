"""The cases ``bench_uvicorn.py`` serves and the ``wrk`` script that drives them.

Each case is an app factory of ``bench/apps.py`` under one uvicorn stack: its standard extras
(``uvloop``, ``httptools``: what ``uvicorn[standard]`` installs for production) or plain
``asyncio`` with ``h11``; every ratio is taken against the bare app on the same stack.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bench.bench_middleware import body_for
from partial_trust.middleware.sampling import is_sampled

SAMPLED = "sampled, instant LLM"
SHIPPED = "  same, breaker on"
CORRIDOR = "add_shopping_item"
PLACEHOLDER = "@@ID@@"

LUA = """
local prefix = [==[{prefix}]==]
local suffix = [==[{suffix}]==]
local ids = {{{ids}}}
local mode = "unique"
local counter = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

function init(args)
  if args[1] then mode = args[1] end
end

function request()
  counter = counter + 1
  local id
  if mode == "unsampled" then id = ids[(counter % #ids) + 1] else id = "b-" .. counter end
  return wrk.format(nil, nil, nil, prefix .. id .. suffix)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {{"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, ' ..
    '"non2xx": %d, "socket_errors": %d}}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.status, e.connect + e.read + e.write + e.timeout))
end
"""


@dataclass(frozen=True)
class Case:
    name: str
    factory: str
    path: str = "/route"
    mode: str = "unique"  # or "unsampled": ids the corridor does not sample at the rate
    env: tuple[tuple[str, str], ...] = ()
    stack: str = "uvloop"  # uvicorn's standard extras (uvloop, httptools), or "asyncio" (h11)
    bare: str = "bare Starlette"  # the case this one's ratio is taken against


def corridor_env(
    enabled: bool, llm_url: str, log: Path, rate: float
) -> tuple[tuple[str, str], ...]:
    return (
        ("PARTIAL_TRUST_FLAGS_PROVIDER", "env"),
        ("PARTIAL_TRUST_ENABLED", "true" if enabled else "false"),
        ("PARTIAL_TRUST_SAMPLE_RATE", str(rate)),
        ("PARTIAL_TRUST_TIMEOUT_MS", "200"),
        ("LLM_POLICY_ENABLED", "true"),
        ("LLM_BASE_URL", llm_url),
        ("PARTIAL_TRUST_HASH_KEY", "bench-key"),
        ("PARTIAL_TRUST_RISK_LOG_PATH", str(log)),
    )


#: uvicorn's ``--loop``/``--http`` per stack: what ``uvicorn[standard]`` installs, and without.
STACKS = {"uvloop": ("uvloop", "httptools"), "asyncio": ("asyncio", "h11")}
BARE_H11 = "bare, asyncio+h11"
SAMPLED_H11 = "sampled, asyncio+h11"


def cases(llm_url: str, tmp: Path, rate: float, quick: bool = False) -> list[Case]:
    def env(name: str, enabled: bool = True) -> tuple[tuple[str, str], ...]:
        return corridor_env(enabled, llm_url, tmp / f"{name}.jsonl", rate)

    no_breaker = ("BENCH_CIRCUIT_BREAKER", "off")
    h11 = [
        Case(BARE_H11, "bare", stack="asyncio", bare=BARE_H11),
        Case(
            SAMPLED_H11, "corridor", env=(*env("h11"), no_breaker), stack="asyncio", bare=BARE_H11
        ),
    ]
    if quick:  # the budget's cases only
        return [
            Case("bare Starlette", "bare"),
            Case(SAMPLED, "corridor", env=(*env("sampled"), no_breaker)),
            *h11,
        ]
    return [
        Case("bare Starlette", "bare"),
        Case("foreign path", "corridor", path="/other", env=env("foreign")),
        Case("corridor disabled", "corridor", env=env("disabled", enabled=False)),
        Case("enabled, not sampled", "corridor", mode="unsampled", env=env("unsampled")),
        Case(SAMPLED, "corridor", env=(*env("sampled"), ("BENCH_CIRCUIT_BREAKER", "off"))),
        Case(SHIPPED, "corridor", env=env("shipped")),
        Case("starlette-exporter", "exporter"),
        Case("otel-instrumentation-asgi", "otel"),
        *h11,
    ]


def lua_script(path: Path, rate: float) -> Path:
    prefix, suffix = body_for(PLACEHOLDER).decode().split(PLACEHOLDER)
    unsampled = [f"u-{i}" for i in range(5000) if not is_sampled(CORRIDOR, f"u-{i}", rate)]
    ids = ", ".join(f'"{i}"' for i in unsampled[:1000])
    path.write_text(LUA.format(prefix=prefix, suffix=suffix, ids=ids), encoding="utf-8")
    return path
