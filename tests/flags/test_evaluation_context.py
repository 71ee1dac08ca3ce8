"""Every evaluation carries a targeting key without raw data; a provider error fails closed and
is named. The providers here are real OpenFeature provider classes (``AbstractProvider``
subclasses), as a LaunchDarkly-style provider would be: no mocks."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from openfeature import api
from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import FlagResolutionDetails, Reason
from openfeature.provider import AbstractProvider, Metadata

from partial_trust.environment import Environment
from partial_trust.flags import build_settings_source
from partial_trust.flags.flagfile import ENABLED, MODE, PROFILE_ID, SAMPLE_RATE, TIMEOUT_MS
from partial_trust.flags.source import DOMAIN

from .helpers import limits_of, memory_source

pytestmark = pytest.mark.anyio
VALUES: dict[str, object] = {
    ENABLED: True, SAMPLE_RATE: 0.25, TIMEOUT_MS: 300, PROFILE_ID: "", MODE: "canary",
}  # fmt: skip


class KeyRequiredProvider(AbstractProvider):
    """Serves ``VALUES`` only to an evaluation with a targeting key, like LaunchDarkly's
    provider; without one it answers ``TARGETING_KEY_MISSING``. Keeps every context seen."""

    def __init__(self, code: ErrorCode | None = None) -> None:
        super().__init__()
        self.always = code  # an error code to answer every evaluation with
        self.contexts: list[EvaluationContext | None] = []

    def get_metadata(self) -> Metadata:
        return Metadata(name="key-required")

    def _resolve(self, key: str, default: Any, ctx: EvaluationContext | None) -> Any:
        self.contexts.append(ctx)
        if self.always is not None:
            return FlagResolutionDetails(
                default, reason=Reason.ERROR, error_code=self.always, error_message="backend 503"
            )
        if ctx is None or not ctx.targeting_key:
            return FlagResolutionDetails(
                default,
                reason=Reason.ERROR,
                error_code=ErrorCode.TARGETING_KEY_MISSING,
                error_message="a targeting key is required",
            )
        return FlagResolutionDetails(VALUES[key], reason=Reason.TARGETING_MATCH, variant="v")

    def resolve_boolean_details(
        self,
        flag_key: str,
        default_value: bool,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[bool]:
        return self._resolve(flag_key, default_value, evaluation_context)  # type: ignore[no-any-return]  # _resolve serves every value type

    def resolve_string_details(
        self, flag_key: str, default_value: str, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[str]:
        return self._resolve(flag_key, default_value, evaluation_context)  # type: ignore[no-any-return]  # _resolve serves every value type

    def resolve_integer_details(
        self, flag_key: str, default_value: int, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[int]:
        return self._resolve(flag_key, default_value, evaluation_context)  # type: ignore[no-any-return]  # _resolve serves every value type

    def resolve_float_details(
        self,
        flag_key: str,
        default_value: float,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[float]:
        return self._resolve(flag_key, default_value, evaluation_context)  # type: ignore[no-any-return]  # _resolve serves every value type

    def resolve_object_details(
        self,
        flag_key: str,
        default_value: Sequence[Any] | Mapping[str, Any],
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[Sequence[Any] | Mapping[str, Any]]:
        return self._resolve(flag_key, default_value, evaluation_context)  # type: ignore[no-any-return]  # _resolve serves every value type


def test_the_provider_really_requires_a_key() -> None:
    api.set_provider(KeyRequiredProvider(), "probe")
    details = api.get_client("probe").get_boolean_details(ENABLED, False)
    assert details.error_code == ErrorCode.TARGETING_KEY_MISSING and details.value is False


async def test_a_provider_that_requires_a_targeting_key_serves_the_corridor() -> None:
    provider = KeyRequiredProvider()
    source = memory_source(provider)
    await source.start()
    try:
        got = source.current()
        assert (got.enabled, got.sample_rate, got.timeout_ms) == (True, 0.25, 300)
        assert source.status()["last_error"] is None
        assert source.status()["targeting_key"] == "partial-trust/add_shopping_item"
    finally:
        await source.stop()
    assert provider.contexts, "the provider was never asked"
    for ctx in provider.contexts:
        assert ctx is not None and ctx.targeting_key == "partial-trust/add_shopping_item"
        assert ctx.attributes == {"corridor": "add_shopping_item", "service": "partial-trust"}


@pytest.mark.parametrize(
    "code", [ErrorCode.TARGETING_KEY_MISSING, ErrorCode.GENERAL, ErrorCode.INVALID_CONTEXT]
)
async def test_a_provider_that_errors_keeps_the_corridor_off_and_is_named(
    code: ErrorCode,
) -> None:
    source = memory_source(KeyRequiredProvider(code), {"PARTIAL_TRUST_ENABLED": "true"})
    await source.start()
    try:
        got = source.current()
        assert got.enabled is False and got.flags_available is False
        error = source.status()["last_error"]
        assert isinstance(error, str)
        assert f"partial-trust-enabled: {code.value}" in error and "backend 503" in error
        assert limits_of(source.status())["enabled"] == "flags unavailable"
    finally:
        await source.stop()


async def test_the_service_attribute_is_otel_service_name(tmp_path: Path) -> None:
    provider = KeyRequiredProvider()
    api.set_provider(provider, DOMAIN)
    env = {"OTEL_SERVICE_NAME": "shop-router", "PARTIAL_TRUST_FLAGS_FILE": str(tmp_path / "x")}
    source = build_settings_source(Environment.from_mapping(env))
    await source.start()
    try:
        assert source.current().enabled is True
    finally:
        await source.stop()
    ctx = provider.contexts[-1]
    assert ctx is not None and ctx.attributes["service"] == "shop-router"
