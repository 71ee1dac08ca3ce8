"""OpenFeature wiring for the corridor: ``build_settings_source`` is the one entry point.

Heavy imports (OpenFeature, the flagd provider) happen inside the factory so that
``partial-trust flags kill`` during an incident starts fast.
"""

from __future__ import annotations

from partial_trust.corridors import corridor_mode_cap
from partial_trust.environment import Environment
from partial_trust.flags.managed import EnvSettingsSource, ManagedSettingsSource

__all__ = ["EnvSettingsSource", "ManagedSettingsSource", "build_settings_source"]


def build_settings_source(
    env: Environment,
    *,
    policy_default: bool = False,
    corridor: str | None = None,
) -> ManagedSettingsSource:
    """The source ``PARTIAL_TRUST_FLAGS_PROVIDER`` asks for; call ``start()`` in the lifespan.

    ``policy_default`` is the LLM policy file's ``enabled``, used when ``LLM_POLICY_ENABLED``
    is unset. ``corridor`` (default: the shopping corridor) chooses the flag keys read and the
    risk class's mode cap (``partial_trust.corridors``). Raises ``ValueError`` or
    ``RuntimeError`` for a bad provider choice or a missing optional extra, so a
    misconfiguration stops start-up instead of silently disabling flags.
    """
    from partial_trust.flags.provider import flags_file_path, make_provider, provider_kind

    defaults = env.defaults
    kind = provider_kind(env)
    if kind == "env":
        cap = corridor_mode_cap(corridor or defaults.intent or "add_shopping_item")
        return EnvSettingsSource(defaults.effective(policy_default, mode_cap=cap))
    from partial_trust.flags.source import FlagSettingsSource

    provider = make_provider(kind, env)  # built now, so a missing extra fails at start-up
    return FlagSettingsSource(
        defaults,
        kind=kind,
        provider_factory=lambda: provider,
        policy_default=policy_default,
        flags_file=flags_file_path(env) if kind == "file" else None,
        corridor=corridor,
        service=env.value("OTEL_SERVICE_NAME") or None,
    )
