"""Risk classes and per-corridor flags: corridors rolled out apart, ``admin`` never past shadow,
and nothing off the code's allowlist mountable (``partial_trust.corridors``).

Flags come from OpenFeature's real InMemoryProvider bound to the corridor's domain, shared by
two engines as a host's one provider would be; the engines are real (policy file, LLM client).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from openfeature import api
from openfeature.provider.in_memory_provider import InMemoryProvider

from partial_trust.config import EffectiveSettings
from partial_trust.corridors import (
    CORRIDOR_ALLOWLIST,
    RiskClass,
    check_corridor,
    flag_keys,
    rollout_order_problem,
)
from partial_trust.environment import Environment
from partial_trust.flags import build_settings_source, flagfile
from partial_trust.flags.flagmodel import REVIEW_ENABLED
from partial_trust.flags.source import FlagSettingsSource
from partial_trust.middleware.corridor import ShoppingCorridor
from partial_trust.middleware.engine import Admission, CorridorEngine
from partial_trust.middleware.factory import CorridorStack
from partial_trust.middleware.llm_client import LLMClient
from partial_trust.middleware.policy import PolicyRegistry
from partial_trust.mode import Mode
from tests.corridor_harness import MutableSettings, settings
from tests.flags.helpers import memory_provider, memory_source, put
from tests.integration.stack import shopping_command
from tests.read_corridor import ShareListCorridor, ShowListCorridor
from tests.support.procs import REPO

SHOP, SHOW = flag_keys("add_shopping_item"), flag_keys("show_shopping_list")


@pytest.fixture(autouse=True)
def clean_openfeature() -> Iterator[None]:
    api.shutdown()
    yield
    api.shutdown()


def _on(keys: Any, mode: str = "canary") -> dict[str, object]:
    return {
        keys.enabled: True,
        keys.sample_rate: 1.0,
        keys.timeout_ms: 200,
        keys.profile_id: "",
        keys.mode: mode,
    }


def _engine(corridor: Any, source: Any) -> CorridorEngine[Any, Any]:
    return CorridorEngine(
        corridor,
        settings=source,
        policy=PolicyRegistry.load(REPO / "llm_policy" / "llm-policy.yaml"),
        llm=LLMClient("http://llm.test/v1"),
    )


def _body(text: str, command_id: str = "c-1") -> bytes:
    return json.dumps(shopping_command(command_id, text=text)).encode()


# --- the flag-key rule --------------------------------------------------------------------
def test_the_shopping_corridor_keeps_the_runbook_keys_and_others_derive_theirs() -> None:
    assert SHOP.all() == (
        flagfile.ENABLED, flagfile.SAMPLE_RATE, flagfile.TIMEOUT_MS, flagfile.PROFILE_ID,
        flagfile.MODE, REVIEW_ENABLED,
    )  # fmt: skip
    assert SHOW.all() == tuple(
        f"partial-trust.show_shopping_list.{s}"
        for s in ("enabled", "sample-rate", "timeout-ms", "profile-id", "mode", "review-enabled")
    )
    every = [k for name in CORRIDOR_ALLOWLIST for k in flag_keys(name).all()]
    assert len(every) == len(set(every))  # no key is two corridors'
    for bad in ("Show", "a.b", "", "x-y", "1abc"):
        with pytest.raises(ValueError, match="lower-case identifier"):
            flag_keys(bad)


# --- the allowlist, at construction -------------------------------------------------------
class _Rogue(ShoppingCorridor):
    risk_class = RiskClass.READ


@pytest.mark.parametrize(
    ("name", "risk_class", "match"),
    [
        ("delete_account", RiskClass.READ, "not on the code's allowlist"),
        ("add_shopping_item", RiskClass.READ, "pins 'write'"),  # cannot pick a lower class
        ("share_shopping_list", RiskClass.WRITE, "pins 'admin'"),
        ("show_shopping_list", "root", "declares risk class 'root'"),
        ("show_shopping_list", None, "declares risk class"),
    ],
)
def test_a_corridor_off_the_allowlist_or_with_another_class_is_refused(
    name: str, risk_class: object, match: str, tmp_path: Path
) -> None:
    corridor = _Rogue(name=name)
    corridor.risk_class = risk_class  # type: ignore[assignment]  # a wrong class on purpose
    with pytest.raises(ValueError, match=match):
        check_corridor(corridor.name, corridor.risk_class)
    with pytest.raises(ValueError, match=match):
        _engine(corridor, MutableSettings(settings()))
    log = tmp_path / "risk.jsonl"
    env = Environment.from_mapping(
        {"PARTIAL_TRUST_FLAGS_PROVIDER": "env", "PARTIAL_TRUST_RISK_LOG_PATH": str(log)}
    )
    with pytest.raises(ValueError, match=match):
        CorridorStack.from_env(env, corridor=corridor)
    assert not tmp_path.joinpath(".partial_trust_hash_key").exists()  # refused before building


def test_a_corridor_without_a_risk_class_is_refused() -> None:
    class Bare:
        name = "show_shopping_list"

    with pytest.raises(ValueError, match="declares risk class None"):
        _engine(Bare(), MutableSettings(settings()))


# --- two corridors, rolled out apart ------------------------------------------------------
@asynccontextmanager
async def _two(provider: InMemoryProvider) -> AsyncIterator[tuple[FlagSettingsSource, ...]]:
    shop = memory_source(provider, policy_default=True)
    show = memory_source(provider, policy_default=True, corridor="show_shopping_list")
    await shop.start()
    await show.start()  # the provider is bound already: shared, as a host's would be
    try:
        yield shop, show
    finally:
        await show.stop()
        await shop.stop()


@pytest.mark.anyio
async def test_killing_one_corridor_leaves_the_other_running() -> None:
    provider = memory_provider({**_on(SHOP), **_on(SHOW, "shadow"), SHOW.sample_rate: 0.5})
    async with _two(provider) as (shop_src, show_src):
        shop, show = _engine(ShoppingCorridor(), shop_src), _engine(ShowListCorridor(), show_src)
        s, r = shop.settings.current(), show.settings.current()
        assert (s.enabled, s.mode, s.sample_rate) == (True, Mode.CANARY, 1.0)
        assert (r.enabled, r.mode, r.sample_rate) == (True, Mode.SHADOW, 0.5)
        assert dict(r.limits)["mode"] == f"flag {SHOW.mode}"

        put(provider, SHOP.enabled, False)  # the shopping kill switch
        shop_src.refresh(), show_src.refresh()
        assert shop.settings.current().enabled is False
        assert show.settings.current().enabled is True
        cmd = _body("show my shopping list", "c-7")
        assert isinstance(show.admit(_sampled(show), cmd), Admission)

        put(provider, SHOP.enabled, True)
        put(provider, SHOW.enabled, False)  # and the other way round
        shop_src.refresh(), show_src.refresh()
        assert shop.settings.current().enabled is True
        assert show.settings.current().enabled is False
        add = _body("add milk and two eggs to my shopping list")
        assert isinstance(shop.admit(shop.settings.current(), add), Admission)
        assert not show.settings.current().enabled


def _sampled(engine: CorridorEngine[Any, Any]) -> EffectiveSettings:
    import dataclasses

    return dataclasses.replace(engine.settings.current(), sample_rate=1.0)


# --- admin: never past shadow -------------------------------------------------------------
@pytest.mark.anyio
async def test_an_admin_corridor_asked_for_canary_runs_in_shadow_and_says_so() -> None:
    share = flag_keys("share_shopping_list")
    provider = memory_provider(_on(share, "canary"))
    source = memory_source(provider, policy_default=True, corridor="share_shopping_list")
    await source.start()
    try:
        got = source.current()
        assert (got.enabled, got.mode, got.mode_capped) == (True, Mode.SHADOW, True)
        assert dict(got.limits)["mode"] == "risk class admin"
        assert source.status()["mode_capped"] is True
        engine = _engine(ShareListCorridor(), source)
        adm = engine.admit(engine.settings.current(), _body("share milk with my list"))
        assert isinstance(adm, Admission) and adm.shadow  # the middleware's shadow path
        outcome = engine.skip(engine.settings.current(), engine_reason())
        assert outcome.mode is Mode.SHADOW and outcome.mode_capped is True
    finally:
        await source.stop()


def engine_reason() -> Any:
    from partial_trust.outcome import Reason

    return Reason.CORRIDOR_MISMATCH


def test_an_admin_corridor_on_any_source_is_capped_by_the_engine() -> None:
    """A host's own source serving canary: the engine's cap holds anyway, one value per snapshot."""
    engine = _engine(ShareListCorridor(), MutableSettings(settings(mode=Mode.CANARY)))
    first = engine.settings.current()
    assert (first.mode, first.mode_capped) == (Mode.SHADOW, True)
    assert engine.settings.current() is first
    off = _engine(ShareListCorridor(), MutableSettings(settings(mode=Mode.OFF))).settings.current()
    assert (off.enabled, off.mode, off.mode_capped) == (False, Mode.OFF, False)
    shop = _engine(ShoppingCorridor(), MutableSettings(settings(mode=Mode.CANARY)))
    assert shop.settings.current().mode is Mode.CANARY  # a write corridor is not capped


def test_the_env_provider_caps_an_admin_corridor_too() -> None:
    env = Environment.from_mapping(
        {
            "PARTIAL_TRUST_FLAGS_PROVIDER": "env",
            "PARTIAL_TRUST_ENABLED": "true",
            "PARTIAL_TRUST_MODE": "canary",
        }
    )
    got = build_settings_source(env, policy_default=True, corridor="share_shopping_list").current()
    assert (got.enabled, got.mode, got.mode_capped) == (True, Mode.SHADOW, True)
    shop = build_settings_source(env, policy_default=True).current()
    assert (shop.mode, shop.mode_capped) == (Mode.CANARY, False)


# --- the order between classes, where a stage is set --------------------------------------
def test_rollout_order_rules() -> None:
    none: dict[str, Mode | None] = {}
    assert rollout_order_problem("share_shopping_list", Mode.SHADOW, none) is None
    assert "caps share_shopping_list at shadow" in str(
        rollout_order_problem("share_shopping_list", Mode.CANARY, none)
    )
    assert rollout_order_problem("add_shopping_item", Mode.CANARY, none) is None
    held = {"show_shopping_list": Mode.SHADOW}
    assert "show_shopping_list (read) is at shadow" in str(
        rollout_order_problem("add_shopping_item", Mode.CANARY, held)
    )
    assert rollout_order_problem("add_shopping_item", Mode.SHADOW, held) is None
    passed = {"show_shopping_list": Mode.CANARY}
    assert rollout_order_problem("add_shopping_item", Mode.CANARY, passed) is None
    higher_held = {"add_shopping_item": Mode.SHADOW}  # a higher class holds no lower one back
    assert rollout_order_problem("show_shopping_list", Mode.CANARY, higher_held) is None
    assert "not on the code's allowlist" in str(rollout_order_problem("x", Mode.SHADOW, none))


def test_the_flag_file_refuses_admin_past_shadow_and_canary_out_of_order(tmp_path: Path) -> None:
    path = tmp_path / "flags.json"
    path.write_bytes(flagfile.starter_document())
    share = flag_keys("share_shopping_list")
    flagfile.set_flag(path, share.mode, "shadow")
    before = path.read_bytes()
    with pytest.raises(flagfile.FlagFileError, match="risk class admin caps"):
        flagfile.set_flag(path, share.mode, "canary")
    assert path.read_bytes() == before
    flagfile.set_flag(path, SHOW.mode, "shadow")
    with pytest.raises(flagfile.FlagFileError, match="lower class rolled out"):
        flagfile.set_flag(path, SHOP.mode, "canary")
    flagfile.set_flag(path, SHOW.mode, "canary")
    flagfile.set_flag(path, SHOP.mode, "canary")  # read passed: write may follow
    doc = flagfile.load(path)
    assert flagfile.served_value(doc.flags[SHOP.mode])[0] == "canary"
