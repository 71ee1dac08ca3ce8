"""The console's controls as plain functions: what a change body asks, and doing it.

Every action is one ``partial_trust.flags.flagfile.set_flag`` (the CLI's validation, the atomic
write) and
one audit line; ``kill`` is ``partial_trust.flags.flagfile.kill``, which also works when the file
is broken
(it then writes a fresh file with the switch off, and the audit line's
``replaced_broken_file`` says what was wrong). Every other action refuses a broken file. The
audit log is opened before the flag file is touched, so an unwritable audit log refuses the
change instead of leaving it unrecorded.

Actions: ``kill`` (enabled → false), ``resume`` (enabled → true and, as the playbook says,
the sample rate back to stage 1 unless ``keep_rate``: ``partial_trust.flags.flagfile.resume``;
refused with
409 during a rollback storm unless ``acknowledge_storm``), ``advance``/``retreat`` (the sample
rate one preset along 1% → 5% → 10%; 409 at either end), ``set`` (``key`` one of the sample
rate, timeout or profile flags, ``value`` as text or JSON scalar).

``advance`` is refused (409, with ``verdict`` and ``why``) unless the gate for the current
stage says GO (``stagetime``: HOLD while the stage's minimum duration runs, NO-GO, ROLLBACK,
or no verdict at all), unless the body says ``override: true``; the override is recorded in
its audit line (``override``, ``overridden_verdict``, ``gate_why``) with the body's reason.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from partial_trust.apps.console import stagetime, state, text
from partial_trust.apps.console.audit import AuditLog, entry, resume_fields
from partial_trust.apps.console.webhook import AutoRollback, in_storm
from partial_trust.config import EnvDefaults
from partial_trust.corridors import CORRIDOR_ALLOWLIST, SHOPPING, flag_keys
from partial_trust.flags import flagfile

ACTIONS = frozenset({"kill", "resume", "advance", "retreat", "set"})
SETTABLE = (flagfile.SAMPLE_RATE, flagfile.TIMEOUT_MS, flagfile.PROFILE_ID)


def _one_line(value: str, limit: int = text.MAX_REASON) -> str:
    """Stripped; controls, bidi and invisible format characters refused
    (``partial_trust.apps.console.text``)."""
    return text.check(value, limit=limit)


class ChangeBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(max_length=200)
    actor: str | None = Field(default=None, max_length=64)
    key: str | None = None
    value: str | int | float | bool | None = None
    acknowledge_storm: bool = False
    override: bool = False  # advance against the gate's verdict (audited as an override)
    keep_rate: bool = False  # resume at the current sample rate, not at stage 1
    #: whose flags (``partial_trust.corridors``; its own keys, the others untouched)
    corridor: str = SHOPPING

    @field_validator("corridor")
    @classmethod
    def _corridor(cls, value: str) -> str:
        if value not in CORRIDOR_ALLOWLIST:
            raise ValueError(
                f"not a corridor on the code's allowlist: {', '.join(CORRIDOR_ALLOWLIST)}"
            )
        return value

    @field_validator("reason")
    @classmethod
    def _reason(cls, value: str) -> str:
        value = _one_line(value)
        if not value:
            raise ValueError("a reason is required: say in a few words why")
        return value

    @field_validator("actor")
    @classmethod
    def _actor(cls, value: str | None) -> str | None:
        return (_one_line(value, text.MAX_ACTOR) or None) if value is not None else None

    @field_validator("value")
    @classmethod
    def _value(cls, value: str | int | float | bool | None) -> str | int | float | bool | None:
        # a profile id is text that the audit log records as ``new``
        return _one_line(value) if isinstance(value, str) else value


class Refused(Exception):
    """A change the console will not make; ``status`` is the HTTP answer."""

    def __init__(self, status: int, message: str, **details: object) -> None:
        super().__init__(message)
        self.status = status
        self.details = details  # extra fields of the JSON answer (advance: verdict, why)


@dataclass(frozen=True)
class Context:
    flags_file: Path
    audit: AuditLog
    defaults: EnvDefaults
    rollback: AutoRollback
    #: the gate for the flags as read (``Console.gate_view``); None: no gate, advance refused
    gate_view: Callable[[dict[str, Any]], dict[str, Any]] | None = field(default=None)


def _key_of(corridor: str, shopping_key: str) -> str:
    """The corridor's key for the setting the shopping key names (``corridors.flag_keys``)."""
    return flag_keys(corridor).all()[flag_keys(SHOPPING).all().index(shopping_key)]


