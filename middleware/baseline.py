"""The reference app's deterministic baseline router (RouterV2-style), as a pure function.

ADR-004: the baseline is always computed and is what the client gets whenever the LLM's
candidate is not accepted, so it must be predictable, cheap (plain precompiled regexes, no
I/O) and never raise. It understands a small closed grammar in English and Russian and asks
to clarify anything else rather than guess.

Grammar (case-insensitive; whitespace collapsed; a leading "please"/"can you"/"пожалуйста" and
trailing politeness and ``.!?`` ignored):

- ``add_shopping_item``: ``add|put <items> to|on|onto|into [my|the|our] [shopping|grocery]
  list [<list>]``, or ``add to ... list [<list>]: <items>`` / ``add to ... list <items>``;
  Russian ``добавь|внеси|запиши|... <items> в [мой] список [покупок] [<list>]`` and the
  reversed ``добавь в список покупок [<list>] <items>``.
- ``remove_shopping_item``: ``remove|delete|drop|take|cross|strike <items> from|off|out of
  ... list [<list>]`` and ``удали|убери|вычеркни <items> из [моего] списка [покупок]``, and
  their reversed forms.
- ``set_timer``: ``[set|start] [a] timer [for] <duration>``, ``set a <duration> timer``,
  ``[поставь|установи|заведи|запусти] таймер [на] <duration>``, ``засеки <duration>``.
- ``unknown``: anything else. A matched frame whose details do not parse keeps its intent
  and answers ``clarify`` (so ``classify_intent`` needs no item parsing to agree with
  ``route``).

Items are split on ``,`` ``;`` ``&`` ``and`` ``и``. Each item is lowercased; a leading
``the``/``some`` is dropped; a leading count (digits, or a word from ``numbers``) becomes the
quantity (default 1); the rest, stripped of surrounding punctuation, is the name, in the
user's own word form ("two eggs" → ``eggs`` × 2), except that a count unit heading the name is
put in its base form (``2 батона хлеба`` → ``батон хлеба`` × 2, ``bottles of water`` →
``bottle of water``). An item with no name, a quantity outside 1..999 or a name over 200
characters makes the whole decision ``clarify``.

List choice: a list named after the list phrase if it is in ``context.lists`` (or is the
default list); a named list that is not known → ``clarify``; else ``default_list_id``; else
the first of ``lists``; else ``clarify``. Without the ``start_job`` capability every decision
is ``clarify`` with no job; the intent stays.

Deliberately not understood (``unknown`` or ``clarify``): "add milk" with no list phrase,
any word after the list phrase that is not a known list ("... list now"), counts after the
name ("eggs x2"), seconds, and compound durations.
"""

from __future__ import annotations

import re
from typing import Any, Final

from partial_trust.contracts import CommandContext, CommandDTO, DecisionDTO, Job
from partial_trust.middleware.baseline_numbers import (
    duration_minutes,
    normalise_unit,
    split_quantity,
)
from partial_trust.middleware.text import strip_punct

ADD_SHOPPING_ITEM: Final = "add_shopping_item"
REMOVE_SHOPPING_ITEM: Final = "remove_shopping_item"
SET_TIMER: Final = "set_timer"
UNKNOWN: Final = "unknown"
INTENTS: Final = (ADD_SHOPPING_ITEM, REMOVE_SHOPPING_ITEM, SET_TIMER, UNKNOWN)
START_JOB: Final = "start_job"
CLARIFY: Final = "clarify"

MAX_NAME_CHARS: Final = 200  # contracts.Item
MAX_QUANTITY: Final = 999  # contracts.Item
MAX_TIMER_MINUTES: Final = 24 * 60

_LEAD = re.compile(r"(?:(?:please|pls|can you|could you|would you|пожалуйста)\b[\s,]*)+", re.I)
_POLITE_TAIL: Final = ("please", "pls", "thanks", "thank you", "пожалуйста", "спасибо")
#: ``str.lower`` maps character by character (Σ aside, which stays Greek), so a tail that
#: lowers to a polite word ends in a character lowering to one of these.
_POLITE_ENDS: Final = frozenset(word[-1] for word in _POLITE_TAIL)
_SEP = re.compile(r"\s*(?:[,;&]|\band\b|\bи\b)\s*")

