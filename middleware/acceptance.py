"""The shopping corridor's acceptance rules (ADR-004) and the candidate/baseline comparison.

Each rule that refuses a candidate has its own reason code, so the risk log says *why* the
deterministic answer was kept. The rules only ever narrow: a candidate that passes them is a
decision the baseline could have produced for the same command, with the same fields.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from middleware.candidate import ShoppingCandidate
from middleware.contracts import CommandDTO
from middleware.outcome import Reason
from middleware.text import item_key

MAX_ITEMS = 20
MAX_NAME_CHARS = 64
#: Characters that have no business in a grocery item and are the stuff of markup, template
#: and URL injection (``javascript:``, ``data:``, ``mailto:`` all need the colon).
_FORBIDDEN = re.compile(r"[<>{}\[\]`\\|$:;=@#]")
#: Control, format, private, unassigned, surrogate, and every separator but the plain space
#: (U+2028/U+2029 break lines in JavaScript and log viewers).
_BAD_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
#: The ASCII case of ``_name_ok`` in one search: ASCII is its own NFKC form, and its only
#: bad-category or non-space whitespace characters are the controls U+0000-U+001F and U+007F.
_FORBIDDEN_ASCII = re.compile(r"[<>{}\[\]`\\|$:;=@#\x00-\x1f\x7f]")
_WORDS = re.compile(r"\w+")
#: Called directly: ``model_validate`` only adds a Python frame and keyword defaults.
_validate_candidate = ShoppingCandidate.__pydantic_validator__.validate_python


def _name_ok(name: str) -> bool:
    """Checked on the NFKC form too: full-width ``＜`` or ``：`` look harmless until a
    browser, a log viewer or our own ``item_key`` folds them into ``<`` and ``:``."""
    stripped = name.strip()
    if not stripped or len(stripped) > MAX_NAME_CHARS:
        return False
    if stripped.isascii():  # the common case, ~4x cheaper; tests prove it equals the full check
        return _FORBIDDEN_ASCII.search(stripped) is None
    folded = unicodedata.normalize("NFKC", stripped)
    if _FORBIDDEN.search(stripped) or _FORBIDDEN.search(folded):
        return False
    return not any(
        unicodedata.category(ch) in _BAD_CATEGORIES or (ch.isspace() and ch != " ") for ch in folded
    )


def grounding(names: list[str], text: str) -> float:
    """Confidence surrogate when the model gives none: the share of candidate items whose
    every word occurs in the command text. An item the user never mentioned is the typical
    hallucination, and this is cheap, deterministic and explainable."""
    if not names:
        return 0.0
    words = set(_WORDS.findall(text.casefold()))
    grounded = sum(1 for n in names if words.issuperset(_WORDS.findall(n.casefold())))
    return grounded / len(names)


@dataclass(frozen=True, slots=True)
class Verdict:
    reason: Reason
    candidate: ShoppingCandidate | None = None
    intent_match: bool | None = None
    entity_key_match: bool | None = None
    confidence: float | None = None
    items_llm: int | None = None

    @property
    def accepted(self) -> bool:
        return self.reason is Reason.ACCEPTED


def baseline_items(decision: dict[str, Any]) -> list[str]:
    payload = (decision.get("job") or {}).get("payload") or {}
    items = payload.get("items") or []
    return [str(i.get("name", "")) for i in items if isinstance(i, dict)]


def judge(
    raw: object,
    *,
    corridor: str,
    command: CommandDTO,
    baseline: dict[str, Any],
    threshold: float,
) -> Verdict:
    """Apply the rules in a fixed order; the first that fails names the reason."""
    raw_intent = raw.get("intent") if isinstance(raw, dict) else None
    intent_match = raw_intent == baseline.get("intent") if isinstance(raw_intent, str) else None
    try:
        cand = _validate_candidate(raw)
    except ValidationError:
        return Verdict(Reason.SCHEMA_VIOLATION, intent_match=intent_match)

    names = [i.name for i in cand.job.payload.items]
    # Equal multisets of keys: sorted lists compare the same as two Counters of positive
    # counts, at a fraction of the cost of building the Counters.
    keys_llm = sorted([item_key(n) for n in names])
    keys_base = sorted([item_key(n) for n in baseline_items(baseline)])
    confidence = cand.confidence if cand.confidence is not None else grounding(names, command.text)

    def verdict(reason: Reason) -> Verdict:
        return Verdict(
            reason,
            cand,
            intent_match=cand.intent == baseline.get("intent"),
            entity_key_match=keys_llm == keys_base,
            confidence=round(confidence, 4),
            items_llm=len(names),
        )

    if cand.intent != corridor or cand.job.job_type != corridor:
        return verdict(Reason.INTENT_MISMATCH)
    if not names:
        return verdict(Reason.EMPTY_ITEMS)
    if len(names) > MAX_ITEMS:
        return verdict(Reason.TOO_MANY_ITEMS)
    if not all(_name_ok(n) for n in names):
        return verdict(Reason.INVALID_ITEM_NAME)
    base_list = ((baseline.get("job") or {}).get("payload") or {}).get("list_id")
    allowed_lists = {base_list, command.context.default_list_id, *command.context.lists} - {None}
    if cand.job.payload.list_id not in allowed_lists:
        return verdict(Reason.LIST_ID_NOT_ALLOWED)
    if confidence < threshold:
        return verdict(Reason.LOW_CONFIDENCE)
    return verdict(Reason.ACCEPTED)


def merge(baseline: dict[str, Any], cand: ShoppingCandidate) -> dict[str, Any]:
    """The response for an accepted candidate: the baseline's own object with only the
    list and the items replaced, so no field is ever added, removed or renamed."""
    job = dict(baseline["job"])
    payload = dict(job["payload"])
    payload["list_id"] = cand.job.payload.list_id
    payload["items"] = [
        {"name": i.name.strip(), "quantity": i.quantity} for i in cand.job.payload.items
    ]
    job["payload"] = payload
    return {**baseline, "job": job}
