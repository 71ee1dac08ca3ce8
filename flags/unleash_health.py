"""How fresh the Unleash provider's toggles are, judged from its own fetches.

The Unleash SDK never tells anyone that a fetch failed: it logs, keeps serving the last toggles
it had (or the caller's defaults if it never had any) and says nothing to OpenFeature. That is
how a stopped Unleash, a wrong token or a wrong URL came up READY on the environment defaults.
``FetchHealth`` is the missing judgement. Every fetch reports its outcome here, and
``assess()`` turns the history into an OpenFeature status and a reason:

* never fetched successfully → ``ERROR`` ("no successful fetch from Unleash yet: <last>");
* the last fetch was refused (HTTP 401/403: a wrong or revoked token) → ``ERROR`` at once,
  even with a recent good fetch: a credential problem is not a blip to ride out;
* no successful fetch within ``stale_after_s`` (a few refresh intervals: Unleash down,
  unreachable, answering 5xx, or a fetch hanging) → ``STALE``;
* otherwise ``READY``.

Reasons are short and stable (no ages, addresses or URLs), because the flag source logs each
new reason once and shows it on ``/health`` as ``flags.last_error``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from openfeature.provider import ProviderStatus

AUTH_STATUSES = frozenset({401, 403})


class FetchHealth:
    """Outcome of the provider's fetches (any thread) → status and reason (any thread)."""

    def __init__(self, stale_after_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.stale_after_s = stale_after_s
        self._clock = clock
        self._lock = threading.Lock()
        self._last_ok: float | None = None
        self._last_failure: str | None = None
        self._auth_refused = False
        self._applying = threading.Event()

    def applying(self) -> None:
        """A fetch answered 200: it counts once the SDK has the toggles (``succeeded``)."""
        self._applying.set()

    def succeeded(self) -> None:
        """The SDK applied fetched toggles, or a fetch answered 304 (unchanged)."""
        with self._lock:
            self._last_ok = self._clock()
            self._last_failure = None
            self._auth_refused = False
        self._applying.clear()

    def settle(self, timeout_s: float) -> None:
        """Wait (bounded) for a 200 being applied, so start-up judges the applied toggles."""
        deadline = self._clock() + timeout_s
        while self._applying.is_set() and self._clock() < deadline:
            time.sleep(0.005)

    def failed(self, reason: str, *, http_status: int | None = None) -> None:
        """A fetch failed; ``reason`` is short and stable (e.g. "connection failed")."""
        with self._lock:
            self._last_failure = reason
            self._auth_refused = http_status in AUTH_STATUSES
        self._applying.clear()

    def assess(self) -> tuple[ProviderStatus, str | None]:
        """(status, reason): ``READY`` with no reason, or why the toggles cannot be trusted."""
        with self._lock:
            last_ok, failure, refused = self._last_ok, self._last_failure, self._auth_refused
        if refused:
            return ProviderStatus.ERROR, f"Unleash refused the request ({failure})"
        if last_ok is None:
            return ProviderStatus.ERROR, f"no successful fetch from Unleash yet: {failure or '-'}"
        if self._clock() - last_ok > self.stale_after_s:
            return ProviderStatus.STALE, (
                f"no successful fetch from Unleash within {self.stale_after_s:g} s"
                f" (last attempt: {failure or 'still running'})"
            )
        return ProviderStatus.READY, None


def describe_http(status: int) -> str:
    """A failed fetch's HTTP status, as a reason that points at the usual cause."""
    if status == 401:
        return "HTTP 401: UNLEASH_API_TOKEN missing or not a valid token"
    if status == 403:
        return "HTTP 403: token not allowed here (a backend token? UNLEASH_URL ending in /api?)"
    if status == 404:
        return "HTTP 404: no client API here (UNLEASH_URL ending in /api?)"
    return f"HTTP {status}"
