"""Helpers for flag tests: OpenFeature's real InMemoryProvider, and waiting with a deadline."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import anyio
from openfeature.provider.in_memory_provider import InMemoryFlag, InMemoryProvider

from partial_trust.config import EnvDefaults
from partial_trust.flags.source import FlagSettingsSource


class LiveFlags(dict[str, InMemoryFlag[Any]]):
    """The flags an ``InMemoryProvider`` was built with, kept live: the provider stores
    ``flags.copy()``, and this copy is the same mapping, so a later change is what it serves."""

    def copy(self) -> LiveFlags:
        return self


class MemoryProvider(InMemoryProvider):
    """OpenFeature's real ``InMemoryProvider``, with its flags changeable through a public
    handle (it has no update method of its own; a change emits no event, like a backend
    whose next poll simply answers differently)."""

    def __init__(self, flags: LiveFlags) -> None:
        super().__init__(flags)
        self.flags = flags


def memory_provider(values: Mapping[str, object]) -> MemoryProvider:
    return MemoryProvider(
        LiveFlags({key: InMemoryFlag("v", {"v": value}) for key, value in values.items()})
    )


def put(provider: MemoryProvider, key: str, value: object) -> None:
    """Change a flag in place."""
    provider.flags[key] = InMemoryFlag("v", {"v": value})


def memory_source(
    provider: Any, environ: Mapping[str, str] | None = None, **kwargs: Any
) -> FlagSettingsSource:
    return FlagSettingsSource(
        EnvDefaults.from_env(environ or {}),
        kind="memory",
        provider_factory=lambda: provider,
        **kwargs,
    )


async def wait_until(predicate: Callable[[], bool], timeout_s: float = 0.3) -> float:
    """Seconds until ``predicate()`` held; fails the test past ``timeout_s``."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout_s:
            raise AssertionError(f"condition not met within {timeout_s * 1000:.0f} ms")
        await anyio.sleep(0.002)
    return time.monotonic() - start


def limits_of(status: dict[str, object]) -> dict[str, object]:
    """The ``limits`` part of a settings source's ``/health`` status (what caps each value)."""
    found = status["limits"]
    assert isinstance(found, dict)
    return found
