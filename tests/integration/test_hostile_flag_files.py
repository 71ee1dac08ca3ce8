"""Hostile things at the flag path while a real ``partial-trust serve`` takes traffic.

A FIFO, a symlink to ``/dev/zero``, a directory, a 100 MB valid JSON file, an unreadable file
(the server runs as ``nobody`` when the tests run as root) and a kill with an older mtime.
For each: ``/health`` keeps answering fast and names the reason, the corridor turns off (the
LLM double's call count stops growing), and the kill still works (CLI, console, webhook) by
replacing the file; the audit log says it did.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from partial_trust.flags import flagfile
from tests.apps.console.helpers import TOKEN, WEBHOOK_TOKEN
from tests.integration.flag_probes import (
    HealthProbe,
    calls_grow,
    calls_settle,
    health,
    kill_cli,
    kill_console,
    kill_webhook,
    wait_health,
)
from tests.integration.stack import BASE_ENV, llm_sim
from tests.support.procs import Server, free_port, partial_trust, run_server
from tests.support.traffic import Traffic
from tests.support.unprivileged import as_reader, shared_dir

pytestmark = pytest.mark.integration
OFF_WITHIN_S = 0.5  # the guard polls every 50 ms; generous for a busy 2-core machine
HEALTH_MEDIAN_S = 0.1
HEALTH_MAX_S = 0.5  # no multi-second stall, with slack for the shared machine


@contextmanager
def served(tmp: Path, sim: Server, *, unprivileged: bool = False) -> Iterator[tuple[Server, Path]]:
    path = tmp / "partial-trust.flagd.json"
    path.write_bytes(flagfile.starter_document())
    os.chmod(path, 0o644)
    flagfile.set_flag(path, flagfile.SAMPLE_RATE, 1.0)
    flagfile.resume(path, keep_rate=True)  # at 100%, not the playbook's stage 1
    port = free_port()
    env = {
        **BASE_ENV,
        "PARTIAL_TRUST_FLAGS_PROVIDER": "file",
        "PARTIAL_TRUST_FLAGS_FILE": str(path),
        "LLM_BASE_URL": f"{sim.url}/v1",
        "PARTIAL_TRUST_RISK_LOG_PATH": str(tmp / "risk.jsonl"),
        "PARTIAL_TRUST_FLAGS_AUDIT_LOG": str(tmp / "audit.jsonl"),
        "PARTIAL_TRUST_CONSOLE_TOKEN": TOKEN,
        "PARTIAL_TRUST_WEBHOOK_TOKEN": WEBHOOK_TOKEN,
    }
    argv = partial_trust("serve", "--port", str(port), "--log-level", "warning")
    with run_server(
        as_reader(argv) if unprivileged else argv,
        port=port,
        ready_path="/health",
        log_path=tmp / f"app-{port}.log",
        env=env,
    ) as app:
        yield app, path


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Server, Path]]:
    tmp = tmp_path_factory.mktemp("hostile-flags")
    with llm_sim(tmp) as sim, served(tmp, sim) as (app, path):
        yield app, sim, path


def restore(path: Path) -> None:
    """A good file again, corridor on at 100%, whatever is at the path now."""
    if path.is_dir() and not path.is_symlink():
        path.rmdir()
    flagfile.kill(path)
    flagfile.set_flag(path, flagfile.SAMPLE_RATE, 1.0)
    flagfile.resume(path, keep_rate=True)  # at 100%, not the playbook's stage 1


def _swap(path: Path, make: Callable[[Path], None]) -> None:
    """Build the hostile thing next to the path, then rename it over (one atomic step)."""
    if make is _directory:  # a directory cannot be renamed over a file
        path.unlink()
        make(path)
        return
    tmp = path.with_name(".hostile")
    make(tmp)
    os.replace(tmp, path)


def _fifo(path: Path) -> None:
    os.mkfifo(path)


def _dev_zero(path: Path) -> None:
    path.symlink_to("/dev/zero")


def _big_valid_json(path: Path) -> None:
    good = flagfile.starter_document()
    with open(path, "wb") as handle:  # 100 MB of real bytes: valid JSON, padded with blanks
        handle.write(good[:-2])
        for _ in range(100):
            handle.write(b" " * (1 << 20))
        handle.write(good[-2:])


def _directory(path: Path) -> None:
    path.mkdir()


HOSTILE = {
    "fifo": (_fifo, "FIFO"),
    "dev-zero": (_dev_zero, "character device"),
    "100MB": (_big_valid_json, "byte limit"),
    "directory": (_directory, "directory"),
}


def break_and_watch(
    app: Server, sim: Server, path: Path, breaker: Callable[[Path], None], reason: str
) -> None:
    """Traffic on, break the file: the corridor goes off, /health stays fast and says why."""
    with httpx.Client(timeout=5) as stats, Traffic(app) as traffic, HealthProbe(app) as probe:
        calls_grow(stats, sim)
        start = time.monotonic()
        _swap(path, breaker)
        assert calls_settle(stats, sim, start) < OFF_WITHIN_S
        probe.wait_for(len(probe.latencies) + 20)
    print(f"{reason}: {probe.summary()}")
    assert not probe.failures, probe.failures[:3]
    assert len(probe.latencies) >= 20
    assert sorted(probe.latencies)[len(probe.latencies) // 2] < HEALTH_MEDIAN_S, probe.summary()
    assert max(probe.latencies) < HEALTH_MAX_S, probe.summary()
    assert set(traffic.statuses) == {200}, traffic.statuses
    flags = health(app)
    assert flags["flags_available"] is False and flags["enabled"] is False
    assert reason in str(flags["last_error"]), flags


def audit_tail(path: Path) -> dict[str, object]:
    line: dict[str, object] = json.loads((path.parent / "audit.jsonl").read_text().splitlines()[-1])
    return line


@pytest.mark.parametrize("via", ["cli", "console", "webhook"])
@pytest.mark.parametrize("kind", list(HOSTILE))
def test_hostile_file_turns_the_corridor_off_and_the_kill_still_works(
    stack: tuple[Server, Server, Path], kind: str, via: str
) -> None:
    app, sim, path = stack
    restore(path)
    wait_health(app, flags_available=True, enabled=True)
    breaker, reason = HOSTILE[kind]
    break_and_watch(app, sim, path, breaker, reason)
    if via == "cli":
        result = kill_cli(path, path.parent / "audit.jsonl")
        code, said = result.returncode, result.stderr + result.stdout
    elif via == "console":
        response = kill_console(app)
        code, said = response.status_code, response.text
    else:
        response = kill_webhook(app, f"fp-{kind}-{time.monotonic_ns()}")
        code, said = response.status_code, response.text
    if kind == "directory":  # cannot be replaced: a clear refusal, and the corridor stays off
        assert code in {2, 422, 500} and "directory" in said and "corridor off" in said, said
        assert health(app)["flags_available"] is False
        return
    assert code in {0, 200}, said
    assert "rolled_back" in said if via == "webhook" else True
    assert reason in str(audit_tail(path)["replaced_broken_file"])
    flags = wait_health(app, flags_available=True, last_error=None)
    assert flags["enabled"] is False  # killed, from a fresh valid file
    assert (
        not path.is_symlink()
        and flagfile.served_value(flagfile.load(path).flags[flagfile.ENABLED])[0] is False
    )


def test_a_kill_with_an_older_mtime_stops_llm_calls(stack: tuple[Server, Server, Path]) -> None:
    app, sim, path = stack
    restore(path)
    wait_health(app, flags_available=True, enabled=True)
    before = path.stat()
    raw = json.loads(path.read_text())
    raw["flags"][flagfile.ENABLED]["defaultVariant"] = "off"
    data = json.dumps(raw, indent=2).encode()
    data += b" " * (before.st_size - len(data))  # same size as the file it replaces
    assert len(data) == before.st_size
    with httpx.Client(timeout=5) as stats, Traffic(app) as traffic:
        calls_grow(stats, sim)
        tmp = path.with_name(".restored")
        tmp.write_bytes(data)
        old = before.st_mtime_ns - 3600 * 10**9  # `cp -p` from an hour-old backup
        os.utime(tmp, ns=(old, old))
        start = time.monotonic()
        os.replace(tmp, path)
        assert calls_settle(stats, sim, start) < OFF_WITHIN_S
    assert set(traffic.statuses) == {200}, traffic.statuses
    flags = health(app)
    assert (flags["flags_available"], flags["enabled"]) == (True, False)


def test_an_unreadable_file_turns_the_corridor_off_and_the_console_kill_replaces_it(
    tmp_path: Path,
) -> None:
    with (
        shared_dir("pt-unreadable-serve-") as tmp,
        llm_sim(tmp_path) as sim,
        served(tmp, sim, unprivileged=True) as (app, path),
    ):
        wait_health(app, flags_available=True, enabled=True)
        break_and_watch(app, sim, path, _unreadable_copy(path), "Permission denied")
        response = kill_console(app)  # the console runs as the server's user
        assert response.status_code == 200, response.text
        assert "Permission denied" in str(audit_tail(path)["replaced_broken_file"])
        flags = wait_health(app, flags_available=True, last_error=None)
        assert flags["enabled"] is False
        assert path.stat().st_mode & 0o777 == 0o644


def _unreadable_copy(path: Path) -> Callable[[Path], None]:
    def make(tmp: Path) -> None:
        shutil.copy(path, tmp)
        os.chmod(tmp, 0)

    return make
