"""The Unleash SDK's fetch, observed: every outcome goes to ``FetchHealth``.

``ObservedTransport`` is the SDK's own ``_Transport`` (UnleashClient 6.9–6.x; the dependency is
bounded) with ``fetch_features`` overridden, so registration and metrics are untouched. It keeps
one kept-alive session (the polling thread is its only caller), does not retry (the next poll
is one interval away) and turns each failure into a short, stable reason that names the kind,
never the details (no addresses, no URL, no token). A 200 is reported as *applying*: it counts
as a success once the SDK has loaded the toggles (``partial_trust.flags.unleash`` hears its FETCHED
event).
``MemoryCache`` keeps the SDK's toggles in this process only.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import requests
from UnleashClient._transport import FetchResult, _Transport
from UnleashClient.cache import BaseCache
from UnleashClient.constants import FEATURES_URL

from partial_trust.flags.unleash_health import FetchHealth, describe_http

__all__ = ["MemoryCache", "ObservedTransport", "_Transport"]
logger = logging.getLogger("partial_trust.flags")


class MemoryCache(BaseCache):
    """The SDK's cache, in this process only (see the module docstring)."""

    def __init__(self) -> None:
        self._data: dict[str, Any] = {}

    def set(self, key: str, value: Any) -> None:
        self._data[key] = value

    def mset(self, data: dict[str, Any]) -> None:
        self._data.update(data)

    def get(self, key: str, default: Any | None = None) -> Any:
        return self._data.get(key, default)

    def exists(self, key: str) -> bool:
        return key in self._data

    def destroy(self) -> None:
        self._data.clear()


class ObservedTransport(_Transport):
    """The SDK's transport, whose feature fetch reports every outcome to ``FetchHealth``."""

    def __init__(
        self, original: _Transport, health: FetchHealth, on_outcome: Callable[[], None]
    ) -> None:
        super().__init__(original._config, original._headers)
        self._health = health
        self._on_outcome = on_outcome
        self._session = requests.Session()
        self._logged: str | None = None

    def fetch_features(self, etag: str = "") -> FetchResult:
        try:
            result = self._fetch(etag)
        finally:
            self._on_outcome()
        return result

    def _fetch(self, etag: str) -> FetchResult:
        config = self._config
        headers = {**self._headers.polling(), "UNLEASH-APPNAME": config.app_name}
        if etag:
            headers["If-None-Match"] = etag
        params = {"project": config.project_name} if config.project_name else {}
        try:
            resp = self._session.get(
                config.url.rstrip("/") + FEATURES_URL,
                headers=headers,
                params=params,
                timeout=config.request_timeout,
                **(config.custom_options or {}),
            )
        except requests.Timeout:
            return self._fail(f"timed out after {config.request_timeout} s")
        except requests.RequestException:
            return self._fail("connection failed")
        if resp.status_code == 304:
            self._health.succeeded()
            self._logged = None
            return FetchResult(None, resp.headers.get("etag", ""), not_modified=True)
        if resp.status_code != 200:
            return self._fail(describe_http(resp.status_code), resp.status_code)
        try:
            body = json.loads(resp.text)
            valid = isinstance(body, dict) and isinstance(body.get("features"), list)
        except ValueError:
            valid = False
        if not valid:
            return self._fail("not an Unleash client API answer (is UNLEASH_URL …/api?)")
        self._health.applying()  # success once the SDK applied it (its FETCHED event)
        self._logged = None
        return FetchResult(resp.text, resp.headers.get("etag", ""))

    def _fail(self, reason: str, status: int | None = None) -> FetchResult:
        self._health.failed(reason, http_status=status)
        if reason != self._logged:  # once per new reason, not once a second
            self._logged = reason
            logger.warning("Unleash fetch failed: %s", reason)
        return FetchResult(None, "")

    def close(self) -> None:
        self._session.close()
