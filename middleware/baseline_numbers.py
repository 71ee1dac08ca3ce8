"""The words the baseline reads as counts, units and durations, in English and Russian.

Kept apart from the grammar in ``baseline`` so the tables can grow without touching the
patterns, and so the tests can walk every entry. Callers pass lowercased, whitespace-collapsed
text; nothing here raises.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final

#: A leading word read as the item's quantity. Articles count as one ("an apple" is one apple).
QUANTITY_WORDS: Final[dict[str, int]] = {
    "a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5,
    "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10, "a dozen": 12, "dozen": 12,
    "один": 1, "одна": 1, "одно": 1, "одну": 1, "два": 2, "две": 2, "пара": 2, "пару": 2,
    "три": 3, "четыре": 4, "пять": 5, "шесть": 6, "семь": 7, "восемь": 8, "девять": 9,
    "десять": 10, "десяток": 10,
}  # fmt: skip

#: Leading words dropped without implying a count: "the milk", "some bread" are one item.
DETERMINERS: Final = ("the", "some")

#: Russian count units change form with the number (1 батон, 2 батона, 5 батонов; accusative
#: "бутылку"), so the unit heading a longer name is put in the nominative singular: the item
#: key then does not depend on the count. English units are singularised only in "<unit> of".
RU_UNITS: Final[dict[str, str]] = {
    form: lemma
    for lemma, forms in {
        "батон": ("батон", "батона", "батонов"),
        "буханка": ("буханка", "буханку", "буханки", "буханок"),
        "пачка": ("пачка", "пачку", "пачки", "пачек"),
        "бутылка": ("бутылка", "бутылку", "бутылки", "бутылок"),
        "банка": ("банка", "банку", "банки", "банок"),
        "упаковка": ("упаковка", "упаковку", "упаковки", "упаковок"),
        "коробка": ("коробка", "коробку", "коробки", "коробок"),
        "пакет": ("пакет", "пакета", "пакетов"),
        "кусок": ("кусок", "куска", "кусков"),
        "связка": ("связка", "связку", "связки", "связок"),
    }.items()
    for form in forms
}
EN_UNITS: Final[dict[str, str]] = {
    "bottles": "bottle", "loaves": "loaf", "packs": "pack", "packets": "packet",
    "cans": "can", "jars": "jar", "boxes": "box", "bags": "bag", "cartons": "carton",
    "bunches": "bunch", "bars": "bar", "pieces": "piece",
}  # fmt: skip

#: Durations said without a count.
SPECIAL_DURATIONS: Final[dict[str, int]] = {
    "half an hour": 30, "half hour": 30, "a half hour": 30,
    "полчаса": 30, "пол часа": 30, "полтора часа": 90,
}  # fmt: skip
_HOUR_UNITS: Final = frozenset({"hours", "hour", "hrs", "hr", "h", "часов", "часа", "час", "ч"})
_MINUTE_UNITS: Final = ("minutes", "minute", "mins", "min", "m", "минуты", "минуту", "минута")
_MINUTE_UNITS_RU: Final = ("минут", "мин", "м")

#: Numbers longer than this are not quantities anyone means; they are read as "too many".
_MAX_DIGITS = 6
_TOO_MANY = 10**_MAX_DIGITS


def _alternation(words: Iterable[str]) -> str:
    """Longest first, so "a dozen" wins over "a"."""
    return "|".join(re.escape(w) for w in sorted(words, key=lambda w: (-len(w), w)))


_WORDS = _alternation(QUANTITY_WORDS)
_LEADING_COUNT = re.compile(rf"(?:(?P<digits>[0-9]+)|(?P<word>{_WORDS})) (?P<rest>.+)")
_COUNT_ONLY = re.compile(rf"(?:[0-9]+|{_WORDS})")
_DETERMINER = re.compile(rf"(?:{_alternation(DETERMINERS)})\s+(?=\S)")
_UNITS = _alternation(_HOUR_UNITS | frozenset(_MINUTE_UNITS + _MINUTE_UNITS_RU))
_DURATION = re.compile(rf"(?:(?P<digits>[0-9]+) ?|(?P<word>{_WORDS}) )?(?P<unit>{_UNITS})")


def _count(digits: str | None, word: str | None) -> int:
    if digits is not None:
        return int(digits) if len(digits) <= _MAX_DIGITS else _TOO_MANY
    return QUANTITY_WORDS[word] if word is not None else 1


def split_quantity(phrase: str) -> tuple[int, str]:
    """``"two eggs"`` → ``(2, "eggs")``; no count → ``(1, phrase)``; a bare count → ``(n, "")``.

    A digit count needs a space after it ("2 eggs", not "2kg"), so measures stay in the name.
    """
    phrase = _DETERMINER.sub("", phrase, count=1) if phrase.startswith(DETERMINERS) else phrase
    if _COUNT_ONLY.fullmatch(phrase):
        return (_count(phrase, None) if phrase[0].isdigit() else QUANTITY_WORDS[phrase]), ""
    m = _LEADING_COUNT.fullmatch(phrase)
    if m is None:
        return 1, phrase
    return _count(m["digits"], m["word"]), m["rest"]


def normalise_unit(name: str) -> str:
    """``"батона хлеба"`` → ``"батон хлеба"``, ``"bottles of water"`` → ``"bottle of water"``."""
    head, _, rest = name.partition(" ")
    if rest and head in RU_UNITS:
        return f"{RU_UNITS[head]} {rest}"
    if rest.startswith("of ") and head in EN_UNITS:
        return f"{EN_UNITS[head]} {rest}"
    return name


def duration_minutes(phrase: str) -> int | None:
    """``"5 minutes"``, ``"an hour"``, ``"пять минут"``, ``"полчаса"`` → whole minutes, or None."""
    phrase = " ".join(phrase.lower().replace("-", " ").split())
    if phrase in SPECIAL_DURATIONS:
        return SPECIAL_DURATIONS[phrase]
    m = _DURATION.fullmatch(phrase)
    if m is None:
        return None
    return _count(m["digits"], m["word"]) * (60 if m["unit"] in _HOUR_UNITS else 1)