_EN_ADD: Final = ("add", "put")
_RU_ADD: Final = ("добавь", "добавьте", "добавить", "внеси", "внесите", "запиши", "запишите")
_EN_RM: Final = ("remove", "delete", "drop", "take", "cross", "strike")
_RU_RM: Final = ("удали", "удалите", "удалить", "убери", "уберите", "вычеркни", "вычеркните")
_EN_TIMER: Final = ("set", "start")
_RU_TIMER: Final = ("поставь", "поставьте", "установи", "установите", "заведи", "запусти")
_RU_CLOCK: Final = ("засеки", "засеките")

_LID = r"(?:\s+(?P<lid>\S+))?"  # a list named at the end: "... list l-2"
_LID_COLON = r"(?:\s+(?P<lid>[^\s:]+))?\s*:\s*"  # "... list l-2: milk" / "... list: milk"
_EN_LIST = r"(?:(?:my|the|our)\s+)?(?:(?:shopping|grocery|groceries)\s+)?list"
_EN_TO = r"(?:to|on|onto|into)\s+"
_EN_FROM = r"(?:from|off(?:\s+of)?|out\s+of)\s+"
_RU_TO = r"в\s+(?:(?:мой|наш|этот)\s+)?(?:список(?:\s+покупок)?|покупки)"
_RU_FROM = r"из\s+(?:(?:моего|нашего|этого)\s+)?(?:списка(?:\s+покупок)?|покупок)"
_ITEMS = r"(?P<items>.+)"

_Spec = tuple[str, tuple[str, ...], str, bool]


def _alt(words: tuple[str, ...]) -> str:
    return f"(?:{'|'.join(words)})"


def _shopping(intent: str, verbs: tuple[str, ...], prep: str, phrase: str) -> list[_Spec]:
    """Forward, reversed with a colon, reversed without one: tried in this order. Only in the
    last may a known list id lead the items ("добавь в список l-2 молоко")."""
    verb = rf"{_alt(verbs)}\s+"
    return [
        (intent, verbs, rf"{verb}(?P<items>.+?)\s+{prep}{phrase}{_LID}", False),
        (intent, verbs, rf"{verb}{prep}{phrase}{_LID_COLON}{_ITEMS}", False),
        (intent, verbs, rf"{verb}{prep}{phrase}\s+{_ITEMS}", True),
    ]


#: (intent, the first words it can start with, pattern, may a known list id lead the items).
_SPECS: Final[tuple[_Spec, ...]] = (
    *_shopping(ADD_SHOPPING_ITEM, _EN_ADD, _EN_TO, _EN_LIST),
    *_shopping(ADD_SHOPPING_ITEM, _RU_ADD, "", _RU_TO),
    *_shopping(REMOVE_SHOPPING_ITEM, _EN_RM, _EN_FROM, _EN_LIST),
    *_shopping(REMOVE_SHOPPING_ITEM, _RU_RM, "", _RU_FROM),
    (
        SET_TIMER,
        (*_EN_TIMER, "timer"),
        rf"(?:{_alt(_EN_TIMER)}\s+(?:(?:a|the|my)\s+)?)?timer(?:\s+(?:for\s+)?(?P<dur>.+))?",
        False,
    ),
    (SET_TIMER, _EN_TIMER, rf"{_alt(_EN_TIMER)}\s+(?:an?\s+)?(?P<dur>.+?)[\s-]timer", False),
    (
        SET_TIMER,
        (*_RU_TIMER, "таймер"),
        rf"(?:{_alt(_RU_TIMER)}\s+)?таймер(?:\s+(?:на\s+)?(?P<dur>.+))?",
        False,
    ),
    (SET_TIMER, _RU_CLOCK, rf"{_alt(_RU_CLOCK)}\s+(?P<dur>.+)", False),
)
_Frame = tuple[str, re.Pattern[str], bool]
#: Frames by first word: an unknown command costs one dict lookup, not a dozen regexes.
_BY_FIRST_WORD: Final[dict[str, tuple[_Frame, ...]]] = {
    word: tuple(
        (intent, re.compile(pattern, re.I), lead)
        for intent, words, pattern, lead in _SPECS
        if word in words
    )
    for word in sorted({w for spec in _SPECS for w in spec[1]})
}


