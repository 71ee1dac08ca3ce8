"""The hot-path shortcuts equal the straightforward code they replace.

Each oracle below is the implementation as it was before the shortcut, copied verbatim: the
shortcuts exist for microseconds only, so any input on which they differ is a bug.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections import Counter
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from partial_trust.contracts import CommandDTO
from partial_trust.middleware import acceptance, baseline, candidate, sampling
from partial_trust.middleware.corridor import ShoppingCorridor
from partial_trust.middleware.item_names import chars_ok
from partial_trust.middleware.text import item_key, strip_punct

# Every code point, surrogates included, plus the words the shortcuts special-case.
ANY_TEXT = st.text(st.characters(exclude_categories=()), max_size=40)
TRICKY = st.sampled_from(
    [
        *(
            " ",
            "milk",
            " Milk! ",
            "«milk»",
            "＜b＞",
            "a：b",
            "ﬀ",
            "İ",
            "Σ",
            "ß",
            "\u212a",
            "\u017f",
        ),
        *("a\x1fb", "a\x7fb", "a\u2028b", "a\u00a0b", "a\u200bb", "\ud800", "молоко", "ёж"),
        *("please", "PLEASE", "pls.", "thanks!", "THANK YOU", "спасибо", "ПОЖАЛУЙСТА", "pleaſe"),
    ]
)
WORDS = st.lists(TRICKY | st.sampled_from(["add", "to", "my", "list", ",", ".", "!"]), max_size=8)
TEXT = ANY_TEXT | TRICKY | WORDS.map(" ".join) | WORDS.map("".join)
MANY = settings(max_examples=1000, deadline=None)

# -- oracles: the code before the shortcuts ---------------------------------------------------

_FORBIDDEN = re.compile(r"[<>{}\[\]`\\|$:;=@#]")
_BAD_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def name_ok_oracle(name: str) -> bool:
    stripped = name.strip()
    if not stripped or len(stripped) > acceptance.MAX_NAME_CHARS:
        return False
    folded = unicodedata.normalize("NFKC", stripped)
    if _FORBIDDEN.search(stripped) or _FORBIDDEN.search(folded):
        return False
    return not any(
        unicodedata.category(ch) in _BAD_CATEGORIES or (ch.isspace() and ch != " ") for ch in folded
    )


def strip_punct_oracle(text: str) -> str:
    i, j = 0, len(text)
    while i < j and (text[i].isspace() or unicodedata.category(text[i])[0] == "P"):
        i += 1
    while j > i and (text[j - 1].isspace() or unicodedata.category(text[j - 1])[0] == "P"):
        j -= 1
    return text[i:j]


def item_key_oracle(name: str) -> str:
    folded = unicodedata.normalize("NFKC", name).casefold().replace("ё", "е")
    return strip_punct_oracle(" ".join(folded.split()))


def trim_tail_oracle(text: str) -> str:
    while True:
        text = text.rstrip(" ,.!?;")
        for word in baseline._POLITE_TAIL:
            cut = len(text) - len(word)
            if text[cut:].lower() == word and (cut == 0 or not text[cut - 1].isalnum()):
                text = text[:cut]
                break
        else:
            return text


def outcome_of(f: Any, *args: Any) -> Any:
    """A value, or the exception's type: the shortcut must fail exactly when the oracle does."""
    try:
        return f(*args)
    except Exception as exc:  # compared with the oracle's, not swallowed
        return type(exc)


# -- acceptance._name_ok ----------------------------------------------------------------------


@MANY
@given(TEXT)
@example("a" * 64)
@example(" " + "a" * 64 + "\t")
@example("a" * 65)
def test_name_ok_equals_the_full_check(name: str) -> None:
    assert chars_ok(name) == name_ok_oracle(name)


@pytest.mark.parametrize("code", range(128))
def test_name_ok_ascii_fast_path_is_exact_for_every_ascii_character(code: int) -> None:
    # The ASCII rule is per character, so all 128 characters (alone and inside a name) cover it.
    for name in (chr(code), f"a{chr(code)}b", f"{chr(code)} milk"):
        assert chars_ok(name) == name_ok_oracle(name), repr(name)


# -- text.strip_punct / item_key --------------------------------------------------------------


@MANY
@given(TEXT)
def test_strip_punct_and_item_key_equal_the_per_character_loop(text: str) -> None:
    assert strip_punct(text) == strip_punct_oracle(text)
    assert item_key(text) == item_key_oracle(text)


# -- the baseline's politeness trim -----------------------------------------------------------


