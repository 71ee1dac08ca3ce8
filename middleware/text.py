"""Text normalisation shared by the baseline router and the acceptance rules.

Both sides must agree on when two item names are "the same item", or the risk log's
``entity_key_match`` would measure our normalisation instead of the model.
"""

from __future__ import annotations

import unicodedata

#: The ASCII characters ``strip_punct`` trims, from the rule itself; on an ASCII string
#: (``isascii`` is O(1)) ``str.strip`` does the whole job in C.
_ASCII_STRIPPABLE = "".join(
    ch for ch in map(chr, range(128)) if ch.isspace() or unicodedata.category(ch)[0] == "P"
)


def strip_punct(text: str) -> str:
    """Trim whitespace and Unicode punctuation (quotes, «», dashes, brackets) at both ends."""
    if text.isascii():
        return text.strip(_ASCII_STRIPPABLE)
    i, j = 0, len(text)
    while i < j and (text[i].isspace() or unicodedata.category(text[i])[0] == "P"):
        i += 1
    while j > i and (text[j - 1].isspace() or unicodedata.category(text[j - 1])[0] == "P"):
        j -= 1
    return text[i:j]


def item_key(name: str) -> str:
    """The key under which two item names are the same item.

    NFKC (full-width and compatibility forms), casefold, ``ё`` → ``е`` (Russian writes both),
    whitespace collapsed, surrounding punctuation stripped. Word forms are not touched:
    "eggs" and "egg" are different keys.
    """
    folded = unicodedata.normalize("NFKC", name).casefold().replace("ё", "е")
    return strip_punct(" ".join(folded.split()))