def target(ctx: Context, action: str, body: ChangeBody) -> tuple[str, object]:
    """(flag key, new value) for ``action`` on ``body.corridor``, or ``Refused``."""
    keys = flag_keys(body.corridor)
    if action == "kill":
        return keys.enabled, False
    if action == "resume":
        if in_storm(ctx.audit, ctx.rollback, body.corridor) and not body.acknowledge_storm:
            minutes = int(ctx.rollback.storm_window.total_seconds() // 60)
            raise Refused(
                409,
                f"rollback storm: the alert turned {body.corridor} off "
                f"{ctx.rollback.storm_threshold}"
                f" or more times in the last {minutes} minutes; find the cause first, or "
                "acknowledge the storm to turn it on anyway",
            )
        return keys.enabled, True
    if action == "set":
        if body.key not in SETTABLE:
            raise Refused(
                422, f"key must be one of {', '.join(SETTABLE)} (kill/resume switch it on and off)"
            )
        if body.value is None:
            raise Refused(422, "a value is required")
        return _key_of(body.corridor, body.key), body.value
    flags = state.read_flags(ctx.flags_file, ctx.defaults, corridor=body.corridor)
    if not flags["ok"]:
        raise flagfile.FlagFileError(flags["error"])
    to = flags["advance_to" if action == "advance" else "retreat_to"]
    if to is None:
        where = "the last stage (10%)" if action == "advance" else "the first stage (1%)"
        hint = "" if action == "advance" else "; use the kill switch to turn it off"
        raise Refused(409, f"cannot {action}: already at {where}{hint}")
    return keys.sample_rate, to


def advance_check(ctx: Context, body: ChangeBody) -> dict[str, object]:
    """The gate's word on "next stage": audit fields if it may go ahead, else ``Refused``."""
    flags = state.read_flags(ctx.flags_file, ctx.defaults, corridor=body.corridor)
    # the corridor's own gate: its stage, its records of the risk log, its rate changes
    gate = ctx.gate_view(flags) if ctx.gate_view is not None and flags["ok"] else {}
    verdict, why = stagetime.verdict_of(gate), stagetime.why(gate)
    if verdict == "GO":
        return {"gate_verdict": verdict}
    if not body.override:
        raise Refused(
            409,
            f"cannot advance: the gate says {verdict} ({why}); tick the override and give a "
            "reason to advance anyway (it is audited as an override)",
            verdict=verdict,
            why=why,
        )
    return {
        "gate_verdict": verdict,
        "override": True,
        "overridden_verdict": verdict,
        "gate_why": why,
    }


def apply(ctx: Context, action: str, body: ChangeBody, client: str) -> dict[str, Any]:
    """Do ``action`` and return its audit line (blocking: run it in a worker thread)."""
    key, value = target(ctx, action, body)
    extra = advance_check(ctx, body) if action == "advance" else {}
    fd = ctx.audit.open_fd()
    try:
        if action == "kill":
            change = flagfile.kill(ctx.flags_file, reason=body.reason, corridor=body.corridor)
        elif action == "resume":
            change = flagfile.resume(
                ctx.flags_file, reason=body.reason, keep_rate=body.keep_rate,
                corridor=body.corridor,
            )  # fmt: skip
            extra = resume_fields(change)
        else:
            change = flagfile.set_flag(ctx.flags_file, key, value, reason=body.reason)
        line = entry(
            change,
            source="ui",
            actor=body.actor or "operator",
            reason=body.reason,
            action=action,
            client=client,
            file=str(ctx.flags_file),
            **extra,
        )
        ctx.audit.write(fd, line)
    finally:
        os.close(fd)
    return line
