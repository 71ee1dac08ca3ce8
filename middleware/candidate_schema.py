"""The candidate's JSON schema for ``response_format``: decoding that can only write the shape.

A small local model asked only for ``json_object`` writes *some* JSON object, rarely ours
(issue 20: 0 accepted of 8, all ``schema_violation``). Servers with structured output turn a
JSON schema into a grammar, so every token the model may pick keeps the answer inside the
candidate's shape. Servers disagree on where the schema goes, hence a profile setting
(``Profile.response_format``):

* ``json_schema``: ``{"type": "json_schema", "json_schema": {"name", "schema", "strict"}}``,
  OpenAI's form, also read by vLLM, llama.cpp's ``llama-server`` and Ollama. The schema is the
  same for every command (hosted APIs process a new schema once, slowly, then cache it) and
  uses only keywords OpenAI's strict mode accepts.
* ``json_object_schema``: ``{"type": "json_object", "schema": ...}``, the only form
  llama-cpp-python's server takes (0.3.x refuses ``json_schema`` with an error). Its grammar
  is compiled per request anyway, so the schema is per command: ``list_id`` is one of the
  command's own lists and names are bounded, so the model cannot write a list it was not given.
* ``json_object``: the plain JSON mode every OpenAI-compatible server has; the shape is then
  the prompt's business alone.

The schema never widens acceptance: the answer is still validated by ``ShoppingCandidate``
and judged by every rule in ``acceptance``.
"""

from __future__ import annotations

from typing import Any, Final, Literal

from partial_trust.contracts import CommandDTO

ResponseFormat = Literal["json_object", "json_schema", "json_object_schema"]
RESPONSE_FORMATS: Final[tuple[str, ...]] = ("json_object", "json_schema", "json_object_schema")
SCHEMA_NAME: Final = "shopping_candidate"
MAX_ITEMS: Final = 20  # acceptance.MAX_ITEMS (not imported: acceptance imports candidate)
#: A name longer than this is refused anyway (``item_names.MAX_NAME_CHARS``); in the grammar
#: form it also stops a small model that repeats itself inside one string.
MAX_NAME_CHARS: Final = 64


def _object(properties: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


def candidate_schema(corridor: str, command: CommandDTO | None = None) -> dict[str, Any]:
    """The candidate's shape; with ``command``, its list and name bounds too (grammar form)."""
    name: dict[str, Any] = {"type": "string"}
    list_id: dict[str, Any] = {"type": "string"}
    if command is not None:
        name = {"type": "string", "minLength": 1, "maxLength": MAX_NAME_CHARS}
        allowed = list(dict.fromkeys(filter(None, [command.context.default_list_id])))
        allowed += [lid for lid in command.context.lists if lid not in allowed]
        if allowed:
            list_id = {"type": "string", "enum": allowed}
    item = _object({"name": name, "quantity": {"type": "integer", "minimum": 1, "maximum": 999}})
    payload = _object(
        {
            "list_id": list_id,
            "items": {"type": "array", "items": item, "minItems": 1, "maxItems": MAX_ITEMS},
        }
    )
    return _object(
        {
            "intent": {"type": "string", "enum": [corridor]},
            "job": _object(
                {"job_type": {"type": "string", "enum": [corridor]}, "payload": payload}
            ),
            "confidence": {"type": "number", "minimum": 0, "maximum": 1},
        }
    )


def response_format(mode: str, corridor: str, command: CommandDTO) -> dict[str, Any]:
    """The ``response_format`` member of the chat request for a profile's ``mode``."""
    if mode == "json_schema":
        return {
            "type": "json_schema",
            "json_schema": {
                "name": SCHEMA_NAME,
                "schema": candidate_schema(corridor),
                "strict": True,
            },
        }
    if mode == "json_object_schema":
        return {"type": "json_object", "schema": candidate_schema(corridor, command)}
    if mode == "json_object":
        return {"type": "json_object"}
    raise ValueError(f"unknown response_format {mode!r}; one of {', '.join(RESPONSE_FORMATS)}")