@MANY
@given(TEXT)
@example("add milk to my list, Please!")
@example("спасибо")
@example("thank you thank you.")
def test_trim_tail_equals_the_six_word_loop(text: str) -> None:
    assert baseline._trim_tail(text) == trim_tail_oracle(text)


def test_a_last_characters_polite_ending_does_not_depend_on_what_precedes_it() -> None:
    # The shortcut looks at the last character lowered alone. ``str.lower`` maps character by
    # character except for context rules (final sigma); none may move a character into or out
    # of the polite endings, or the shortcut could skip a real match.
    ends = baseline._POLITE_ENDS
    for code in range(0x110000):
        ch = chr(code)
        alone = ch.lower()[-1:] in ends
        for before in ("a", " ", "Σ", "İ"):
            assert ((before + ch).lower()[-1:] in ends) == alone, hex(code)


# -- corridor: command parsing and the baseline's body ----------------------------------------

JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | ANY_TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(ANY_TEXT, inner, max_size=3),
    max_leaves=8,
)
BODIES = (
    st.binary(max_size=60)
    | JSONISH.map(lambda v: json.dumps(v).encode())
    | st.tuples(JSONISH, st.sampled_from(["", " ", "\n", "x", "}", "\ufeff"])).map(
        lambda p: (json.dumps({"k": p[0]}) + p[1]).encode()
    )
    | st.sampled_from(
        [b'{"a": x}', b'{"a": [x]}', b'{"', b'{"a":1}  ', b'{"a":1}x', b'{"\x00', b'{"\xff"}']
    )
    | JSONISH.map(lambda v: json.dumps({"k": v}).encode("utf-16"))
)


@MANY
@given(BODIES | JSONISH.map(lambda v: json.dumps({"command_id": "c", "text": v}).encode()))
@example(b'{"command_id": "c", "user_id": "u", "text": "add milk to my list"}')
def test_parse_equals_model_validate_json(body: bytes) -> None:
    try:
        expected: CommandDTO | None = CommandDTO.model_validate_json(body)
    except ValidationError:
        expected = None
    assert ShoppingCorridor().parse(body) == expected


# -- judge: the entity-key comparison ---------------------------------------------------------

ITEM_NAMES = st.lists(TEXT, max_size=5)


@MANY
@given(ITEM_NAMES, ITEM_NAMES)
def test_entity_key_match_is_the_counter_comparison(llm: list[str], base: list[str]) -> None:
    command = CommandDTO(command_id="c", user_id="u", text="add milk to my list")
    decision = {"intent": "add_shopping_item", "job": {"payload": {"items": named(base)}}}
    raw = {
        "intent": "add_shopping_item",
        "job": {"job_type": "add_shopping_item", "payload": {"list_id": "l", "items": named(llm)}},
    }
    verdict = acceptance.judge(
        raw, corridor="add_shopping_item", command=command, baseline=decision, threshold=0.5
    )
    keys_llm = Counter(item_key_oracle(n) for n in llm)
    assert verdict.entity_key_match is (keys_llm == Counter(item_key_oracle(n) for n in base))


def named(names: list[str]) -> list[dict[str, Any]]:
    return [{"name": n} for n in names]


# -- sampling and the LLM request -------------------------------------------------------------


@MANY
@given(ANY_TEXT, st.sampled_from(["add_shopping_item", "x", "ü"]))
def test_pre_keyed_hashers_give_the_one_shot_digests(command_id: str, corridor: str) -> None:
    def point(c: str, i: str) -> float:
        digest = hashlib.blake2b(
            f"{c}\x00{i}".encode(), key=b"partial-trust-corridor/sampling/v1", digest_size=8
        ).digest()
        return int.from_bytes(digest, "big") / float(1 << 64)

    def key(i: str) -> str:
        return hashlib.blake2b(i.encode(), key=b"k-1", digest_size=12).hexdigest()

    assert outcome_of(sampling.sample_point, corridor, command_id) == outcome_of(
        point, corridor, command_id
    )
    assert outcome_of(sampling.CommandKeyer(b"k-1"), command_id) == outcome_of(key, command_id)


@MANY
@given(st.text(max_size=40), st.lists(st.text(min_size=1, max_size=8), max_size=3))
def test_user_message_is_json_dumps_without_ascii_escapes(text: str, lists: list[str]) -> None:
    command = CommandDTO.model_validate(
        {"command_id": "c", "user_id": "u", "text": text, "context": {"lists": lists}}
    )
    request = candidate.chat_request(command, model="m", temperature=0.0, max_tokens=1)
    expected = json.dumps(candidate.user_message(command), ensure_ascii=False)
    assert request["messages"][1]["content"] == expected
