"""The shopping corridor's acceptance rules (ADR-004) and the candidate/baseline comparison.

Each rule that refuses a candidate has its own reason code, so the risk log says *why* the
deterministic answer was kept. The rules only ever narrow: a candidate that passes them is a
decision the baseline could have produced for the same command, with the same fields.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import ValidationError

from partial_trust.contracts import CommandDTO
from partial_trust.middleware.candidate import ShoppingCandidate
from partial_trust.middleware.grounding import Grounding
from partial_trust.middleware.item_names import MAX_NAME_CHARS, looks_ok
from partial_trust.middleware.item_names import chars_ok as _name_ok
from partial_trust.middleware.text import item_key
from partial_trust.outcome import Reason

__all__ = [
    "MAX_ITEMS", "MAX_NAME_CHARS", "CandidateT", "Verdict", "agrees", "grounding", "item_key",
    "judge", "list_allowed", "merge",
]  # fmt: skip

MAX_ITEMS = 20
#: Called directly: ``model_validate`` only adds a Python frame and keyword defaults.
_validate_candidate = ShoppingCandidate.__pydantic_validator__.validate_python


def grounding(names: list[str], text: str) -> float:
    """Confidence surrogate when the model gives none: the share of candidate items whose
    every word occurs in the command text (after normalisation and stemming, see
    ``partial_trust.middleware.grounding``). An item the user never mentioned is the typical
    hallucination,
    and this is cheap, deterministic and explainable."""
    return Grounding(text).share(names)


#: A corridor's candidate type (``ShoppingCandidate`` here): what its ``judge`` validated the
#: LLM's answer into and its ``merge`` writes into the baseline's response.
CandidateT = TypeVar("CandidateT")


@dataclass(frozen=True, slots=True)
class Verdict(Generic[CandidateT]):
    """The acceptance rules' answer; generic over the candidate so ``merge`` gets the very
    type ``judge`` validated, with no cast at the corridor seam (a type-only parameter:
    building one costs what it did before)."""

    reason: Reason
    candidate: CandidateT | None = None
    intent_match: bool | None = None
    entity_key_match: bool | None = None
    confidence: float | None = None
    items_llm: int | None = None
    #: The candidate's decision equals the baseline's (see ``agrees``); ``None``: no candidate.
    agreement: bool | None = None

    @property
    def accepted(self) -> bool:
        return self.reason is Reason.ACCEPTED


def _items_of(decision: dict[str, Any]) -> list[dict[str, Any]]:
    payload = (decision.get("job") or {}).get("payload") or {}
    return [i for i in payload.get("items") or [] if isinstance(i, dict)]


def baseline_items(decision: dict[str, Any]) -> list[str]:
    return [str(i.get("name", "")) for i in _items_of(decision)]


def _baseline_reading(decision: dict[str, Any]) -> list[tuple[str, int]]:
    """The baseline's items as (name, quantity): its own reading of the same text."""
    pairs = []
    for item in _items_of(decision):
        quantity = item.get("quantity", 1)
        if type(quantity) is int:
            pairs.append((str(item.get("name", "")), quantity))
    return pairs


def _decision_key(
    intent: object, list_id: object, items: list[tuple[str, int]]
) -> tuple[object, object, list[tuple[str, int]]]:
    return intent, list_id, sorted((item_key(name), quantity) for name, quantity in items)


def agrees(cand: ShoppingCandidate, baseline: dict[str, Any]) -> bool:
    """The candidate decides what the baseline decided: the same intent, the same list id and
    the same items as a multiset of (``item_key`` of the name, quantity)."""
    payload = (baseline.get("job") or {}).get("payload") or {}
    base = [(str(i.get("name", "")), i.get("quantity", 1)) for i in _items_of(baseline)]
    if not all(type(q) is int for _, q in base):
        return False
    mine = [(i.name, i.quantity) for i in cand.job.payload.items]
    return _decision_key(cand.intent, cand.job.payload.list_id, mine) == _decision_key(
        baseline.get("intent"), payload.get("list_id"), base
    )


def list_allowed(
    list_id: str, command: CommandDTO, baseline: dict[str, Any], ground: Grounding
) -> bool:
    """The list is the baseline's, or one of the command's own lists that the text names.

    A list the user did not name is the commonest accepted-but-wrong answer of a small real
    model (bench/README.md, "A real model": 12 of 26): it moves the items from the list the
    baseline read (named or default) to another of the user's lists. Being one of the user's
    lists is not enough; the text has to name it, its words in one run and in any inflection
    ("на дачу" names ``дача``; "add 2 l of milk" does not name ``l-2``, see
    ``Grounding.names``). With no list in the baseline's answer, the default list is the
    user's own.
    """
    base_list = ((baseline.get("job") or {}).get("payload") or {}).get("list_id")
    if list_id == base_list:
        return True
    own = {command.context.default_list_id, *command.context.lists} - {None}
    if list_id not in own:
        return False
    if base_list is None and list_id == command.context.default_list_id:
        return True
    return ground.names(list_id)


def judge(
    raw: object,
    *,
    corridor: str,
    command: CommandDTO,
    baseline: dict[str, Any],
    threshold: float,
) -> Verdict[ShoppingCandidate]:
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
    ground = Grounding(command.text, _baseline_reading(baseline))
    confidence = cand.confidence if cand.confidence is not None else ground.share(names)

    def verdict(reason: Reason) -> Verdict[ShoppingCandidate]:
        return Verdict(
            reason,
            cand,
            intent_match=cand.intent == baseline.get("intent"),
            entity_key_match=keys_llm == keys_base,
            confidence=round(confidence, 4),
            items_llm=len(names),
            agreement=agrees(cand, baseline),
        )

    if cand.intent != corridor or cand.job.job_type != corridor:
        return verdict(Reason.INTENT_MISMATCH)
    if not names:
        return verdict(Reason.EMPTY_ITEMS)
    if len(names) > MAX_ITEMS:
        return verdict(Reason.TOO_MANY_ITEMS)
    if not all(_name_ok(n) and looks_ok(n, ground.folded) for n in names):
        return verdict(Reason.INVALID_ITEM_NAME)
    if not list_allowed(cand.job.payload.list_id, command, baseline, ground):
        return verdict(Reason.LIST_ID_NOT_ALLOWED)
    if confidence < threshold:
        return verdict(Reason.LOW_CONFIDENCE)
    # Whatever the model says its confidence is: every item must come from this text.
    if not all(ground.item_grounded(i.name, i.quantity) for i in cand.job.payload.items):
        return verdict(Reason.ITEM_NOT_GROUNDED)
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
