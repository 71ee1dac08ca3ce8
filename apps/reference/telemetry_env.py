"""What ``partial-trust serve``'s traces should be, read from the standard ``OTEL_*`` variables.

Only the choices the SDK leaves to its (private) auto-configurator are made here: which
exporters (``OTEL_TRACES_EXPORTER``: ``otlp``, ``console``, ``none``; comma-separated for
several) and which OTLP protocol (``OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`` or
``OTEL_EXPORTER_OTLP_PROTOCOL``: ``http/protobuf``, the default, or ``grpc``). Everything
else is read by the SDK's own public classes (see ``telemetry``). The sampler and batch
variables are *checked* here too, because the SDK answers a bad value with a logged
traceback (or a ``ValueError`` in every worker) and a silent default: at start, a wrong
variable must be one clear line, never a traceback and never a silent change of meaning.
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass
from typing import Any

from partial_trust.environment import Environment

KNOWN_EXPORTERS = ("otlp", "console")

#: OTLP protocol -> (module with ``OTLPSpanExporter``, the package that ships it)
OTLP_PROTOCOLS: dict[str, tuple[str, str]] = {
    "http/protobuf": (
        "opentelemetry.exporter.otlp.proto.http.trace_exporter",
        "opentelemetry-exporter-otlp-proto-http",
    ),
    "grpc": (
        "opentelemetry.exporter.otlp.proto.grpc.trace_exporter",
        "opentelemetry-exporter-otlp-proto-grpc",
    ),
}
DEFAULT_PROTOCOL = "http/protobuf"

#: The samplers the SDK's TracerProvider itself reads from OTEL_TRACES_SAMPLER.
KNOWN_SAMPLERS = (
    "always_on",
    "always_off",
    "parentbased_always_on",
    "parentbased_always_off",
    "traceidratio",
    "parentbased_traceidratio",
)

#: OTEL_BSP_* -> smallest valid value (the SDK rejects 0 for the sizes and the delay)
BSP_VARIABLES = {
    "OTEL_BSP_SCHEDULE_DELAY": 1,
    "OTEL_BSP_MAX_QUEUE_SIZE": 1,
    "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": 1,
    "OTEL_BSP_EXPORT_TIMEOUT": 0,
}


class TracingConfigError(ValueError):
    """A wrong ``OTEL_*`` value or a missing exporter package: its message is one line."""


@dataclass(frozen=True)
class TracingPlan:
    """The exporters to install (empty: none, the global no-op provider stays)."""

    exporters: tuple[str, ...]
    protocol: str = DEFAULT_PROTOCOL

    @property
    def enabled(self) -> bool:
        return bool(self.exporters)

    def describe(self) -> str:
        if not self.enabled:
            return "none"
        return ", ".join(
            f"otlp ({self.protocol})" if name == "otlp" else name for name in self.exporters
        )


def plan_from_env(env: Environment) -> TracingPlan:
    """The exporters and protocol the variables ask for; raises ``TracingConfigError``.

    Unset (or ``none``, or ``OTEL_SDK_DISABLED=true``) is no exporter: no SDK is installed and
    the library's spans stay the API's no-op ones, which cost nothing.
    """
    if env.value("OTEL_SDK_DISABLED").lower() == "true":
        return TracingPlan(())
    raw = env.value("OTEL_TRACES_EXPORTER")
    names = list(dict.fromkeys(n.strip().lower() for n in raw.split(",") if n.strip()))
    if not names or names == ["none"]:
        return TracingPlan(())
    if "none" in names:
        raise TracingConfigError(f"OTEL_TRACES_EXPORTER={raw!r}: 'none' cannot be combined")
    unknown = [n for n in names if n not in KNOWN_EXPORTERS]
    if unknown:
        raise TracingConfigError(
            f"OTEL_TRACES_EXPORTER={raw!r}: unknown exporter {unknown[0]!r} "
            f"(known: {', '.join(KNOWN_EXPORTERS)}, none)"
        )
    variable = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
    protocol = env.value(variable).lower()
    if not protocol:
        variable = "OTEL_EXPORTER_OTLP_PROTOCOL"
        protocol = env.value(variable).lower() or DEFAULT_PROTOCOL
    if "otlp" in names and protocol not in OTLP_PROTOCOLS:
        raise TracingConfigError(
            f"{variable}={protocol!r}: unsupported OTLP protocol "
            f"(supported: {', '.join(OTLP_PROTOCOLS)})"
        )
    _check_sampler(env)
    _check_bsp(env)
    return TracingPlan(tuple(names), protocol)


def _check_sampler(env: Environment) -> None:
    sampler = env.value("OTEL_TRACES_SAMPLER").lower()
    if sampler and sampler not in KNOWN_SAMPLERS:
        raise TracingConfigError(
            f"OTEL_TRACES_SAMPLER={sampler!r}: unknown sampler (known: {', '.join(KNOWN_SAMPLERS)})"
        )
    arg = env.value("OTEL_TRACES_SAMPLER_ARG")
    if sampler.endswith("traceidratio") and arg:
        try:
            rate = float(arg)
        except ValueError:
            rate = -1.0
        if not 0.0 <= rate <= 1.0:
            raise TracingConfigError(
                f"OTEL_TRACES_SAMPLER_ARG={arg!r}: a ratio between 0 and 1 is needed"
            )


def _check_bsp(env: Environment) -> None:
    values: dict[str, int] = {}
    for name, least in BSP_VARIABLES.items():
        raw = env.value(name)
        if not raw:
            continue
        try:
            values[name] = int(raw)
        except ValueError:
            values[name] = least - 1
        if values[name] < least:
            raise TracingConfigError(f"{name}={raw!r}: an integer of at least {least} is needed")
    queue = values.get("OTEL_BSP_MAX_QUEUE_SIZE", 2048)
    batch = values.get("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512)
    if batch > queue:
        raise TracingConfigError(
            f"OTEL_BSP_MAX_EXPORT_BATCH_SIZE={batch} exceeds OTEL_BSP_MAX_QUEUE_SIZE={queue}"
        )


def otlp_exporter_class(protocol: str) -> Any:
    """The ``OTLPSpanExporter`` class for ``protocol``, or a one-line error naming the package.

    Imported only when asked for: an app that exports nothing never loads ``requests`` and
    protobuf.
    """
    module_name, package = OTLP_PROTOCOLS[protocol]
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        raise TracingConfigError(
            f"OTEL_TRACES_EXPORTER=otlp over {protocol} needs the package {package} "
            f"(pip install {package}), or unset OTEL_TRACES_EXPORTER"
        ) from None
    return module.OTLPSpanExporter


def check_env(env: Environment) -> TracingPlan:
    """``plan_from_env`` and the exporter packages it needs importable: what ``serve`` checks
    once in its own process, before uvicorn starts any worker."""
    plan = plan_from_env(env)
    if "otlp" in plan.exporters:
        otlp_exporter_class(plan.protocol)
    return plan


def exit_on_bad_tracing_env(env: Environment) -> None:
    """``serve``'s start: a wrong ``OTEL_*`` value is one line on stderr and exit status 2."""
    try:
        check_env(env)
    except TracingConfigError as exc:
        print(f"partial-trust serve: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
