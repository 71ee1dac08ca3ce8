"""The process environment, read once: the only module that touches ``os.environ``.

Why one object: the variables used to be parsed piecemeal (``os.environ if environ is None else
environ`` in a dozen modules, the risk log path with a literal default in three), so a test, a
host app or a worker could see two different answers to one question, and nothing showed which
variables the product reads. Every entry point (the CLI commands, ``partial-trust serve`` and
its workers' app factory, the console app, and the two host-facing defaults
``CorridorStack.from_env`` and ``metrics_endpoint``) builds one ``Environment`` with
``from_os()`` and passes it down; library functions take it as a parameter and never call
``from_os()`` themselves (the same scan enforces it: a ``CommandKeyer`` without a key, for one,
uses a per-process key rather than reading ``PARTIAL_TRUST_HASH_KEY`` behind the caller's
back). Tests build one from a plain dict with ``from_mapping``.

Third-party code still reads its own variables from the process: httpx the proxy variables
(``trust_env``), flagd its ``FLAGD_*``, the OpenTelemetry SDK its ``OTEL_*`` and Unleash's
client nothing beyond what it is given. ``tests/test_environment_scan.py`` fails on any
``os.environ``/``os.getenv`` read elsewhere in the package.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from partial_trust.config import EnvDefaults

#: The variables ``partial-trust serve`` hands to its uvicorn worker processes.
MULTIPROC_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
BIND_HOST_ENV = "PARTIAL_TRUST_SERVE_BIND_HOST"
RISK_LOG_ENV = "PARTIAL_TRUST_RISK_LOG_PATH"
LLM_BASE_URL_ENV = "LLM_BASE_URL"
LLM_API_KEY_ENV = "LLM_API_KEY"
LLM_POLICY_PATH_ENV = "LLM_POLICY_PATH"
CONSOLE_TOKEN_ENV = "PARTIAL_TRUST_CONSOLE_TOKEN"
WEBHOOK_TOKEN_ENV = "PARTIAL_TRUST_WEBHOOK_TOKEN"
_PROXY_NAMES = ("https_proxy", "http_proxy", "all_proxy")


@dataclass(frozen=True, slots=True)
class LLMEndpoint:
    """Where the LLM is and how to reach it; ``None``: the caller's default applies."""

    base_url: str | None
    api_key: str | None
    policy_path: str | None


@dataclass(frozen=True, slots=True)
class ConsoleTokens:
    """The console's bearer token and the alert webhook's token; ``None``: not set."""

    token: str | None
    webhook_token: str | None


@dataclass(frozen=True, slots=True)
class Environment:
    """An immutable snapshot of the variables, with typed accessors for the shared groups.

    Modules that own a group of their own (serve limits, tracing, console hosts) parse it from
    ``get``/``value`` and validate it there; the groups several modules share live here so
    their defaults exist once.
    """

    variables: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    defaults: EnvDefaults = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        frozen = MappingProxyType(dict(self.variables))  # a copy: later writes do not leak in
        object.__setattr__(self, "variables", frozen)
        object.__setattr__(self, "defaults", EnvDefaults.from_env(frozen))

    @classmethod
    def from_os(cls) -> Environment:
        """The process environment as it is now: call once per entry point."""
        return cls(dict(os.environ))

    @classmethod
    def from_mapping(cls, variables: Mapping[str, str]) -> Environment:
        """Any mapping (tests, embedding hosts); copied, so the caller may reuse it."""
        return cls(variables)

    def get(self, name: str) -> str | None:
        """The raw value, ``None`` when unset."""
        return self.variables.get(name)

    def value(self, name: str) -> str:
        """The value stripped of blanks; ``""`` when unset or blank."""
        return (self.variables.get(name) or "").strip()

    def present(self, name: str) -> bool:
        """Whether the variable is set at all (even to ``""``)."""
        return name in self.variables

    @property
    def risk_log_path(self) -> str:
        """``PARTIAL_TRUST_RISK_LOG_PATH`` or the one default (``config.DEFAULT_RISK_LOG_PATH``)."""
        return self.defaults.risk_log_path

    @property
    def llm(self) -> LLMEndpoint:
        return LLMEndpoint(
            base_url=self.get(LLM_BASE_URL_ENV) or None,
            api_key=self.get(LLM_API_KEY_ENV) or None,
            policy_path=self.get(LLM_POLICY_PATH_ENV) or None,
        )

    @property
    def console_tokens(self) -> ConsoleTokens:
        return ConsoleTokens(
            token=self.value(CONSOLE_TOKEN_ENV) or None,
            webhook_token=self.get(WEBHOOK_TOKEN_ENV),
        )

    @property
    def proxy_configured(self) -> bool:
        """Whether an HTTP proxy is asked for (the variables httpx honours, either case)."""
        return any(self.get(n) or self.get(n.upper()) for n in _PROXY_NAMES)

    @property
    def multiproc_dir(self) -> str | None:
        """``PROMETHEUS_MULTIPROC_DIR`` when set and not blank: metrics are per worker files."""
        return self.get(MULTIPROC_DIR_ENV) or None

    @property
    def bind_host(self) -> str | None:
        return self.get(BIND_HOST_ENV)


def hand_to_workers(updates: Mapping[str, str | None]) -> None:
    """Write ``updates`` into the process environment (``None`` removes a variable).

    The one write site, used only by ``partial-trust serve`` before it starts uvicorn: worker
    processes are spawned and import the app factory afresh, so the values ``serve`` resolved
    (the Prometheus multiprocess directory, the bind host, the serve limits) can reach them only
    through the environment they inherit, which their own ``Environment.from_os()`` then reads.
    """
    for name, value in updates.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


__all__ = [
    "BIND_HOST_ENV",
    "MULTIPROC_DIR_ENV",
    "ConsoleTokens",
    "Environment",
    "LLMEndpoint",
    "hand_to_workers",
]
