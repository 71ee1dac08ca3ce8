"""build_settings_source, the env variant, the tracing hook and the log throttle."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import partial_trust.flags.source
from partial_trust.config import EffectiveSettings, EnvDefaults
from partial_trust.environment import Environment
from partial_trust.flags import EnvSettingsSource, ManagedSettingsSource, build_settings_source
from partial_trust.flags.flagfile import ENABLED, SAMPLE_RATE
from partial_trust.flags.logthrottle import ThrottleFilter
from partial_trust.flags.source import FlagSettingsSource

from .helpers import memory_provider, memory_source, put

ENV = {
    "PARTIAL_TRUST_FLAGS_PROVIDER": "env",
    "PARTIAL_TRUST_ENABLED": "yes",
    "PARTIAL_TRUST_SAMPLE_RATE": "0.05",
}


@pytest.mark.anyio
async def test_env_provider_is_the_variables_alone() -> None:
    source = build_settings_source(Environment.from_mapping(ENV), policy_default=True)
    assert isinstance(source, EnvSettingsSource)
    assert isinstance(source, ManagedSettingsSource)
    await source.start()
    assert source.current() == EnvDefaults.from_env(ENV).effective(True)
    assert source.current().sample_rate == 0.05
    seen: list[EffectiveSettings] = []
    source.on_change(seen.append)
    assert seen == [source.current()]
    assert source.status()["provider"] == "env"
    await source.stop()


def test_file_is_the_default_provider(tmp_path: Path) -> None:
    source = build_settings_source(
        Environment.from_mapping({"PARTIAL_TRUST_FLAGS_FILE": str(tmp_path / "f.json")})
    )
    assert isinstance(source, FlagSettingsSource)
    assert isinstance(source, ManagedSettingsSource)
    assert source.status()["flags_file"] == str(tmp_path / "f.json")
    assert source.current().flags_available is False  # not started: fail closed


def test_flagd_daemon_provider_is_built_from_flagd_variables() -> None:
    source = build_settings_source(
        Environment.from_mapping({"PARTIAL_TRUST_FLAGS_PROVIDER": "flagd"})
    )
    assert isinstance(source, FlagSettingsSource)
    assert source.kind == "flagd"


def test_unknown_provider_is_an_error() -> None:
    with pytest.raises(ValueError, match="PARTIAL_TRUST_FLAGS_PROVIDER='launchdarkly'"):
        build_settings_source(
            Environment.from_mapping({"PARTIAL_TRUST_FLAGS_PROVIDER": "launchdarkly"})
        )


def test_unleash_needs_a_url() -> None:
    with pytest.raises((ValueError, RuntimeError), match="unleash"):
        build_settings_source(Environment.from_mapping({"PARTIAL_TRUST_FLAGS_PROVIDER": "unleash"}))


@pytest.mark.anyio
async def test_flag_evaluations_appear_on_a_trace_when_flags_change(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytest.importorskip(
        "openfeature.contrib.hook.opentelemetry", reason="openfeature-hooks-opentelemetry"
    )
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(partial_trust.flags.source, "_tracer", tracer_provider.get_tracer("test"))
    provider = memory_provider({ENABLED: True, SAMPLE_RATE: 0.05})
    source = memory_source(provider, refresh_interval_s=10)
    await source.start()
    try:
        exporter.clear()
        source.refresh()
        assert exporter.get_finished_spans() == ()  # nothing changed: no span
        put(provider, SAMPLE_RATE, 0.1)
        source.refresh()
        (span,) = exporter.get_finished_spans()
        assert span.name == "partial_trust.flags.change"
        keys = {e.attributes["feature_flag.key"] for e in span.events if e.attributes}
        assert {ENABLED, SAMPLE_RATE} <= keys
        assert {e.name for e in span.events} == {"feature_flag.evaluation"}
    finally:
        await source.stop()
        tracer_provider.shutdown()


def test_throttle_passes_one_record_per_message_per_interval() -> None:
    logger = logging.getLogger("test.throttle")
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep()
    logger.addHandler(handler)
    logger.propagate = False
    throttle = ThrottleFilter(interval_s=0.05)
    logger.addFilter(throttle)
    try:
        for _ in range(100):
            logger.error("Could not parse JSON flag data from file")
        logger.error("another problem")
        assert len(records) == 2
        throttle.interval_s = 0.0
        logger.error("Could not parse JSON flag data from file")
        assert records[-1].getMessage().endswith("[99 similar records suppressed]")
    finally:
        logger.removeFilter(throttle)
        logger.removeHandler(handler)
        logger.propagate = True
