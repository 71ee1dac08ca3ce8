"""The reference router's public contracts: CommandDTO in, DecisionDTO out.

ADR-004 forbids the corridor to change them: the LLM path never adds, removes or renames a
field. Both models are strict and forbid unknown fields, so the baseline answers a malformed
body with a clear 422 and the corridor refuses to guess.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

MAX_TEXT_CHARS = 2_000
MAX_LISTS = 100

Id = Annotated[str, StringConstraints(min_length=1, max_length=128)]


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class CommandContext(_Strict):
    default_list_id: Id | None = None
    lists: Annotated[list[Id], Field(max_length=MAX_LISTS)] = []


class CommandDTO(_Strict):
    command_id: Id
    user_id: Id
    text: Annotated[str, StringConstraints(max_length=MAX_TEXT_CHARS)]
    capabilities: Annotated[
        list[Annotated[str, StringConstraints(max_length=64)]], Field(max_length=32)
    ] = []
    context: CommandContext = CommandContext()


class Item(_Strict):
    name: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    quantity: Annotated[int, Field(ge=1, le=999)] = 1


class Job(_Strict):
    job_type: str
    payload: dict[str, Any]


class DecisionDTO(_Strict):
    command_id: str
    intent: str
    action: str
    job: Job | None = None
