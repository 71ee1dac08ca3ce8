"""The fast version of ``bench/interleave.py``: the corridor killed and live in turns, under load.

One app on the file flag provider, every request sampled, the breaker taken out, llm-sim
hanging; the real flag file flipped with ``flags``' ``kill``/``resume`` in ABBA order while
50 paced callers keep up a steady 333 requests/s and ``/health`` is probed every 5 ms.

What this proves, on any machine: the kill switch holds under that load (no LLM call
reaches llm-sim in a killed phase once it settled, and every live phase calls it), every
answer is a 200 with an outcome of the right kind, and the probe's samples land in the
phases they were sent in. The 10% budget on ``/health`` is the bench's (``bench_load.py``
prints it): on a shared 2-core CI machine a p99 of ~600 probes moves by more than 10% from
minute to minute. The bound here catches an event loop that waits for the LLM: a loop held
for the call would add up to the 150 ms deadline to a probe.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest

from bench.interleave import SETTLE_S, InterleavedReport, Phase, abba, by_phase, run_interleaved
from bench.loadgen import pct

pytestmark = pytest.mark.integration

TIMEOUT_MS = 150


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InterleavedReport]:
    result = run_interleaved(
        tmp_path_factory.mktemp("interleave"),
        label="fast",
        sample_rate=1.0,
        breaker=False,
        verdict=True,
        timeout_ms=TIMEOUT_MS,
        quads=1,
        phase_s=1.0,
    )
    result.print()  # shown by pytest on failure, and with -s
    yield result


def test_the_kill_switch_holds_under_load(report: InterleavedReport) -> None:
    killed = [p.llm_calls for p in report.phases if not p.live]
    live = [p.llm_calls for p in report.phases if p.live]
    assert [p.live for p in report.phases] == [False, True, True, False]
    assert killed == [0, 0], f"LLM calls after a kill settled: {killed}"
    assert all(n > 50 for n in live), f"a live phase barely called the LLM: {live}"


def test_every_answer_is_the_baselines_200_with_a_timeout_outcome(
    report: InterleavedReport,
) -> None:
    assert set(report.statuses) == {200}, report.statuses
    assert sum(report.statuses.values()) > 600
    assert set(report.reasons) == {"error/llm_timeout"}, report.reasons


def test_probes_land_in_their_phases_and_off_corridor_requests_do_not_wait(
    report: InterleavedReport,
) -> None:
    # ~100 probes land in a 2 s phase on an idle machine; a busy one (CI on 2 cores) may
    # starve the probe for part of a phase, so the bound only says every phase was probed.
    assert all(len(h) >= 5 for h in report.health), [len(h) for h in report.health]
    killed, live = report.p99(False), report.p99(True)
    assert live < killed + TIMEOUT_MS / 3, f"/health p99 live {live:.1f} ms, killed {killed:.1f}"
    assert report.cpu_us_per_request(True) > report.cpu_us_per_request(False)


def test_the_probe_runs_at_real_time_priority_where_it_may(report: InterleavedReport) -> None:
    ask = "import os; os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(10))"
    may = subprocess.run([sys.executable, "-c", ask], capture_output=True).returncode == 0
    assert report.realtime_probe is may


def test_abba_order_cancels_a_linear_drift() -> None:
    order = abba(3)
    assert order[:4] == [False, True, True, False]
    assert len(order) == 12
    # A latency rising by 1 per phase averages the same in both conditions.
    killed = [k for k, live in enumerate(order) if not live]
    live = [k for k, live in enumerate(order) if live]
    assert sum(killed) / len(killed) == sum(live) / len(live)


def test_samples_are_split_by_phase_and_the_settling_ones_dropped() -> None:
    phases = [Phase(False, 10.0, 11.0, 0, 0.0), Phase(True, 11.0, 12.0, 5, 0.0)]
    samples = [
        (10.0, 9.0),  # in the first phase's settling window
        (10.0 + SETTLE_S, 1.0),
        (10.99, 2.0),
        (11.1, 8.0),  # settling
        (11.5, 3.0),
        (12.0, 7.0),  # after the last phase
    ]
    assert by_phase(samples, phases) == [[1.0, 2.0], [3.0]]
    assert pct([1.0, 2.0, 3.0], 99) == 3.0


def test_a_killed_phase_with_an_llm_call_fails_the_check() -> None:
    report = InterleavedReport("t", 1.0, False, 50, 150, 1.0, True)
    report.phases = [Phase(False, 0, 1, 1, 0.1), Phase(True, 1, 2, 9, 0.2)]
    report.health = [[1.0] * 10, [1.0] * 10]
    report.statuses.update({200: 5})
    checks = dict(report.verdicts())
    kill = next(ok for text, ok in checks.items() if text.startswith("kill switch"))
    assert kill is False
    report.phases[0] = Phase(False, 0, 1, 0, 0.1)
    assert all(ok for _, ok in report.verdicts())
