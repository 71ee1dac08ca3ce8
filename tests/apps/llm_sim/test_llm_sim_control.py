"""Driving the LLM double: seeded fault rates, the control API, the CLI, the real process.

Drills and load tests rely on a seed replaying the same fault sequence and on rates holding over
many requests; ``/sim/config``, ``/sim/stats`` and ``/sim/reset`` must change and report that
mix live. The two integration tests run the real ``partial-trust llm-sim`` process for the
socket-level effects ``httpx.ASGITransport`` cannot show.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from partial_trust.apps.llm_sim import Mode, SimConfig, create_app, main
from partial_trust.apps.llm_sim.answers import WRONG_INTENTS
from partial_trust.apps.llm_sim.cli import build_parser, config_from_args
from partial_trust.middleware.candidate import ShoppingCandidate
from tests.support.llm_sim import PATH, REQUEST, answer_candidate, sim_client
from tests.support.procs import free_port, partial_trust, run_server

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
        config = SimConfig.model_validate({"seed": seed, **RATES})
        async with sim_client(create_app(config)) as client:
            runs.append(await _modes(client, 200))
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


@pytest.mark.anyio
async def test_rates_hold_over_2000_requests() -> None:
    n = 2000
    async with sim_client(create_app(SimConfig.model_validate({"seed": 11, **RATES}))) as client:
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
    assert (await answer_candidate(sim))["intent"] == "add_shopping_item"
    response = await sim.post("/sim/config", json={"wrong_intent_rate": 1.0})
    assert response.json()["wrong_intent_rate"] == 1.0
    assert (await answer_candidate(sim))["intent"] in WRONG_INTENTS
    await sim.post("/sim/config", json={"wrong_intent_rate": 0})
    assert (await answer_candidate(sim))["intent"] == "add_shopping_item"
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
