"""The real flagd FILE provider on a temporary file: reload latency, broken files, recovery."""

from __future__ import annotations

import json
import logging
import os
import statistics
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import anyio
import pytest

from partial_trust.config import EnvDefaults
from partial_trust.environment import Environment
from partial_trust.flags import build_settings_source, flagfile
from partial_trust.flags.provider import make_file_provider
from partial_trust.flags.source import FlagSettingsSource

from .helpers import wait_until

pytestmark = pytest.mark.anyio
LIMIT_S = 0.3


def env_for(path: Path, **extra: str) -> dict[str, str]:
    return {"PARTIAL_TRUST_FLAGS_FILE": str(path), **extra}


@pytest.fixture
async def running(flag_file: Path) -> AsyncIterator[FlagSettingsSource]:
    flagfile.resume(flag_file)
    source = build_settings_source(
        Environment.from_mapping(env_for(flag_file)), policy_default=True
    )
    assert isinstance(source, FlagSettingsSource)
    await source.start()
    try:
        assert source.current().enabled is True
        yield source
    finally:
        await source.stop()


async def test_changes_and_kill_toggles_are_seen_within_300ms(
    running: FlagSettingsSource, flag_file: Path
) -> None:
    latencies = []
    for rate in (0.05, 0.1, 0.01):
        start = time.monotonic()
        flagfile.set_flag(flag_file, flagfile.SAMPLE_RATE, rate)

        def applied(r: float = rate) -> bool:
            return running.current().sample_rate == r

        latencies.append(await wait_until(applied))
        assert time.monotonic() - start < LIMIT_S
    for _ in range(10):
        flagfile.kill(flag_file)
        latencies.append(await wait_until(lambda: not running.current().enabled))
        flagfile.resume(flag_file)
        latencies.append(await wait_until(lambda: running.current().enabled))
    p99 = sorted(latencies)[int(0.99 * (len(latencies) - 1))]
    print(
        f"file provider reload: median {statistics.median(latencies) * 1000:.1f} ms, "
        f"p99 {p99 * 1000:.1f} ms, max {max(latencies) * 1000:.1f} ms over {len(latencies)}"
    )
    assert max(latencies) < LIMIT_S


async def test_a_plain_editor_rewrite_is_seen(running: FlagSettingsSource, flag_file: Path) -> None:
    raw = json.loads(flag_file.read_text())
    raw["flags"][flagfile.TIMEOUT_MS]["variants"]["default"] = 450
    flag_file.write_text(json.dumps(raw, indent=4))  # in place, like an editor without rename
    await wait_until(lambda: running.current().timeout_ms == 450)


