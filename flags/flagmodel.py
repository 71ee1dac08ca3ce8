"""The flag file's shape: flagd's schema as pydantic models, and parsing with bounded numbers.

Numbers are bounded on read, because every reader of this file (the services, the console,
``flags kill``) does arithmetic or JSON encoding on them: an integer outside JSON's safe range
(±(2**53 - 1), what every JSON consumer reads identically) or a float that is not finite
(``1e999``, ``NaN``, ``Infinity``) makes the file invalid, with a message naming the flag. A
digit string longer than ``_MAX_INT_DIGITS`` is never converted to an ``int`` at all (the
conversion is quadratic and, past 4,300 digits, a ``ValueError`` in Python 3.11+); it is read as
an out-of-range marker and refused by the same bound. Nesting deeper than the interpreter's
recursion limit is "not valid JSON", never a traceback.
"""

from __future__ import annotations

import json
import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError, model_validator

ENABLED = "partial-trust-enabled"
SAMPLE_RATE = "partial-trust-sample-rate"
TIMEOUT_MS = "partial-trust-timeout-ms"
PROFILE_ID = "partial-trust-profile-id"
MODE = "partial-trust-mode"
REVIEW_ENABLED = "partial-trust-review-enabled"
#: flag key -> the flagd type it must have
KNOWN_FLAGS: dict[str, str] = {
    ENABLED: "boolean",
    SAMPLE_RATE: "float",
    TIMEOUT_MS: "integer",
    PROFILE_ID: "string",
    MODE: "string",
    REVIEW_ENABLED: "boolean",
}
FLAGD_SCHEMA = "https://flagd.dev/schema/v0/flags.json"
#: the largest integer magnitude a flag file may hold (JSON's safe integer range)
MAX_INT = 2**53 - 1
_MAX_INT_DIGITS = 20  # more digits than any in-range integer: not converted at all
_OUT_OF_RANGE: int = 10**_MAX_INT_DIGITS

Scalar = str | int | float | bool


class FlagFileError(ValueError):
    """The file cannot be used or a value is refused; the message names the flag and field."""


def _number_problem(value: object) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and abs(value) > MAX_INT:
        return f"an integer outside ±{MAX_INT} (JSON's safe integer range)"
    if isinstance(value, float) and not math.isfinite(value):
        return "a number that is not finite"
    return None


def check_numbers(value: object, where: str) -> None:
    """Raise ``ValueError`` naming ``where`` for the first unbounded number (iterative walk)."""
    stack: list[tuple[object, str]] = [(value, where)]
    while stack:
        item, path = stack.pop()
        if isinstance(item, dict):
            stack.extend((v, f"{path}.{k}") for k, v in item.items())
        elif isinstance(item, list):
            stack.extend((v, f"{path}[{i}]") for i, v in enumerate(item))
        elif (problem := _number_problem(item)) is not None:
            raise ValueError(f"{path} is {problem}")


class FlagDefinition(BaseModel):
    """One flag as flagd defines it (state, variants, defaultVariant, optional targeting)."""

    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=True)

    state: Literal["ENABLED", "DISABLED"]
    variants: dict[str, JsonValue] = Field(min_length=1)
    default_variant: str | None = Field(default=None, alias="defaultVariant")
    targeting: dict[str, JsonValue] | None = None
    metadata: dict[str, Scalar] | None = None

    @model_validator(mode="after")
    def _default_variant_exists(self) -> FlagDefinition:
        if self.default_variant and self.default_variant not in self.variants:
            known = ", ".join(sorted(self.variants))
            raise ValueError(f"defaultVariant {self.default_variant!r} is not one of: {known}")
        return self

    @model_validator(mode="after")
    def _bounded_numbers(self) -> FlagDefinition:
        check_numbers(self.variants, "variants")
        check_numbers(self.targeting, "targeting")
        check_numbers(self.metadata, "metadata")
        return self


class FlagdDocument(BaseModel):
    """The whole file. ``$evaluators`` is flagd's shared targeting; it is kept as it is."""

    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=True)

    schema_url: str | None = Field(default=None, alias="$schema")
    evaluators: dict[str, JsonValue] | None = Field(default=None, alias="$evaluators")
    metadata: dict[str, Scalar] | None = None
    flags: dict[str, FlagDefinition]

    @model_validator(mode="after")
    def _bounded_numbers(self) -> FlagdDocument:
        check_numbers(self.evaluators, "$evaluators")
        check_numbers(self.metadata, "metadata")
        return self


def _describe(error: ValidationError) -> str:
    """pydantic's locations, rewritten as "flag 'x', field 'y'" so an operator can find them."""
    lines = []
    for item in error.errors(include_url=False, include_input=False)[:5]:
        loc = [str(part) for part in item["loc"]]
        if len(loc) >= 2 and loc[0] == "flags":
            where = f"flag {loc[1]!r}" + (f", field {'.'.join(loc[2:])!r}" if loc[2:] else "")
        else:
            where = f"field {'.'.join(loc)!r}" if loc else "file"
        lines.append(f"{where}: {item['msg']}")
    if error.error_count() > 5:  # a hostile file can hold thousands: name the first few
        lines.append(f"and {error.error_count() - 5} more")
    return "; ".join(lines)


def _parse_int(text: str) -> int:
    """``json``'s integer hook: a digit string too long to be in range is never converted."""
    if len(text) > _MAX_INT_DIGITS:
        return -_OUT_OF_RANGE if text.startswith("-") else _OUT_OF_RANGE
    return int(text)


def parse_document(data: bytes, origin: str = "flag file") -> tuple[dict[str, Any], FlagdDocument]:
    """Raw dict (kept for rewriting: key order and unknown-to-us content survive) and model."""
    try:
        raw = json.loads(data, parse_int=_parse_int)
    except json.JSONDecodeError as exc:
        raise FlagFileError(f"{origin}: not valid JSON ({exc})") from None
    except UnicodeDecodeError:
        raise FlagFileError(f"{origin}: not valid JSON (not UTF-8 text)") from None
    except RecursionError:
        raise FlagFileError(f"{origin}: not valid JSON (nested too deeply)") from None
    except ValueError as exc:  # e.g. a number the float parser refuses
        raise FlagFileError(f"{origin}: not valid JSON ({str(exc)[:200]})") from None
    if not isinstance(raw, dict):
        raise FlagFileError(f"{origin}: the top level must be a JSON object")
    try:
        return raw, FlagdDocument.model_validate(raw)
    except ValidationError as exc:
        raise FlagFileError(f"{origin}: {_describe(exc)}") from None
    except RecursionError:
        raise FlagFileError(f"{origin}: nested too deeply to validate") from None