def _trim_tail(text: str) -> str:
    """Drop trailing ``.,!?;`` and politeness ("..., please!"), as often as they repeat."""
    while True:
        text = text.rstrip(" ,.!?;")
        if text[-1:].lower()[-1:] not in _POLITE_ENDS:
            return text  # most commands: one check instead of six slices and lowercasings
        for word in _POLITE_TAIL:
            cut = len(text) - len(word)
            if text[cut:].lower() == word and (cut == 0 or not text[cut - 1].isalnum()):
                text = text[:cut]
                break
        else:
            return text


def _match(text: str) -> tuple[str, re.Match[str] | None, bool]:
    text = " ".join(text.split())
    lead = _LEAD.match(text)
    text = _trim_tail(text[lead.end() :] if lead is not None else text)
    for intent, pattern, lead_lid in _BY_FIRST_WORD.get(text.partition(" ")[0].casefold(), ()):
        m = pattern.fullmatch(text)
        if m is not None:
            return intent, m, lead_lid
    return UNKNOWN, None, False


def classify_intent(text: str) -> str:
    """The intent ``route`` would give this text, without parsing items or lists."""
    return _match(text)[0]


def _items(text: str) -> list[dict[str, Any]] | None:
    items: list[dict[str, Any]] = []
    for raw in _SEP.split(text.lower()):
        piece = strip_punct(raw)
        if not piece:
            continue  # "milk, and eggs": the empty piece between "," and "and"
        quantity, rest = split_quantity(piece)
        name = normalise_unit(strip_punct(rest))
        if not name or len(name) > MAX_NAME_CHARS or not 1 <= quantity <= MAX_QUANTITY:
            return None
        items.append({"name": name, "quantity": quantity})
    return items or None


def _list_id(named: str | None, context: CommandContext) -> str | None:
    known = [*context.lists, context.default_list_id]
    if named is not None:
        if named in known:
            return named
        stripped = strip_punct(named)
        return stripped if stripped and stripped in known else None
    if context.default_list_id is not None:
        return context.default_list_id
    return context.lists[0] if context.lists else None


def _shopping_job(intent: str, m: re.Match[str], lead_lid: bool, ctx: CommandContext) -> Job | None:
    named, text = m.groupdict().get("lid"), m["items"]
    if lead_lid:
        head, _, tail = text.partition(" ")
        if tail and head in ctx.lists:
            named, text = head, tail
    list_id = _list_id(named, ctx)
    items = _items(text) if list_id is not None else None
    if list_id is None or items is None:
        return None
    return Job(job_type=intent, payload={"list_id": list_id, "items": items})


def _timer_job(m: re.Match[str]) -> Job | None:
    duration = m["dur"]
    minutes = duration_minutes(duration) if duration is not None else None
    if minutes is None or not 1 <= minutes <= MAX_TIMER_MINUTES:
        return None
    return Job(job_type=SET_TIMER, payload={"minutes": minutes})


def route(command: CommandDTO) -> DecisionDTO:
    """The baseline decision for one command. Pure, deterministic, never raises on a valid DTO."""
    intent, m, lead_lid = _match(command.text)
    job: Job | None = None
    if m is not None and intent == SET_TIMER:
        job = _timer_job(m)
    elif m is not None:
        job = _shopping_job(intent, m, lead_lid, command.context)
    if job is None or START_JOB not in command.capabilities:
        return DecisionDTO(command_id=command.command_id, intent=intent, action=CLARIFY)
    return DecisionDTO(command_id=command.command_id, intent=intent, action=START_JOB, job=job)
