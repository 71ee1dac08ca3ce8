"""The in-process corridor harness, cheap enough to build once per hypothesis example.

The fuzz and privacy properties each build a fresh harness for every generated example, so the
one fixed cost that dwarfs the request itself (loading the CA bundle) is paid once here.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx

from partial_trust.config import EffectiveSettings
from partial_trust.middleware.circuit import CircuitBreaker
from partial_trust.middleware.llm_client import LLMClient
from tests.corridor_harness import LLM_URL, Harness, harness

#: The profile's cap: a loaded machine must not turn an instant LLM double into a timeout.
TIMEOUT_MS = 500

_SSL = ssl.create_default_context()


@asynccontextmanager
async def quick_harness(
    tmp: Path, initial: EffectiveSettings | None = None, circuit: CircuitBreaker | None = None
) -> AsyncIterator[Harness]:
    """The harness, with the LLM client on an injected ``httpx.AsyncClient`` that reuses one
    SSL context: a fresh client loads the CA bundle (~40 ms), which would be most of every
    hypothesis example. respx still answers every request."""
    async with harness(tmp, initial, circuit) as h, httpx.AsyncClient(verify=_SSL) as client:
        h.engine.llm = LLMClient(LLM_URL, client=client)
        yield h
