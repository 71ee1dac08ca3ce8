"""``OTEL_*`` parsing for ``partial-trust serve``: unset is nothing, a wrong value is one line."""

from __future__ import annotations

import sys

import pytest

from partial_trust.apps.reference.telemetry_env import (
    TracingConfigError,
    TracingPlan,
    check_env,
    exit_on_bad_tracing_env,
    otlp_exporter_class,
    plan_from_env,
)
from partial_trust.environment import Environment

GRPC_MODULE = "opentelemetry.exporter.otlp.proto.grpc.trace_exporter"


@pytest.mark.parametrize(
    "env",
    [
        {},
        {"OTEL_TRACES_EXPORTER": ""},
        {"OTEL_TRACES_EXPORTER": "none"},
        {"OTEL_TRACES_EXPORTER": " None "},
        {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_SDK_DISABLED": "true"},
        {"OTEL_TRACES_EXPORTER": "jaeger", "OTEL_SDK_DISABLED": "TRUE"},
    ],
)
def test_unset_none_or_disabled_is_no_exporter(env: dict[str, str]) -> None:
    plan = plan_from_env(Environment.from_mapping(env))
    assert plan == TracingPlan(()) and not plan.enabled and plan.describe() == "none"


@pytest.mark.parametrize(
    ("value", "exporters"),
    [
        ("otlp", ("otlp",)),
        ("OTLP", ("otlp",)),
        ("console", ("console",)),
        ("otlp, console", ("otlp", "console")),
        ("console,console", ("console",)),
    ],
)
def test_known_exporters(value: str, exporters: tuple[str, ...]) -> None:
    plan = plan_from_env(Environment.from_mapping({"OTEL_TRACES_EXPORTER": value}))
    assert plan.exporters == exporters and plan.protocol == "http/protobuf" and plan.enabled


def test_protocol_signal_variable_wins_over_the_general_one() -> None:
    env = {
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json",
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc",
    }
    assert plan_from_env(Environment.from_mapping(env)).protocol == "grpc"
    with pytest.raises(TracingConfigError, match="OTEL_EXPORTER_OTLP_PROTOCOL='http/json'"):
        plan_from_env(Environment.from_mapping({**env, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": ""}))


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"OTEL_TRACES_EXPORTER": "jaeger"}, "unknown exporter 'jaeger'"),
        ({"OTEL_TRACES_EXPORTER": "otlp,zipkin"}, "unknown exporter 'zipkin'"),
        ({"OTEL_TRACES_EXPORTER": "none,otlp"}, "'none' cannot be combined"),
        (
            {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"},
            "unsupported OTLP protocol",
        ),
        ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_TRACES_SAMPLER": "sometimes"}, "unknown sampler"),
        (
            {
                "OTEL_TRACES_EXPORTER": "otlp",
                "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
                "OTEL_TRACES_SAMPLER_ARG": "1.5",
            },
            "a ratio between 0 and 1",
        ),
        (
            {
                "OTEL_TRACES_EXPORTER": "console",
                "OTEL_TRACES_SAMPLER": "traceidratio",
                "OTEL_TRACES_SAMPLER_ARG": "half",
            },
            "a ratio between 0 and 1",
        ),
        ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_BSP_MAX_QUEUE_SIZE": "0"}, "at least 1"),
        ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_BSP_SCHEDULE_DELAY": "soon"}, "at least 1"),
        (
            {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "4096"},
            "exceeds OTEL_BSP_MAX_QUEUE_SIZE=2048",
        ),
    ],
)
def test_wrong_values_are_one_line_errors(env: dict[str, str], needle: str) -> None:
    with pytest.raises(TracingConfigError) as info:
        plan_from_env(Environment.from_mapping(env))
    message = str(info.value)
    assert needle in message and "\n" not in message


def test_valid_sampler_and_batch_values_pass() -> None:
    env = {
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
        "OTEL_TRACES_SAMPLER_ARG": "0.25",
        "OTEL_BSP_MAX_QUEUE_SIZE": "64",
        "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "64",
        "OTEL_BSP_SCHEDULE_DELAY": "200",
        "OTEL_BSP_EXPORT_TIMEOUT": "0",
    }
    assert plan_from_env(Environment.from_mapping(env)).exporters == ("otlp",)


def test_otlp_http_is_installed_with_the_package() -> None:
    """A user following the compose file runs ``pip install partial-trust-corridor`` only."""
    assert check_env(Environment.from_mapping({"OTEL_TRACES_EXPORTER": "otlp"})).exporters == (
        "otlp",
    )
    assert otlp_exporter_class("http/protobuf").__name__ == "OTLPSpanExporter"


def test_grpc_without_its_package_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, GRPC_MODULE, None)  # import raises ImportError
    env = {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}
    assert (
        plan_from_env(Environment.from_mapping(env)).protocol == "grpc"
    )  # the plan alone does not import
    with pytest.raises(TracingConfigError) as info:
        check_env(Environment.from_mapping(env))
    assert "pip install opentelemetry-exporter-otlp-proto-grpc" in str(info.value)
    assert info.value.__cause__ is None and "\n" not in str(info.value)


def test_console_only_never_imports_the_otlp_exporter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, GRPC_MODULE, None)
    env = {"OTEL_TRACES_EXPORTER": "console", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}
    assert check_env(Environment.from_mapping(env)).exporters == ("console",)


def test_serve_exits_2_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        exit_on_bad_tracing_env(Environment.from_mapping({"OTEL_TRACES_EXPORTER": "jaeger"}))
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("partial-trust serve: OTEL_TRACES_EXPORTER='jaeger'")
    assert err.count("\n") == 1
    exit_on_bad_tracing_env(
        Environment.from_mapping({"OTEL_TRACES_EXPORTER": "none"})
    )  # a good value returns
