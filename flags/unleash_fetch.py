"""The Unleash SDK's fetch, observed through its public options: every outcome → ``FetchHealth``.

The SDK polls on its own and tells no one when a fetch fails. Two public seams show each poll:

* ``custom_options``, which the SDK passes to ``requests`` on every call: a ``response`` hook
  (``FetchObserver.on_response``) sees each answer to the feature fetch (registration and
  metrics calls are told apart by method and path). A 304 is a success, a 200 with an Unleash
  body is *applying* (it counts once the SDK has loaded the toggles: ``partial_trust.flags.
  unleash`` hears its FETCHED event), any other status a failure named by ``describe_http``.
  A 200 that is not an Unleash client API answer is handed on as a 502, so the SDK keeps its
  toggles instead of caching a page it cannot read.
* the ``cache`` (``ObservedCache``, a ``BaseCache``): the SDK reads the ETag before each
  poll and the features after it, whatever happened in between. A poll that ended with no
  answer raised inside ``requests``: it failed, by timing out if it took the request timeout,
  else by a refused or broken connection (or an HTTP 500/502/504, which the SDK's retry
  adapter turns into an error before any hook sees it).

Reasons are short and stable: they name the kind, never the details (no addresses, no URL, no
token). Each new reason is logged once, not once a poll. The cache keeps the SDK's toggles in
this process only.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import requests
from UnleashClient.cache import BaseCache
from UnleashClient.constants import ETAG, FEATURES_URL

from partial_trust.flags.unleash_health import FetchHealth, describe_http

logger = logging.getLogger("partial_trust.flags")
TIMEOUT_SHARE = 0.8  # a poll with no answer that lasted this share of the timeout timed out
NOT_UNLEASH = "not an Unleash client API answer (is UNLEASH_URL …/api?)"
NO_ANSWER = "connection failed or HTTP 5xx"


class FetchObserver:
    """Judges each SDK poll from its answer (``on_response``) or from its silent end."""

    def __init__(
        self,
        health: FetchHealth,
        on_outcome: Callable[[], None],
        timeout_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._health = health
        self._on_outcome = on_outcome
        self._timeout_s = timeout_s
        self._clock = clock
        self._lock = threading.Lock()
        self._started: float | None = None
        self._answered = False
        self._logged: str | None = None

    def request_options(self) -> dict[str, Any]:
        """The SDK's ``custom_options``: passed to ``requests`` on each of its calls."""
        return {"hooks": {"response": [self.on_response]}}

    def poll_started(self) -> None:
        with self._lock:
            self._started, self._answered = self._clock(), False

    def poll_ended(self) -> None:
        """The SDK is loading whatever it has: a poll with no answer raised in ``requests``."""
        with self._lock:
            started, answered = self._started, self._answered
            self._started = None
        if started is None or answered:
            return
        took = self._clock() - started
        if took >= TIMEOUT_SHARE * self._timeout_s:
            self._fail(f"timed out after {self._timeout_s:g} s")
        else:
            self._fail(NO_ANSWER)
        self._on_outcome()

    def on_response(self, resp: requests.Response, *args: Any, **kwargs: Any) -> requests.Response:
        """``requests``' response hook, on the SDK's polling thread; returns what the SDK sees."""
        request = resp.request
        if request.method != "GET" or not urlsplit(resp.url).path.endswith(FEATURES_URL):
            return resp  # registration, metrics
        if resp.is_redirect:
            return resp  # requests follows it; the final answer comes through here too
        with self._lock:
            self._answered = True
        try:
            return self._judge(resp)
        finally:
            self._on_outcome()

    def _judge(self, resp: requests.Response) -> requests.Response:
        if resp.status_code == 304:
            self._health.succeeded()
            self._logged = None
        elif resp.status_code != 200:
            self._fail(describe_http(resp.status_code), resp.status_code)
        elif not _unleash_body(resp.text):
            self._fail(NOT_UNLEASH)
            resp.status_code = 502  # the SDK rejects it and keeps the toggles it has
        else:
            self._health.applying()  # success once the SDK applied it (its FETCHED event)
            self._logged = None
        return resp

    def _fail(self, reason: str, status: int | None = None) -> None:
        self._health.failed(reason, http_status=status)
        if reason != self._logged:  # once per new reason, not once a second
            self._logged = reason
            logger.warning("Unleash fetch failed: %s", reason)


def _unleash_body(text: str) -> bool:
    try:
        body = json.loads(text)
    except ValueError:
        return False
    return isinstance(body, dict) and isinstance(body.get("features"), list)


class ObservedCache(BaseCache):
    """The SDK's cache, in memory only, marking where each of its polls starts and ends.

    In memory: the SDK's default file cache would let a later start with a wrong token come
    up on toggles left on disk by an earlier process.
    """

    def __init__(self, observer: FetchObserver) -> None:
        self._data: dict[str, Any] = {}
        self._observer = observer

    def set(self, key: str, value: Any) -> None:
        self._data[key] = value

    def mset(self, data: dict[str, Any]) -> None:
        self._data.update(data)

    def get(self, key: str, default: Any | None = None) -> Any:
        if key == ETAG:
            self._observer.poll_started()  # the conditional request is being built
        elif key == FEATURES_URL:
            self._observer.poll_ended()  # the SDK loads what it has, fetched or not
        return self._data.get(key, default)

    def exists(self, key: str) -> bool:
        return key in self._data

    def destroy(self) -> None:
        self._data.clear()
