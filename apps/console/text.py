"""Free text in the audit log: refuse spoofing characters on the way in, escape them on the way out.

An actor or a reason is shown to the next operator as "who did what and why". Characters that
change how the text *looks* without being visible let one operator forge that line: U+202E
(right-to-left override) turns ``"ok" gnirts`` into something else on screen, U+2028 starts a
new visual line, a C1 control or an ANSI escape rewrites a terminal, U+200B/U+3164 hide a name
behind blank-looking characters. The rule is a class, not a list of examples:

* refused: every character in Unicode category Cc (C0 and C1 controls, DEL), Cf (format: the
  bidi embeddings, overrides and isolates U+202A-U+202E and U+2066-U+2069, the marks
  U+200E/U+200F/U+061C, zero-width characters, soft hyphen, BOM, tags), Cs (lone surrogates,
  which JSON can carry), Co (private use), Cn (unassigned), Zl/Zp (U+2028/U+2029), plus the
  default-ignorable characters that are not Cf (Hangul fillers, variation selectors, U+034F...);
* every text is bounded (``MAX_REASON``, ``MAX_ACTOR`` characters).

``check`` is the strict rule for what a request asks to record (a 422 names the character by
its code point, never echoing it). ``escape`` is the lenient rule for what is already there (an
old audit log, an Alertmanager label that must not stop a kill): each such character becomes a
visible ``\\uXXXX``. ``escape`` never maps one safe text to another, so it is idempotent.
"""

from __future__ import annotations

import unicodedata
from typing import Any

MAX_REASON = 200
MAX_ACTOR = 64
#: Alertmanager labels and annotations recorded in the audit log (a summary, a fingerprint)
MAX_RECORDED = 300

_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
# Default_Ignorable_Code_Point characters outside Cf/Cn (DerivedCoreProperties.txt): they draw
# nothing, so "alice" and "al\u034fice" would look the same.
_IGNORABLE_RANGES = (
    (0x034F, 0x034F),  # combining grapheme joiner
    (0x115F, 0x1160),  # Hangul choseong/jungseong fillers
    (0x17B4, 0x17B5),  # Khmer inherent vowels
    (0x180B, 0x180F),  # Mongolian free variation selectors and vowel separator
    (0x3164, 0x3164),  # Hangul filler
    (0xFE00, 0xFE0F),  # variation selectors
    (0xFFA0, 0xFFA0),  # halfwidth Hangul filler
    (0xE0100, 0xE01EF),  # variation selectors supplement
)


def is_spoofing(ch: str) -> bool:
    """True for a character that changes the display without being plainly visible."""
    if unicodedata.category(ch) in _REFUSED_CATEGORIES:
        return True
    code = ord(ch)
    return any(lo <= code <= hi for lo, hi in _IGNORABLE_RANGES)


def _code(ch: str) -> str:
    code = ord(ch)
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def check(value: str, *, limit: int) -> str:
    """``value`` stripped, or ``ValueError`` with a message fit for a 422."""
    value = value.strip()
    bad = next((ch for ch in value if is_spoofing(ch)), None)
    if bad is not None:
        name = unicodedata.name(bad, "")
        raise ValueError(
            f"must be one line of plain text (U+{ord(bad):04X}{' ' + name if name else ''} is "
            "a control, bidi or invisible format character)"
        )
    if len(value) > limit:
        raise ValueError(f"at most {limit} characters")
    return value


def escape(value: str, *, limit: int | None = None) -> str:
    """``value`` with every spoofing character shown as ``\\uXXXX``, then cut to ``limit``
    characters (and a "…")."""
    if any(is_spoofing(ch) for ch in value):
        value = "".join(_code(ch) if is_spoofing(ch) else ch for ch in value)
    if limit is not None and len(value) > limit:
        value = value[:limit] + "…"
    return value


def escape_all(value: Any) -> Any:
    """``escape`` applied to every string (keys too) of a JSON value, for display."""
    if isinstance(value, str):
        return escape(value)
    if isinstance(value, dict):
        return {escape(str(k)): escape_all(v) for k, v in value.items()}
    if isinstance(value, list):
        return [escape_all(v) for v in value]
    return value
