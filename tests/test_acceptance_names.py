"""Item names that look like something else are refused (``invalid_item_name``), as classes.

Issue 15 item 2: blank-looking names (Hangul fillers, the blank braille pattern, combining
grapheme joiner, variation selectors, combining-only strings, Khmer inherent vowels), a URL
(``evil.example/phish?x``) and a Latin word with a Cyrillic ``і`` were all accepted. Each class
is tested over the whole Unicode range, not only the quoted code points.
"""

from __future__ import annotations

import sys
import unicodedata
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from partial_trust.contracts import CommandDTO
from partial_trust.middleware.acceptance import judge
from partial_trust.middleware.grounding import fold
from partial_trust.middleware.item_names import chars_ok, invisible, looks_ok, url_like
from partial_trust.outcome import Reason
from tests.support.allowlist_oracle import DEFAULT_IGNORABLE, ignorable, mixed_script

C = "add_shopping_item"
TEXT = "add milk and two eggs to my shopping list"


def name_ok(name: str, text: str = TEXT) -> bool:
    return chars_ok(name) and looks_ok(name, fold(text))


def reason(name: str, text: str = TEXT) -> Reason:
    command = CommandDTO.model_validate(
        {
            "command_id": "c",
            "user_id": "u",
            "text": text,
            "capabilities": ["start_job"],
            "context": {"default_list_id": "l-1"},
        }
    )
    raw: dict[str, Any] = {
        "intent": C,
        "job": {"job_type": C, "payload": {"list_id": "l-1", "items": [{"name": name}]}},
        "confidence": 1.0,
    }
    return judge(raw, corridor=C, command=command, baseline={}, threshold=0.7).reason


# -- blank to the eye ------------------------------------------------------------------------

REPORTED_BLANKS = ["\u3164", "\uffa0", "\u2800", "\u034f", "\ufe0f", "\u17b4\u17b5", "\u0301"]


@pytest.mark.parametrize("name", REPORTED_BLANKS)
def test_reported_blank_names_are_refused(name: str) -> None:
    assert not name_ok(name)
    assert reason(name) is Reason.INVALID_ITEM_NAME
    assert reason(f"milk{name}") is Reason.INVALID_ITEM_NAME or name == "\u0301"


def _whole_range(categories: set[str]) -> list[str]:
    return [
        ch
        for ch in map(chr, range(sys.maxunicode + 1))
        if unicodedata.category(ch) in categories or ignorable(ch)
    ]


#: Every code point that can look like nothing: format, combining marks, spaces, unassigned,
#: and Default_Ignorable_Code_Point (DerivedCoreProperties.txt, written out in the oracle).
BLANK_CLASS = _whole_range({"Cf", "Mn", "Me", "Mc", "Zs", "Zl", "Zp", "Cc", "Cn", "Co", "Cs"})
BLANK_CHAR = st.sampled_from(BLANK_CLASS)


def test_the_blank_class_has_every_reported_character() -> None:
    assert set("".join(REPORTED_BLANKS)) <= set(BLANK_CLASS)
    assert all(ignorable(chr(lo)) for lo, _ in DEFAULT_IGNORABLE)


def test_no_assigned_blank_class_character_alone_or_repeated_is_a_name() -> None:
    """Exhaustive over the assigned ones (~2,500); the unassigned and private ones are drawn
    by the property below."""
    assigned = [c for c in BLANK_CLASS if unicodedata.category(c) not in {"Cn", "Co", "Cs"}]
    assert len(assigned) > 2000
    for ch in assigned:
        for name in (ch, ch * 3, f" {ch} ", f"{ch}{ch}\u3164"):
            assert not name_ok(name), hex(ord(ch))


@settings(max_examples=2000, deadline=None)
@given(st.lists(BLANK_CHAR | st.just(" "), min_size=1, max_size=8).map("".join))
@example("\u17b4\u17b5")
@example("\u115f\u1160")
@example("\U000e0020\U000e0041")
def test_an_otherwise_blank_name_never_passes(name: str) -> None:
    assert not name_ok(name), [hex(ord(c)) for c in name]


@settings(max_examples=1000, deadline=None)
@given(
    st.sampled_from([c for c in BLANK_CLASS if invisible(c)]),
    st.sampled_from(["milk", "молоко", "eggs"]),
    st.integers(1, 3),
)
def test_an_invisible_character_anywhere_refuses_the_name(ch: str, word: str, at: int) -> None:
    """Inside the name (at the ends, ``strip`` removes the whitespace ones, as the merge does)."""
    assert not name_ok(word[:at] + ch + word[at:]), hex(ord(ch))


@pytest.mark.parametrize(
    "name",
    ["\u0301milk", "milk \u0301", "m" + "\u0301" * 6, "e\u0301\u0302\u0303\u0304\u0305\u0306"],
)
def test_dangling_or_piled_combining_marks_are_refused(name: str) -> None:
    assert not name_ok(name)


@pytest.mark.parametrize(
    "name", ["café", "cafe\u0301", "jalapeño", "crème brûlée", "phở", "गाजर", "お茶", "김치", "😀"]
)
def test_real_names_with_marks_and_other_scripts_pass(name: str) -> None:
    assert name_ok(name, text=f"add {name} to my list")


