"""Is a candidate item grounded in this command's text? The ``item_not_grounded`` rule.

A model's self-reported confidence says nothing about whether it answered *this* command (a
prompt injection, a confused model or a stale answer from another user all come with
``confidence: 1.0``). So every item of a candidate must be supported by the text the user sent:

* **name**: every word of it occurs in the text, compared after normalisation (NFKC, casefold,
  ``ё`` → ``е``) and, failing an exact match, by Snowball stem (PyStemmer: English for ASCII
  words, Russian for Cyrillic ones), so "eggs"/"egg", "яйца"/"яйцо" and "хлеба"/"хлеб" agree.
  The words of the baseline's own items count as the text's (the baseline is a deterministic
  reading of the same text that puts count units in their base form: "loaves" → "loaf"). A
  name with no word at all ("🍎") must occur in the text as it is.
* **quantity**: when the item is one the baseline read (same stems), one of the quantities the
  baseline read for it; otherwise 1, or a number the text states (digits, or a count word of
  the reference grammar: "two", "пять", "dozen"). So "add milk and two eggs" may give
  ``eggs × 2`` but never ``milk × 2`` or ``eggs × 999``.

The text is folded, split and stemmed once per request (``Grounding``); word stems are cached
process-wide (``lru_cache``, bounded), and stemming happens only for a word that has no exact
match, so a candidate that echoes the user's words costs a few set look-ups.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from collections.abc import Iterable
from functools import lru_cache

import Stemmer

from partial_trust.middleware.baseline_numbers import QUANTITY_WORDS

_WORDS = re.compile(r"\w+")
_DIGITS = re.compile(r"\d+")
#: Digit runs longer than this are no quantity anyone means (the schema's maximum is 999).
_MAX_DIGITS = 3
_STEMMERS = {"en": Stemmer.Stemmer("english"), "ru": Stemmer.Stemmer("russian")}
#: PyStemmer objects keep per-call state; the lock makes a cache miss safe from any thread.
_STEM_LOCK = threading.Lock()


def fold(text: str) -> str:
    """NFKC, casefold, ``ё`` → ``е``, whitespace collapsed: the form every comparison uses."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().replace("ё", "е").split())


@lru_cache(maxsize=16384)
def stem(word: str) -> str:
    """The Snowball stem of one folded word: Russian if it has Cyrillic letters, English if
    it is ASCII, else the word itself (no stemmer is better than the wrong language's)."""
    if word.isascii():
        lang = "en"
    elif any("\u0400" <= ch <= "\u04ff" for ch in word):
        lang = "ru"
    else:
        return word
    with _STEM_LOCK:
        result: str = _STEMMERS[lang].stemWord(word)
    return result


def stem_key(name: str) -> tuple[str, ...]:
    """The stems of a name's words: "Eggs" and "egg" are the same item here."""
    return tuple(map(stem, _WORDS.findall(fold(name))))


class Grounding:
    """One command's text, ready to ground the items of candidates for it."""

    __slots__ = ("_baseline", "_numbers", "_stems", "_words", "folded")

    def __init__(self, text: str, baseline: Iterable[tuple[str, int]] = ()) -> None:
        self.folded = fold(text)
        words = set(_WORDS.findall(self.folded))
        quantities: dict[tuple[str, ...], set[int]] = {}
        for name, quantity in baseline:
            name_words = _WORDS.findall(fold(name))
            words.update(name_words)
            quantities.setdefault(tuple(map(stem, name_words)), set()).add(quantity)
        self._words = frozenset(words)
        self._baseline = quantities
        self._stems: frozenset[str] | None = None
        self._numbers: frozenset[int] | None = None

    def _text_stems(self) -> frozenset[str]:
        if self._stems is None:
            self._stems = frozenset(stem(w) for w in self._words)
        return self._stems

    def _stated_numbers(self) -> frozenset[int]:
        if self._numbers is None:
            numbers = {
                int(d) for d in _DIGITS.findall(self.folded) if len(d.lstrip("0")) <= _MAX_DIGITS
            }
            numbers.update(QUANTITY_WORDS[w] for w in self._words if w in QUANTITY_WORDS)
            numbers.update(q for qs in self._baseline.values() for q in qs)
            self._numbers = frozenset(numbers)
        return self._numbers

    def _words_grounded(self, folded: str, words: list[str]) -> bool:
        if not words:
            return bool(folded) and folded in self.folded
        for word in words:
            if word not in self._words and stem(word) not in self._text_stems():
                return False
        return True

    def name_grounded(self, name: str) -> bool:
        folded = fold(name)
        return self._words_grounded(folded, _WORDS.findall(folded))

    def names(self, name: str) -> bool:
        """The text names ``name`` (one of the user's lists): its words occur in the text as
        one run, in order, each exactly or by stem, so "на дачу" names ``дача`` and "list l-2"
        names ``l-2``, but "add 2 l of milk" does not name ``l-2`` (``name_grounded`` would
        say yes: it takes the words one by one, from anywhere in the text or the baseline's
        items). A name with no word at all must occur in the text as it is."""
        folded = fold(name)
        words = _WORDS.findall(folded)
        if not words:
            return bool(folded) and folded in self.folded
        text = _WORDS.findall(self.folded)
        span = len(words)
        runs = (text[i : i + span] for i in range(len(text) - span + 1))
        return any(
            all(w == t or stem(w) == stem(t) for w, t in zip(words, run, strict=True))
            for run in runs
        )

    def item_grounded(self, name: str, quantity: int) -> bool:
        """The name is grounded, and so is the quantity (see the module docstring)."""
        folded = fold(name)
        words = _WORDS.findall(folded)
        if not self._words_grounded(folded, words):
            return False
        read = self._baseline.get(tuple(map(stem, words)))
        if read is not None:
            return quantity in read
        return quantity == 1 or quantity in self._stated_numbers()

    def share(self, names: list[str]) -> float:
        """The confidence surrogate: the share of names that are grounded."""
        if not names:
            return 0.0
        return sum(1 for n in names if self.name_grounded(n)) / len(names)
