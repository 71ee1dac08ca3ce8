"""Every way an Unleash poll can end is judged, seen only through the SDK's public options.

Unit part: ``FetchObserver`` fed real ``requests`` responses and a stepped clock. Integration
part: the real ``UnleashClient`` polling a local stdlib HTTP server that answers what an
Unleash must not (a page that is not the client API, a 500 that the SDK's retry adapter turns
into an exception before any hook sees it), so the seam is checked against the SDK itself.
"""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from openfeature.provider import ProviderStatus
from UnleashClient.constants import ETAG, FEATURES_URL

from partial_trust.flags.unleash import UnleashFlagProvider
from partial_trust.flags.unleash_fetch import NO_ANSWER, NOT_UNLEASH, FetchObserver, ObservedCache
from partial_trust.flags.unleash_health import FetchHealth

BASE = "http://127.0.0.1:9/api"
FEATURES = json.dumps(
    {
        "version": 2,
        "features": [{"name": "on", "enabled": True, "strategies": [{"name": "default"}]}],
    }
)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def answer(
    status: int, body: str = "", method: str = "GET", path: str = FEATURES_URL
) -> requests.Response:
    resp = requests.Response()
    resp.status_code = status
    resp.url = BASE + path
    resp.raw = io.BytesIO(body.encode())
    resp.request = requests.Request(method, resp.url).prepare()
    return resp


@pytest.fixture
def seen() -> tuple[FetchObserver, FetchHealth, Clock, list[int]]:
    clock, outcomes = Clock(), []
    health = FetchHealth(3.0, clock=clock)
    observer = FetchObserver(health, lambda: outcomes.append(1), timeout_s=2.0, clock=clock)
    return observer, health, clock, outcomes


def poll(
    observer: FetchObserver, clock: Clock, resp: requests.Response | None, took: float
) -> None:
    """One SDK poll as the cache and the hook see it: ETag read, answer (or not), load."""
    cache = ObservedCache(observer)
    cache.get(ETAG, "")
    clock.now += took
    if resp is not None:
        observer.on_response(resp)
    cache.get(FEATURES_URL)


@pytest.mark.parametrize(
    ("resp", "took", "reason"),
    [
        (None, 0.01, NO_ANSWER),  # refused, reset, or a 5xx the retry adapter raised
        (None, 2.0, "timed out after 2 s"),
        (answer(401), 0.01, "HTTP 401"),
        (answer(404), 0.01, "HTTP 404"),
        (answer(200, "<html>Unleash</html>"), 0.01, NOT_UNLEASH),
        (answer(200, '{"features": "nope"}'), 0.01, NOT_UNLEASH),
    ],
    ids=["no-answer", "timeout", "401", "404", "html", "wrong-shape"],
)
def test_each_failed_poll_is_judged_once_with_its_reason(
    seen: tuple[FetchObserver, FetchHealth, Clock, list[int]],
    resp: requests.Response | None,
    took: float,
    reason: str,
) -> None:
    observer, health, clock, outcomes = seen
    poll(observer, clock, resp, took)
    status, detail = health.assess()
    assert status is ProviderStatus.ERROR and detail is not None and reason in detail
    assert len(outcomes) == 1  # judged once per poll: the silent end adds nothing after an answer


def test_a_page_that_is_not_unleash_reaches_the_sdk_as_a_failure(
    seen: tuple[FetchObserver, FetchHealth, Clock, list[int]],
) -> None:
    observer, _, _, _ = seen
    assert observer.on_response(answer(200, "<html/>")).status_code == 502
    assert observer.on_response(answer(200, FEATURES)).status_code == 200


def test_good_answers_count_and_other_calls_are_not_fetches(
    seen: tuple[FetchObserver, FetchHealth, Clock, list[int]],
) -> None:
    observer, health, clock, outcomes = seen
    poll(observer, clock, answer(304), 0.01)
    assert health.assess() == (ProviderStatus.READY, None)
    observer.on_response(answer(500, method="POST", path="/client/register"))
    observer.on_response(answer(400, method="POST", path="/client/metrics"))
    redirect = answer(301)
    redirect.headers["Location"] = BASE + FEATURES_URL + "/"
    observer.on_response(redirect)  # requests follows it; the final answer is judged
    assert (health.assess(), len(outcomes)) == ((ProviderStatus.READY, None), 1)
    poll(observer, clock, answer(200, FEATURES), 0.01)
    assert len(outcomes) == 2  # a 200 is *applying*: it counts on the SDK's FETCHED event


class Unleashish(BaseHTTPRequestHandler):
    """Answers ``/api/client/features`` with whatever the test set; 202 to everything else."""

    status, body = 200, FEATURES

    def do_GET(self) -> None:
        self.reply(type(self).status, type(self).body)

    def do_POST(self) -> None:
        self.reply(202, "")

    def reply(self, status: int, body: str) -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture
def server() -> Iterator[tuple[str, type[Unleashish]]]:
    handler = type("Handler", (Unleashish,), {})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/api", handler
    finally:
        httpd.shutdown()
        httpd.server_close()


def wait_for(predicate: object, timeout_s: float = 5.0) -> None:
    assert callable(predicate)
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


@pytest.mark.parametrize(
    ("status", "body", "reason"),
    [(200, "<html>login</html>", NOT_UNLEASH), (500, "", NO_ANSWER), (503, "", "HTTP 503")],
    ids=["html-200", "500-raised-by-retry", "503"],
)
def test_the_real_sdk_keeps_its_toggles_and_says_why(
    server: tuple[str, type[Unleashish]], status: int, body: str, reason: str
) -> None:
    url, handler = server
    provider = UnleashFlagProvider(url, "partial-trust-tests", "token")
    provider.initialize()
    try:
        assert provider.client.is_enabled("on") and provider.status_detail is None
        handler.status, handler.body = status, body
        wait_for(lambda: provider.status_detail is not None)
        assert reason in str(provider.status_detail)
        assert provider.client.is_enabled("on")  # the last good toggles, not the bad answer
        handler.status, handler.body = 200, FEATURES
        wait_for(lambda: provider.status_detail is None)
    finally:
        provider.shutdown()