# -- URL- and domain-like --------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "evil.example/phish?x",
        "evil.example",
        "EVIL.EXAMPLE",
        "ｅｖｉｌ．ｅｘａｍｐｌｅ",  # full width: NFKC folds it to a domain
        "evil\u3002example",  # the ideographic full stop is a dot to IDNA
        "evil\uff61example",
        "www.milk",
        "milk.ru",
        "молоко.рф",
        "xn--80ak6aa92e",
        "milk/eggs",
        "/etc/passwd",
        "milk?",
        "milk%2e",
        "10.0.0.1",
        "192.168.1.1 milk",
        "//evil",
        "see https://x.io",
        "mailto:a",
        "a@b",
        "javascript:alert(1)",
    ],
)
def test_url_and_domain_like_names_are_refused(name: str) -> None:
    assert not name_ok(name, text=f"add {name} to my list")  # even when the user typed it


@pytest.mark.parametrize(
    "name", ["1/2 gallon milk", "2.5% milk", "st. john's wort", "7up", "2% milk", "u.s. beef"]
)
def test_names_with_dots_slashes_and_percent_that_are_no_urls_pass(name: str) -> None:
    assert not url_like(name) and name_ok(name, text=f"add {name} to my list")


LABEL = st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyzабвгдежзийклмнопрстуфхцчшщ"), min_size=2)
TLD = st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyzрф"), min_size=2, max_size=6)
DOT = st.sampled_from([".", "\u3002", "\uff0e", "\uff61", "\u2024", "\ufe52"])


@settings(max_examples=1000, deadline=None)
@given(
    label=LABEL,
    dot=DOT,
    tld=TLD,
    path=st.sampled_from(["", "/", "/x", "?q", "/a?b=c", "%2f"]),
    prefix=st.sampled_from(["", "www.", "http://", "//", "milk "]),
)
def test_generated_domains_are_refused(
    label: str, dot: str, tld: str, path: str, prefix: str
) -> None:
    name = f"{prefix}{label}{dot}{tld}{path}"
    assert not name_ok(name, text=f"add {name} to my list"), name


# -- mixed scripts ---------------------------------------------------------------------------

CONFUSABLES = {"a": "а", "e": "е", "i": "і", "o": "о", "p": "р", "c": "с", "x": "х", "y": "у"}
GREEK = {"o": "ο", "i": "ι", "a": "α", "k": "κ", "v": "ν"}


@pytest.mark.parametrize("name", ["mіlk", "mіlk ", "Mіlk", "еggs", "mοlk", "мilk", "bread mіlk"])
def test_mixed_script_words_are_refused(name: str) -> None:
    assert not name_ok(name)
    assert reason(name) is Reason.INVALID_ITEM_NAME


def test_mixed_script_name_passes_when_the_user_wrote_it() -> None:
    assert name_ok("mіlk", text="add mіlk to my list")
    assert not name_ok("mіlk", text="add milk to my list")


def test_words_of_different_scripts_side_by_side_are_not_mixed() -> None:
    assert name_ok("молоко milk", text="add молоко milk to my list")
    assert name_ok("抹茶 latte", text="add 抹茶 latte to my list")


@settings(max_examples=1000, deadline=None)
@given(
    word=st.sampled_from(["milk", "eggs", "bread", "cheese", "apple", "tea", "coffee", "pizza"]),
    table=st.sampled_from([CONFUSABLES, GREEK]),
    data=st.data(),
)
def test_one_confusable_letter_in_a_latin_word_is_refused(
    word: str, table: dict[str, str], data: st.DataObject
) -> None:
    spots = [i for i, ch in enumerate(word) if ch in table]
    if not spots:
        return
    i = data.draw(st.sampled_from(spots))
    spoof = word[:i] + table[word[i]] + word[i + 1 :]
    assert mixed_script(spoof)
    assert not name_ok(spoof, text=f"add {word} to my list"), spoof
    assert reason(spoof, text=f"add {word} to my shopping list") is Reason.INVALID_ITEM_NAME


# -- the old character rules still hold ------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["<b>", "{x}", "[x]", "`x`", "a\\b", "a|b", "$x", "a:b", "a;b", "a=b", "a@b", "#x", "＜b＞"],
)
def test_markup_and_template_characters_are_still_refused(name: str) -> None:
    assert not name_ok(name)


@settings(max_examples=500, deadline=None)
@given(st.text(st.characters(exclude_categories=()), max_size=20))
def test_looks_ok_fast_paths_equal_the_full_check(name: str) -> None:
    """The ASCII and plain-Cyrillic shortcuts give the answer of the per-character checks."""
    from partial_trust.middleware import item_names as m

    if not chars_ok(name):
        return
    stripped = name.strip()
    folded = unicodedata.normalize("NFKC", stripped)
    full = (
        not any(invisible(ch) for ch in folded)
        and m._marks_ok(folded)
        and not url_like(stripped)
        and any(not ch.isspace() and unicodedata.category(ch)[0] != "M" for ch in folded)
        and not m._mixed_script(folded)
    )
    assert looks_ok(name, "") == full
