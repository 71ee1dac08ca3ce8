"""A real ``partial-trust serve``, configured only through ``OTEL_*``, exports its corridor spans
over OTLP/HTTP to a real receiver, with the documented attributes and none of the user's data;
and a collector that hangs or is down never slows the answers.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.stack import llm_sim, reference_app, sim_force
from tests.support.leaks import Secrets, windows
from tests.support.otlp_receiver import ReceivedSpan, otlp_receiver
from tests.support.procs import Server, free_port, partial_trust

pytestmark = pytest.mark.integration

CORRIDOR = "add_shopping_item"
SECRETS = Secrets(
    command_id="жcmd-Otl1",
    user_id="жuser-Otl2",
    items=("щапфел", "ёгруша"),
    lists=("юlist-a", "юlist-b"),
    foreign_list="эforeign",
    words="ёsecret words ёhere",
)
#: llm-sim mode -> the (status, reason) the corridor span must carry
MODES = {
    "none": ("accepted_llm", "accepted"),
    "wrong_intent": ("fallback_deterministic", "intent_mismatch"),
    "foreign_list": ("fallback_deterministic", "list_id_not_allowed"),
    "injection": ("fallback_deterministic", "invalid_item_name"),
    "hang": ("error", "llm_timeout"),
}
FAST_BATCH = {"OTEL_BSP_SCHEDULE_DELAY": "100"}


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with llm_sim(tmp_path_factory.mktemp("otlp-sim")) as server:
        yield server


def otel_env(endpoint: str, **extra: str) -> dict[str, str]:
    return {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, **extra}


def route(app: Server, body: object, timeout: float = 10.0) -> httpx.Response:
    return httpx.post(f"{app.url}/route", json=body, timeout=timeout)


def corridor_spans(spans: list[ReceivedSpan]) -> list[ReceivedSpan]:
    return [s for s in spans if s.name == "partial_trust.corridor"]


def leaked(secrets: Secrets, exported: bytes) -> list[str]:
    haystack = exported.decode("utf-8", errors="replace").casefold()
    found = [v for v in secrets.values() if v.casefold() in haystack]
    return found + [w for v in secrets.values() for w in sorted(windows(v)) if w in haystack]


def test_corridor_spans_reach_an_otlp_receiver(tmp_path: Path, sim: Server) -> None:
    env = otel_env(
        "",  # set below: the receiver's port is known only once it listens
        OTEL_RESOURCE_ATTRIBUTES="deployment.environment=otlp-test",
        **FAST_BATCH,
    )
    with otlp_receiver() as receiver:
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = receiver.url
        with reference_app(tmp_path, f"{sim.url}/v1", **env) as (app, _):
            for i, mode in enumerate(MODES):
                sim_force(sim, mode)
                body = SECRETS.command(command_id=f"{SECRETS.command_id}-{i}")
                assert route(app, body).status_code == 200
            sim_force(sim, "none")
            skip = SECRETS.command(text=f"set a timer for 5 minutes {SECRETS.words}")
            assert route(app, skip).status_code == 200
            spans = receiver.wait_spans(lambda got: len(corridor_spans(got)) >= len(MODES) + 1)

    corridor = corridor_spans(spans)
    outcomes = [
        (s.attributes["partial_trust.status"], s.attributes["partial_trust.reason"])
        for s in corridor
    ]
    assert sorted(outcomes) == sorted([*MODES.values(), ("skipped", "corridor_mismatch")])
    for span in corridor:
        assert span.attributes["partial_trust.corridor"] == CORRIDOR
        skipped = span.attributes["partial_trust.reason"] == "corridor_mismatch"
        assert span.attributes["partial_trust.sampled"] is not skipped
        assert span.attributes["partial_trust.sample_rate"] == 1.0
    errors = [s for s in corridor if s.attributes["partial_trust.status"] == "error"]
    assert [s.status_code for s in errors] == [2]  # STATUS_CODE_ERROR

    llm = [s for s in spans if s.name == "partial_trust.llm"]
    assert len(llm) == len(MODES)  # one LLM call per sampled request, none for the skip
    parents = {(s.trace_id, s.span_id) for s in corridor}
    assert all((s.trace_id, s.parent_span_id) in parents for s in llm)
    for span in spans:
        assert span.resource["service.name"] == "partial-trust"
        assert span.resource["deployment.environment"] == "otlp-test"
    assert leaked(SECRETS, receiver.raw()) == []


def test_service_name_and_sampler_from_the_environment(tmp_path: Path, sim: Server) -> None:
    with otlp_receiver() as receiver:
        env = otel_env(
            receiver.url,
            OTEL_SERVICE_NAME="corridor-canary",
            OTEL_TRACES_SAMPLER="always_off",
            **FAST_BATCH,
        )
        with reference_app(tmp_path, f"{sim.url}/v1", "off", **env) as (app, _):
            assert route(app, SECRETS.command()).status_code == 200
        assert receiver.spans() == []  # always_off: the SDK sampled nothing (flushed at stop)
        env["OTEL_TRACES_SAMPLER"] = "parentbased_always_on"
        with reference_app(tmp_path, f"{sim.url}/v1", "on", **env) as (app, _):
            assert route(app, SECRETS.command()).status_code == 200
            spans = receiver.wait_spans(lambda got: len(corridor_spans(got)) >= 1)
    assert {s.resource["service.name"] for s in spans} == {"corridor-canary"}


def test_spans_are_flushed_when_the_app_stops(tmp_path: Path, sim: Server) -> None:
    """A 10-minute batch delay: the spans can only leave through the shutdown flush."""
    with otlp_receiver() as receiver:
        env = otel_env(receiver.url, OTEL_BSP_SCHEDULE_DELAY="600000")
        with reference_app(tmp_path, f"{sim.url}/v1", **env) as (app, _):
            for i in range(3):
                assert route(app, SECRETS.command(command_id=f"c{i}")).status_code == 200
            time.sleep(0.5)
            assert receiver.spans() == []
        spans = receiver.wait_spans(lambda got: len(corridor_spans(got)) >= 3, timeout_s=5)
    assert len(corridor_spans(spans)) == 3


@pytest.mark.parametrize("collector", ["hangs", "down"])
def test_a_stuck_collector_never_slows_the_answers(
    tmp_path: Path, sim: Server, collector: str
) -> None:
    """Tiny queue, long export timeout: the queue fills and drops, the requests never wait."""
    requests = 150
    with otlp_receiver(hang=True) as receiver:
        endpoint = receiver.url if collector == "hangs" else f"http://127.0.0.1:{free_port()}"
        env = otel_env(
            endpoint,
            OTEL_BSP_MAX_QUEUE_SIZE="8",
            OTEL_BSP_MAX_EXPORT_BATCH_SIZE="4",
            OTEL_BSP_SCHEDULE_DELAY="50",
            OTEL_EXPORTER_OTLP_TIMEOUT="60",
        )
        with reference_app(tmp_path, f"{sim.url}/v1", collector, **env) as (app, _):
            sim_force(sim, "none")
            slowest = 0.0
            answered = 0
            started = time.monotonic()
            for i in range(requests):
                t0 = time.monotonic()
                response = route(app, SECRETS.command(command_id=f"c{i}"), timeout=5)
                slowest = max(slowest, time.monotonic() - t0)
                answered += response.status_code == 200
            elapsed = time.monotonic() - started
            if collector == "hangs":
                assert receiver.posts >= 1  # the exporter really is stuck on the receiver
            app.process.terminate()
            t0 = time.monotonic()
            app.process.wait(timeout=30)
            stop_s = time.monotonic() - t0
    assert answered == requests
    assert slowest < 2.0, slowest
    assert elapsed < 60, elapsed
    assert stop_s < 15, stop_s  # the flush gives up after SHUTDOWN_TIMEOUT_S (5 s)
    assert "Queue full, dropping Span" in app.output()  # the drop path really was taken
    assert "Traceback" not in app.output()


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"OTEL_TRACES_EXPORTER": "jaeger"}, "unknown exporter 'jaeger'"),
        ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "thrift"}, "protocol"),
    ],
)
def test_serve_refuses_a_wrong_otel_value_in_one_line(
    tmp_path: Path, env: dict[str, str], needle: str
) -> None:
    argv = partial_trust("serve", "--port", str(free_port()))
    done = subprocess.run(
        argv, env={**os.environ, **env}, capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and needle in done.stderr, done.stderr
    assert "Traceback" not in done.stderr + done.stdout
