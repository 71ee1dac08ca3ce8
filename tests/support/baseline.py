"""Commands for the baseline router's tests, and its decisions in the short forms they assert.

Shared by the ``tests/test_baseline_*.py`` modules. Every command is ``c-1`` from
``u-1``; by default it may start jobs and has lists ``l-1`` (the default) and ``l-2``, so a test
states only what it varies.
"""

from __future__ import annotations

from typing import Any

from partial_trust.contracts import CommandDTO
from partial_trust.middleware.baseline import route


def cmd(
    text: str,
    *,
    caps: tuple[str, ...] = ("start_job",),
    default: str | None = "l-1",
    lists: tuple[str, ...] = ("l-1", "l-2"),
) -> CommandDTO:
    context: dict[str, Any] = {"lists": list(lists)}
    if default is not None:
        context["default_list_id"] = default
    return CommandDTO.model_validate(
        {
            "command_id": "c-1",
            "user_id": "u-1",
            "text": text,
            "capabilities": list(caps),
            "context": context,
        }
    )


def clarify(intent: str) -> dict[str, Any]:
    return {"command_id": "c-1", "intent": intent, "action": "clarify", "job": None}


def decide(text: str, **kw: Any) -> dict[str, Any]:
    return route(cmd(text, **kw)).model_dump(mode="json")


def items(text: str, **kw: Any) -> list[tuple[str, int]]:
    job = decide(text, **kw)["job"]
    assert job is not None, text
    return [(i["name"], i["quantity"]) for i in job["payload"]["items"]]


def list_id(text: str, **kw: Any) -> str | None:
    job = decide(text, **kw)["job"]
    return None if job is None else str(job["payload"]["list_id"])
