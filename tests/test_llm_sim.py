"""The LLM double: every fault mode's observable effect, seeded rates, the control API, the CLI.

In-process through ``httpx.ASGITransport`` except where the transport would hide the effect:
drip is checked on raw ASGI messages (the transport buffers bodies) and one test runs the real
``partial-trust llm-sim`` process.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from pydantic import ValidationError

from middleware.candidate import ShoppingCandidate, chat_request
from middleware.contracts import CommandContext, CommandDTO
from middleware.llm_sim import Mode, SimConfig, create_app, main
from middleware.llm_sim.answers import INJECTIONS, WRONG_INTENTS
from middleware.llm_sim.cli import build_parser, config_from_args
from middleware.reference.baseline import route
from tests.support.asgi import post_scope
from tests.support.procs import free_port, partial_trust, run_server

LISTS = ["l-1", "l-2"]
COMMAND = CommandDTO(
    command_id="c-1",
    user_id="u-1",
    text="add milk and two eggs to my shopping list",
    capabilities=["start_job"],
    context=CommandContext(default_list_id="l-1", lists=LISTS),
)
REQUEST = chat_request(COMMAND, model="sim-model", temperature=0.0, max_tokens=256)
PATH = "/v1/chat/completions"


def _client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sim")


@pytest.fixture
async def sim() -> AsyncIterator[httpx.AsyncClient]:
    async with _client(create_app(SimConfig(seed=7))) as client:
        yield client


async def _force(client: httpx.AsyncClient, mode: Mode, **extra: Any) -> None:
    response = await client.post("/sim/config", json={"force": mode.value, **extra})
    assert response.status_code == 200, response.text


async def _content(client: httpx.AsyncClient) -> str:
    response = await client.post(PATH, json=REQUEST)
    assert response.status_code == 200
    content: str = response.json()["choices"][0]["message"]["content"]
    return content


async def _candidate(client: httpx.AsyncClient) -> dict[str, Any]:
    candidate: dict[str, Any] = json.loads(await _content(client))
    return candidate


# --- the clean answer ------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("path", ["/v1/chat/completions", "/chat/completions"])
async def test_clean_answer_is_the_baseline_decision_as_a_candidate(
    sim: httpx.AsyncClient, path: str
) -> None:
    response = await sim.post(path, json=REQUEST)
    assert response.status_code == 200
    assert response.headers["x-sim-fault"] == "none"
    body = response.json()
    assert body["object"] == "chat.completion"
    assert body["model"] == "sim-model"
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["choices"][0]["message"]["role"] == "assistant"
    assert body["usage"]["total_tokens"] > 0
    candidate = ShoppingCandidate.model_validate_json(body["choices"][0]["message"]["content"])
    decision = route(COMMAND)
    assert decision.job is not None
    assert candidate.intent == decision.intent == "add_shopping_item"
    assert candidate.job.job_type == decision.job.job_type
    assert candidate.job.payload.model_dump() == decision.job.payload
    assert candidate.confidence == 0.9


@pytest.mark.anyio
async def test_a_command_outside_the_corridor_keeps_the_candidate_shape(
    sim: httpx.AsyncClient,
) -> None:
    timer = COMMAND.model_copy(update={"text": "set a timer for 5 minutes"})
    request = chat_request(timer, model="m", temperature=0.0, max_tokens=64)
    response = await sim.post(PATH, json=request)
    content = response.json()["choices"][0]["message"]["content"]
    candidate = ShoppingCandidate.model_validate_json(content)
    assert candidate.intent == route(timer).intent == "set_timer"
    assert candidate.job.payload.items == []


@pytest.mark.anyio
async def test_bad_request_is_400_and_counted(sim: httpx.AsyncClient) -> None:
    response = await sim.post(PATH, json={"model": "m", "messages": [{"role": "user"}]})
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"
    stats = (await sim.get("/sim/stats")).json()
    assert (stats["total"], stats["bad_requests"], sum(stats["by_mode"].values())) == (1, 1, 0)


# --- transport faults ------------------------------------------------------------------------


@pytest.mark.anyio
async def test_error_answers_500_or_503(sim: httpx.AsyncClient) -> None:
    await _force(sim, Mode.ERROR)
    statuses = set()
    for _ in range(20):
        response = await sim.post(PATH, json=REQUEST)
        statuses.add(response.status_code)
        assert response.json()["error"]["type"] == "server_error"
    assert statuses == {500, 503}


@pytest.mark.anyio
async def test_hang_outlasts_the_client_timeout_without_blocking_others(
    sim: httpx.AsyncClient,
) -> None:
    await _force(sim, Mode.HANG)
    timed_out = False

    async def hang() -> None:
        nonlocal timed_out
        with anyio.move_on_after(0.3) as scope:
            await sim.post(PATH, json=REQUEST)
        timed_out = scope.cancelled_caught

    async with anyio.create_task_group() as group:
        group.start_soon(hang)
        await anyio.sleep(0.05)
        assert (await sim.get("/sim/stats")).json()["in_flight"] == 1
        await _force(sim, Mode.NONE)
        assert (await sim.post(PATH, json=REQUEST)).status_code == 200
        assert (await sim.get("/sim/stats")).json()["in_flight"] == 1  # the hang is still open
    assert timed_out
    assert (await sim.get("/sim/stats")).json()["in_flight"] == 0


@pytest.mark.anyio
async def test_hang_ends_with_504_after_hang_max(sim: httpx.AsyncClient) -> None:
    await _force(sim, Mode.HANG, hang_max_s=0.1)
    started = time.monotonic()
    response = await sim.post(PATH, json=REQUEST)
    assert response.status_code == 504
    assert time.monotonic() - started >= 0.1


def _chat_scope() -> dict[str, Any]:
    """An HTTP scope for one POST to the chat endpoint, for driving the ASGI app directly."""
    return post_scope(PATH, asgi={"version": "3.0", "spec_version": "2.3"}, state={})


async def _raw_asgi(app: Any, body: bytes) -> list[tuple[float, dict[str, Any]]]:
    """Every message the app sends, timestamped: ASGITransport would buffer the body."""
    sent: list[tuple[float, dict[str, Any]]] = []
    started = time.monotonic()
    delivered = False
    done = anyio.Event()

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append((time.monotonic() - started, message))

    scope = _chat_scope()
    await app(scope, receive, send)
    done.set()
    return sent


@pytest.mark.anyio
async def test_drip_sends_headers_at_once_then_the_body_slowly() -> None:
    config = SimConfig(force=Mode.DRIP, drip_interval_ms=20, drip_chunk_bytes=64)
    sent = await _raw_asgi(create_app(config), json.dumps(REQUEST).encode())
    (start_at, start), *body_messages = sent
    assert start["type"] == "http.response.start" and start["status"] == 200
    chunks = [m["body"] for _, m in body_messages if m.get("body")]
    assert len(chunks) >= 4 and all(len(c) <= 64 for c in chunks)
    finished_at = body_messages[-1][0]
    assert finished_at >= (len(chunks) - 1) * 0.020
    assert (
        start_at < body_messages[0][0] + 0.01 < finished_at / 2
    )  # headers and first bytes at once
    content = json.loads(b"".join(chunks))["choices"][0]["message"]["content"]
    ShoppingCandidate.model_validate_json(content)  # a patient client gets a good answer


# --- clients that give up ----------------------------------------------------------------


async def _abandoned(
    app: Any, gone_after: float, *, messages: list[dict[str, Any]] | None = None
) -> tuple[float, list[dict[str, Any]]]:
    """Run one chat call whose client disconnects ``gone_after`` s after sending its body.

    Returns how long the app took to return after the disconnect, and what it sent.
    """
    pending = list(messages or [{"type": "http.request", "body": json.dumps(REQUEST).encode()}])
    sent: list[dict[str, Any]] = []
    gone_at = math.inf

    async def receive() -> dict[str, Any]:
        nonlocal gone_at
        if pending:
            return pending.pop(0)
        await anyio.sleep(gone_after)
        gone_at = min(gone_at, time.monotonic())
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = _chat_scope()
    with anyio.fail_after(5):  # a handler that ignores the disconnect would sleep far longer
        await app(scope, receive, send)  # no exception escapes: the server logs nothing
    return time.monotonic() - gone_at, sent


def _stats(app: Any) -> dict[str, Any]:
    stats: dict[str, Any] = app.state.sim.stats()
    return stats


@pytest.mark.anyio
@pytest.mark.parametrize(
    "config",
    [
        SimConfig(force=Mode.HANG),  # hang_max_s is 600 s
        SimConfig(force=Mode.NONE, latency_ms=60_000),
        SimConfig(force=Mode.ERROR, latency_ms=60_000),
    ],
    ids=["hang", "latency", "latency-then-error"],
)
async def test_a_client_that_gives_up_ends_the_wait_at_once_and_is_counted(
    config: SimConfig,
) -> None:
    app = create_app(config)
    late, sent = await _abandoned(app, gone_after=0.05)
    assert late < 0.5
    assert sent == []  # nobody to answer
    stats = _stats(app)
    assert stats["client_disconnects"] == 1
    assert stats["in_flight"] == 0
    assert stats["total"] == 1


@pytest.mark.anyio
async def test_a_drip_cut_short_is_counted() -> None:
    app = create_app(SimConfig(force=Mode.DRIP, drip_interval_ms=20, drip_chunk_bytes=8))
    late, sent = await _abandoned(app, gone_after=0.1)
    assert late < 0.5
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 200
    assert all(m.get("more_body") for m in sent[1:])  # the body never completed
    assert _stats(app)["client_disconnects"] == 1
    assert _stats(app)["in_flight"] == 0


@pytest.mark.anyio
async def test_a_body_cut_short_is_counted_not_an_error() -> None:
    app = create_app(SimConfig())
    part = {"type": "http.request", "body": b'{"model": ', "more_body": True}
    _, sent = await _abandoned(app, gone_after=0.0, messages=[part])
    assert sent == []
    stats = _stats(app)
    assert (stats["client_disconnects"], stats["total"], stats["bad_requests"]) == (1, 0, 0)


@pytest.mark.anyio
async def test_a_patient_client_is_not_a_disconnect(sim: httpx.AsyncClient) -> None:
    await _force(sim, Mode.HANG, hang_max_s=0.05)
    assert (await sim.post(PATH, json=REQUEST)).status_code == 504
    await _force(sim, Mode.NONE, latency_ms=20)
    assert (await sim.post(PATH, json=REQUEST)).status_code == 200
    assert (await sim.get("/sim/stats")).json()["client_disconnects"] == 0


@pytest.mark.anyio
async def test_reset_zeroes_the_disconnects() -> None:
    app = create_app(SimConfig(force=Mode.HANG))
    await _abandoned(app, gone_after=0.0)
    assert _stats(app)["client_disconnects"] == 1
    async with _client(app) as client:
        assert (await client.post("/sim/reset")).json()["client_disconnects"] == 0


@pytest.mark.anyio
async def test_oversized_is_at_least_10_mib_of_valid_json(sim: httpx.AsyncClient) -> None:
    await _force(sim, Mode.OVERSIZED)
    response = await sim.post(PATH, json=REQUEST)
    assert response.status_code == 200
    assert len(response.content) >= 10 * 1024 * 1024
    ShoppingCandidate.model_validate_json(response.json()["choices"][0]["message"]["content"])


@pytest.mark.anyio
async def test_invalid_utf8_body(sim: httpx.AsyncClient) -> None:
    await _force(sim, Mode.INVALID_UTF8)
    response = await sim.post(PATH, json=REQUEST)
    assert response.status_code == 200
    with pytest.raises(UnicodeDecodeError):
        response.content.decode("utf-8")


@pytest.mark.anyio
async def test_latency_is_fixed_plus_jitter(sim: httpx.AsyncClient) -> None:
    await sim.post("/sim/config", json={"latency_ms": 40, "latency_jitter_ms": 20})
    for _ in range(3):
        started = time.monotonic()
        assert (await sim.post(PATH, json=REQUEST)).status_code == 200
        assert 0.040 <= time.monotonic() - started < 0.5
    assert (await sim.get("/sim/stats")).json()["delayed"] == 3


# --- content faults --------------------------------------------------------------------------


@pytest.mark.anyio
async def test_malformed_content_never_parses(sim: httpx.AsyncClient) -> None:
    await _force(sim, Mode.MALFORMED)
    seen = set()
    for _ in range(15):
        content = await _content(sim)
        seen.add(content[:3])
        with pytest.raises(ValueError):
            json.loads(content)
    assert len(seen) == 3  # truncated, prose and fenced all occur


@pytest.mark.anyio
async def test_wrong_intent(sim: httpx.AsyncClient) -> None:
    await _force(sim, Mode.WRONG_INTENT)
    candidate = await _candidate(sim)
    assert candidate["intent"] != route(COMMAND).intent
    assert candidate["intent"] in WRONG_INTENTS


@pytest.mark.anyio
async def test_extra_fields_fail_the_strict_schema(sim: httpx.AsyncClient) -> None:
    await _force(sim, Mode.EXTRA_FIELDS)
    candidate = await _candidate(sim)
    assert set(candidate) - {"intent", "job", "confidence"} == {"reasoning"}
    with pytest.raises(ValidationError):
        ShoppingCandidate.model_validate(candidate)


@pytest.mark.anyio
async def test_foreign_list(sim: httpx.AsyncClient) -> None:
    await _force(sim, Mode.FOREIGN_LIST)
    candidate = await _candidate(sim)
    assert candidate["job"]["payload"]["list_id"] not in LISTS


@pytest.mark.anyio
async def test_low_confidence_follows_the_config(sim: httpx.AsyncClient) -> None:
    await _force(sim, Mode.LOW_CONFIDENCE)
    assert (await _candidate(sim))["confidence"] == 0.2
    await sim.post("/sim/config", json={"low_confidence": 0.35})
    assert (await _candidate(sim))["confidence"] == 0.35


@pytest.mark.anyio
async def test_no_confidence(sim: httpx.AsyncClient) -> None:
    await _force(sim, Mode.NO_CONFIDENCE)
    candidate = await _candidate(sim)
    assert "confidence" not in candidate
    ShoppingCandidate.model_validate(candidate)  # still schema-valid: confidence is optional


@pytest.mark.anyio
async def test_injection_in_item_names(sim: httpx.AsyncClient) -> None:
    await _force(sim, Mode.INJECTION)
    names = {(await _candidate(sim))["job"]["payload"]["items"][0]["name"] for _ in range(20)}
    assert names <= set(INJECTIONS) and len(names) > 1
    assert any(any(ord(ch) < 32 for ch in name) for name in names)


# --- seeded rates ----------------------------------------------------------------------------


async def _modes(client: httpx.AsyncClient, n: int) -> list[str]:
    return [(await client.post(PATH, json=REQUEST)).headers["x-sim-fault"] for _ in range(n)]


RATES = {
    "error_rate": 0.10,
    "malformed_rate": 0.10,
    "wrong_intent_rate": 0.05,
    "extra_fields_rate": 0.05,
    "foreign_list_rate": 0.05,
    "low_confidence_rate": 0.05,
    "no_confidence_rate": 0.05,
    "invalid_utf8_rate": 0.05,
    "injection_rate": 0.05,
}


@pytest.mark.anyio
async def test_same_seed_same_sequence() -> None:
    runs = []
    for seed in (3, 3, 4):
        async with _client(create_app(SimConfig.model_validate({"seed": seed, **RATES}))) as client:
            runs.append(await _modes(client, 200))
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


@pytest.mark.anyio
async def test_rates_hold_over_2000_requests() -> None:
    n = 2000
    async with _client(create_app(SimConfig.model_validate({"seed": 11, **RATES}))) as client:
        await _modes(client, n)
        stats = (await client.get("/sim/stats")).json()
    assert stats["total"] == sum(stats["by_mode"].values()) == n
    expected = {name.removesuffix("_rate"): rate for name, rate in RATES.items()}
    expected["none"] = 1 - sum(RATES.values())
    for mode, rate in expected.items():
        tolerance = 4 * math.sqrt(rate * (1 - rate) / n)
        assert abs(stats["by_mode"][mode] / n - rate) <= tolerance, mode


def test_pick_covers_every_mode_by_its_share() -> None:
    rate = 1 / len(Mode)
    config = SimConfig.model_validate({f"{m.value}_rate": rate for m in Mode if m is not Mode.NONE})
    rng = random.Random(5)
    counts = Counter(config.pick(rng.random()) for _ in range(26_000))
    assert set(counts) == set(Mode)
    assert all(abs(count / 26_000 - rate) < 0.01 for count in counts.values())
    assert SimConfig(force=Mode.HANG, error_rate=1.0).pick(0.0) is Mode.HANG


# --- control API -----------------------------------------------------------------------------


@pytest.mark.anyio
async def test_config_changes_behaviour_live(sim: httpx.AsyncClient) -> None:
    assert (await _candidate(sim))["intent"] == "add_shopping_item"
    response = await sim.post("/sim/config", json={"wrong_intent_rate": 1.0})
    assert response.json()["wrong_intent_rate"] == 1.0
    assert (await _candidate(sim))["intent"] in WRONG_INTENTS
    await sim.post("/sim/config", json={"wrong_intent_rate": 0})
    assert (await _candidate(sim))["intent"] == "add_shopping_item"
    assert (await sim.get("/sim/config")).json()["wrong_intent_rate"] == 0.0


@pytest.mark.anyio
@pytest.mark.parametrize(
    "body",
    [
        {"error_rate": 1.5},
        {"error_rate": "0.5"},
        {"error_rate": 0.6, "hang_rate": 0.6},
        {"force": "explode"},
        {"no_such_option": 1},
        {"drip_interval_ms": 0},
        [1, 2],
    ],
)
async def test_bad_config_is_422_and_changes_nothing(sim: httpx.AsyncClient, body: Any) -> None:
    before = (await sim.get("/sim/config")).json()
    response = await sim.post("/sim/config", json=body)
    assert response.status_code == 422
    assert (await sim.get("/sim/config")).json() == before


@pytest.mark.anyio
async def test_stats_count_and_reset_restarts_the_sequence(sim: httpx.AsyncClient) -> None:
    await sim.post("/sim/config", json={"error_rate": 0.5})
    first = await _modes(sim, 30)
    stats = (await sim.get("/sim/stats")).json()
    assert stats["total"] == 30
    assert stats["by_mode"]["error"] == first.count("error") > 0
    assert stats["by_mode"]["none"] == first.count("none") > 0
    reset = (await sim.post("/sim/reset")).json()
    assert reset["total"] == 0 and not any(reset["by_mode"].values())
    assert await _modes(sim, 30) == first
    assert (await sim.get("/health")).json() == {"status": "ok"}


# --- CLI -------------------------------------------------------------------------------------


def test_cli_options_build_the_config() -> None:
    args = build_parser().parse_args(
        ["--seed", "9", "--hang-rate", "0.1", "--latency-ms", "20", "--force", "drip"]
    )
    config = config_from_args(args)
    assert (config.seed, config.hang_rate, config.latency_ms) == (9, 0.1, 20.0)
    assert config.force is Mode.DRIP
    assert (args.host, args.port) == ("127.0.0.1", 8081)


def test_cli_rejects_rates_over_one(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--error-rate", "0.7", "--hang-rate", "0.7"])
    assert exc.value.code == 2
    assert "sum to <= 1" in capsys.readouterr().err


@pytest.mark.integration
def test_real_process_answers_drips_and_releases_hangs(tmp_path: Path) -> None:
    """Socket-level effects ASGITransport cannot show: headers before a dripped body, and a
    hang that ends when the client gives up (nothing left in flight)."""
    port = free_port()
    argv = partial_trust("llm-sim", "--port", str(port), "--seed", "1")
    with (
        run_server(argv, port=port, ready_path="/health", log_path=tmp_path / "sim.log") as srv,
        httpx.Client(base_url=srv.url, timeout=5.0) as client,
    ):
        response = client.post(PATH, json=REQUEST)
        assert response.status_code == 200, srv.output()
        ShoppingCandidate.model_validate_json(response.json()["choices"][0]["message"]["content"])

        drip = {"force": "drip", "drip_interval_ms": 30, "drip_chunk_bytes": 64}
        assert client.post("/sim/config", json=drip).status_code == 200
        started = time.monotonic()
        with client.stream("POST", PATH, json=REQUEST) as stream:
            headers_at = time.monotonic() - started
            body = stream.read()
        finished_at = time.monotonic() - started
        assert finished_at >= 0.03 * (math.ceil(len(body) / 64) - 1)
        assert headers_at < finished_at / 2
        json.loads(body)

        assert client.post("/sim/config", json={"force": "hang"}).status_code == 200
        with pytest.raises(httpx.ReadTimeout):
            client.post(PATH, json=REQUEST, timeout=0.2)
        deadline = time.monotonic() + 2.0
        while client.get("/sim/stats").json()["in_flight"] and time.monotonic() < deadline:
            time.sleep(0.02)
        stats = client.get("/sim/stats").json()
        assert stats["in_flight"] == 0
        counted = {mode: n for mode, n in stats["by_mode"].items() if n}
        assert counted == {"none": 1, "drip": 1, "hang": 1}


@pytest.mark.integration
def test_real_process_counts_clients_that_give_up_without_tracebacks(tmp_path: Path) -> None:
    """Callers whose deadline closes the connection on a hang, a drip or a slow answer are a
    counted event, not a logged error, and free their handler at once."""
    port = free_port()
    argv = partial_trust("llm-sim", "--port", str(port), "--force", "hang", "--log-level", "info")
    with (
        run_server(argv, port=port, ready_path="/health", log_path=tmp_path / "sim.log") as srv,
        httpx.Client(base_url=srv.url, timeout=5.0) as client,
    ):
        hangs = 5
        for _ in range(hangs):
            with pytest.raises(httpx.ReadTimeout):
                client.post(PATH, json=REQUEST, timeout=0.2)

        drip = {"force": "drip", "drip_interval_ms": 20, "drip_chunk_bytes": 1}
        assert client.post("/sim/config", json=drip).status_code == 200
        with client.stream("POST", PATH, json=REQUEST) as stream:
            assert stream.status_code == 200
            next(stream.iter_raw())  # then give up: leaving the block closes the connection

        slow = {"force": "none", "latency_ms": 60_000}
        assert client.post("/sim/config", json=slow).status_code == 200
        with pytest.raises(httpx.ReadTimeout):
            client.post(PATH, json=REQUEST, timeout=0.2)

        expected = hangs + 2
        deadline = time.monotonic() + 2.0  # far below the 600 s hang and 60 s latency
        while time.monotonic() < deadline:
            stats = client.get("/sim/stats").json()
            if stats["client_disconnects"] == expected and not stats["in_flight"]:
                break
            time.sleep(0.02)
        assert stats["client_disconnects"] == expected, (stats, srv.output())
        assert stats["in_flight"] == 0
        assert stats["by_mode"]["hang"] == hangs

        assert client.post("/sim/config", json={"latency_ms": 0}).status_code == 200
        response = client.post(PATH, json=REQUEST)
        assert response.status_code == 200, srv.output()
        ShoppingCandidate.model_validate_json(response.json()["choices"][0]["message"]["content"])
        assert client.get("/sim/stats").json()["client_disconnects"] == expected

        log = srv.output()
        assert "Traceback" not in log and "Exception in ASGI application" not in log, log