def _delete(path: Path) -> None:
    path.unlink()


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    with open(path, "r+b") as handle:  # a writer that died half-way through
        handle.truncate(len(data) // 2)


def _invalid_json(path: Path) -> None:
    path.write_text('{"flags": {"partial-trust-enabled": ')


def _wrong_shape(path: Path) -> None:
    # valid JSON flagd accepts (it reads no "flags" key, so every flag is "undefined" and the
    # env defaults, here enabled, would apply): our own check must still fail closed
    raw = json.loads(path.read_text())
    path.write_text(json.dumps({"flagz": raw["flags"]}))


@pytest.mark.parametrize("breaker", [_delete, _truncate, _invalid_json, _wrong_shape])
async def test_a_broken_file_turns_the_corridor_off_and_a_good_file_recovers(
    flag_file: Path, breaker: Callable[[Path], object], caplog: pytest.LogCaptureFixture
) -> None:
    flagfile.resume(flag_file)
    good = flag_file.read_bytes()
    source = build_settings_source(
        Environment.from_mapping(env_for(flag_file, PARTIAL_TRUST_ENABLED="true"))
    )
    await source.start()
    try:
        assert source.current().enabled is True
        with caplog.at_level(logging.INFO):
            breaker(flag_file)
            took = await wait_until(lambda: not source.current().flags_available)
            print(f"{breaker.__name__}: corridor off after {took * 1000:.1f} ms")
            assert source.current().enabled is False
            assert source.status()["last_error"]
            await anyio.sleep(0.5)  # ~10 polls of a broken file
            assert source.current().flags_available is False
            flagd_logs = [r for r in caplog.records if r.name == "openfeature.contrib"]
            assert len(flagd_logs) <= 1  # throttled: not one traceback per poll
        flagfile.atomic_write(flag_file, good)
        took = await wait_until(lambda: source.current().enabled)
        print(f"{breaker.__name__}: recovered after {took * 1000:.1f} ms")
        assert source.status()["last_error"] is None
    finally:
        await source.stop()


async def test_a_file_missing_at_start_fails_closed_until_it_appears(
    flag_file: Path, tmp_path: Path
) -> None:
    good = flag_file.read_bytes()
    missing = tmp_path / "later.json"
    source = build_settings_source(
        Environment.from_mapping(env_for(missing, PARTIAL_TRUST_ENABLED="true"))
    )
    await source.start()
    try:
        assert source.current().flags_available is False
        assert "cannot read the flag file (No such file" in str(source.status()["last_error"])
        flagfile.atomic_write(missing, good)
        await wait_until(lambda: source.current().flags_available, timeout_s=LIMIT_S)
        assert source.current().enabled is False  # the shipped file: corridor off
    finally:
        await source.stop()


def _swap_in_with_an_older_mtime(path: Path, raw: dict[str, object]) -> None:
    """``cp -p`` from a backup, ``touch -d``: new content, same size, an older mtime."""
    data = json.dumps(raw, indent=2).encode()
    data += b" " * (path.stat().st_size - len(data))  # same size, if it was longer
    older = path.stat().st_mtime_ns - 10**9
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(data)
    os.utime(tmp, ns=(older, older))
    os.replace(tmp, path)


async def test_a_kill_with_an_older_mtime_is_seen_within_300ms(
    running: FlagSettingsSource, flag_file: Path
) -> None:
    raw = json.loads(flag_file.read_text())
    raw["flags"][flagfile.ENABLED]["defaultVariant"] = "off"
    _swap_in_with_an_older_mtime(flag_file, raw)
    took = await wait_until(lambda: not running.current().enabled, timeout_s=LIMIT_S)
    print(f"older-mtime kill seen after {took * 1000:.1f} ms")
    assert running.current().flags_available is True  # a real kill, not a broken file
    raw["flags"][flagfile.ENABLED]["defaultVariant"] = "on"  # and in place, same inode
    older = flag_file.stat().st_mtime_ns - 2 * 10**9
    flag_file.write_text(json.dumps(raw, indent=2))
    os.utime(flag_file, ns=(older, older))
    await wait_until(lambda: running.current().enabled, timeout_s=LIMIT_S)


async def test_a_change_the_provider_never_loads_fails_closed(flag_file: Path) -> None:
    """If flagd stops reloading the guard's snapshot, its stale values are not used for long."""
    flagfile.resume(flag_file)
    provider = make_file_provider(flag_file)
    source = FlagSettingsSource(
        EnvDefaults.from_env({}),
        kind="file",
        provider_factory=lambda: provider,
        flags_file=flag_file,
        stale_after_s=0.4,
    )
    await source.start()
    try:
        assert source.current().sample_rate == 0.01
        provider.resolver.connector.shutdown()  # flagd's watcher stops: it never reloads again
        await anyio.sleep(0.15)
        flagfile.set_flag(flag_file, flagfile.SAMPLE_RATE, 0.05)
        await anyio.sleep(0.2)
        assert source.current().sample_rate == 0.01  # held while the provider may catch up
        await wait_until(lambda: not source.current().flags_available, timeout_s=1.0)
        assert source.status()["last_error"] == "the provider did not reload the changed flag file"
    finally:
        await source.stop()
