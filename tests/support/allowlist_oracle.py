"""The oracle: the README's acceptance allowlist, written independently of
partial_trust.middleware.acceptance.

``allowlist_ok`` is a second reading of the acceptance rules as the README states them (schema
exact and strict, intent and job_type the corridor's, 1..20 items, names non-blank, at most 64
characters, no control/format characters, no ``<>{}[]`\\|$:;=@#``, nothing invisible, no
dangling or piled-up combining marks, nothing URL- or domain-like, no mixed-script word unless
the text has the name, list id the baseline's, or the default when the baseline has none, or
one of the command's own lists that the text names (its words in one run, by stem), confidence
(given, or the
grounding surrogate) at least the profile's threshold, and every item grounded in the text:
its words, by stem, and its quantity). It is kept apart from the code it judges so that a bug
in ``acceptance.judge`` cannot also hide in the check: the fuzz tests compare the two, and
``check_answer`` holds a whole middleware answer to the same rules. Only the stemmer (the
library the README names) is shared.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

import httpx
import Stemmer

from partial_trust.contracts import CommandDTO
from partial_trust.middleware.baseline import route as baseline_route
from partial_trust.middleware.baseline_numbers import QUANTITY_WORDS
from partial_trust.middleware.policy import PolicyRegistry
from tests.support.procs import REPO

C = "add_shopping_item"
POLICY = PolicyRegistry.load(REPO / "llm_policy" / "llm-policy.yaml")
PROFILES: dict[str | None, float] = {
    pid: resolved.profile.confidence_threshold
    for pid in (None, "reliable")
    if (resolved := POLICY.resolve("partial_trust_shopping", pid)) is not None
}

_BAD_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}
_BAD_CHARS = set("<>{}[]`\\|$:;=@#")
_WORD = re.compile(r"\w+")
#: Default_Ignorable_Code_Point, as DerivedCoreProperties.txt lists it.
DEFAULT_IGNORABLE: tuple[tuple[int, int], ...] = (
    (0x00AD, 0x00AD), (0x034F, 0x034F), (0x061C, 0x061C), (0x115F, 0x1160),
    (0x17B4, 0x17B5), (0x180B, 0x180F), (0x200B, 0x200F), (0x202A, 0x202E),
    (0x2060, 0x206F), (0x3164, 0x3164), (0xFE00, 0xFE0F), (0xFEFF, 0xFEFF),
    (0xFFA0, 0xFFA0), (0xFFF0, 0xFFF8), (0x1BCA0, 0x1BCA3), (0x1D173, 0x1D17A),
    (0xE0000, 0xE0FFF),
)  # fmt: skip
#: Assigned characters that render as nothing although not default-ignorable.
BLANK_FILLERS = frozenset("\u2800\U00016fe4")
_STEM = {"en": Stemmer.Stemmer("english"), "ru": Stemmer.Stemmer("russian")}
_DOTS = str.maketrans({"\u3002": ".", "\uff61": "."})


def ignorable(ch: str) -> bool:
    cp = ord(ch)
    return any(lo <= cp <= hi for lo, hi in DEFAULT_IGNORABLE) or ch in BLANK_FILLERS


def _exact(value: object, required: set[str], optional: frozenset[str] = frozenset()) -> bool:
    return isinstance(value, dict) and required <= value.keys() <= required | optional


def _is_int(value: object) -> bool:
    return type(value) is int


def _is_number(value: object) -> bool:
    return type(value) in (int, float)


def not_a_count(value: object) -> bool:
    """A quantity the allowlist refuses for its type or sign (the fuzz draws its defects with
    it): anything but an int of at least 1, and a bool is not an int here."""
    return not (isinstance(value, int) and _is_int(value) and value >= 1)


def _nfkc(text: str) -> str:
    return unicodedata.normalize("NFKC", text)


def _fold(text: str) -> str:
    return " ".join(_nfkc(text).casefold().replace("ё", "е").split())


def _url_like(text: str) -> bool:
    f = text.translate(_DOTS)
    patterns = ("//", r"\?", r"www\.", "xn--", "%[0-9a-f][0-9a-f]", r"[^\W_]\.[^\W\d_][^\W\d_]")
    if any(re.search(p, f, re.IGNORECASE) for p in patterns):
        return True
    if re.search(r"[0-9]\.[0-9]+\.[0-9]+\.[0-9]", f):  # IPv4
        return True
    digits = "0123456789"
    return any(
        ch == "/" and not (0 < k < len(f) - 1 and f[k - 1] in digits and f[k + 1] in digits)
        for k, ch in enumerate(f)
    )


def _script(ch: str) -> set[str] | None:
    if not ch.isalpha():
        return None
    head = unicodedata.name(ch, "").split(" ")[0]
    if head in ("", "MODIFIER", "SMALL", "LETTER"):
        return None
    han = {"Jpan", "Kore", "Hanb", "Hani"}
    groups = {"CJK": han, "IDEOGRAPHIC": han, "HANGUL": {"Kore"}, "BOPOMOFO": {"Hanb"}}
    groups |= {key: {"Jpan"} for key in ("HIRAGANA", "KATAKANA", "KATAKANA-HIRAGANA")}
    return groups.get(head, {head})


def mixed_script(text: str) -> bool:
    for word in text.split():
        sets = [s for s in map(_script, word) if s is not None]
        if sets and not set.intersection(*sets):
            return True
    return False


def _marks_ok(text: str) -> bool:
    base = None
    count = 0
    for ch in text:
        if unicodedata.category(ch).startswith("M"):
            count += 1
            if base is None or base.isspace() or count > 4:
                return False
        else:
            base, count = ch, 0
    return True


def name_ok(name: str, text: str = "") -> bool:
    out = name.strip()  # what an accepted answer carries
    f = _nfkc(out)
    if not (0 < len(out) <= 64) or _BAD_CHARS & (set(out) | set(f)):
        return False
    if any(unicodedata.category(ch) in _BAD_CATEGORIES or ch in "\t\n\r\x0b\x0c" for ch in f):
        return False
    if any(ch.isspace() and ch != " " for ch in f) or any(ignorable(ch) for ch in f):
        return False
    if not _marks_ok(f) or _url_like(f):
        return False
    if all(ch.isspace() or unicodedata.category(ch).startswith("M") for ch in f):
        return False
    return not mixed_script(f) or _fold(out) in _fold(text)


def schema_ok(raw: object) -> bool:
    if not _exact(raw, {"intent", "job"}, frozenset({"confidence"})):
        return False
    assert isinstance(raw, dict)
    job, conf = raw["job"], raw.get("confidence")
    if not isinstance(raw["intent"], str) or not _exact(job, {"job_type", "payload"}):
        return False
    if conf is not None and not (_is_number(conf) and 0.0 <= conf <= 1.0):
        return False
    payload = job["payload"]
    if not isinstance(job["job_type"], str) or not _exact(payload, {"list_id", "items"}):
        return False
    if not isinstance(payload["list_id"], str) or not isinstance(payload["items"], list):
        return False
    for item in payload["items"]:
        if not _exact(item, {"name"}, frozenset({"quantity"})):
            return False
        if not isinstance(item["name"], str):
            return False
        qty = item.get("quantity", 1)
        if not (_is_int(qty) and 1 <= qty <= 999):
            return False
    return True


def stem(word: str) -> str:
    if word.isascii():
        return str(_STEM["en"].stemWord(word))
    if re.search("[\u0400-\u04ff]", word):
        return str(_STEM["ru"].stemWord(word))
    return word


def _vocabulary(text: str, baseline: dict[str, Any] | None) -> set[str]:
    words = set(_WORD.findall(_fold(text)))
    for item in _baseline_items(baseline):
        words |= set(_WORD.findall(_fold(str(item.get("name", "")))))
    return words


def _baseline_items(baseline: dict[str, Any] | None) -> list[dict[str, Any]]:
    payload = ((baseline or {}).get("job") or {}).get("payload") or {}
    return [i for i in payload.get("items") or [] if isinstance(i, dict)]


def grounded(name: str, text: str, baseline: dict[str, Any] | None = None) -> bool:
    """Every word of the name is a word of the text (or of the baseline's items), exactly or
    by stem; a name without words is a piece of the text."""
    vocab = _vocabulary(text, baseline)
    words = _WORD.findall(_fold(name))
    if not words:
        return _fold(name) != "" and _fold(name) in _fold(text)
    return all(w in vocab or stem(w) in {stem(v) for v in vocab} for w in words)


def quantity_grounded(name: str, quantity: int, text: str, baseline: dict[str, Any]) -> bool:
    key = [stem(w) for w in _WORD.findall(_fold(name))]
    read = [
        i.get("quantity", 1)
        for i in _baseline_items(baseline)
        if [stem(w) for w in _WORD.findall(_fold(str(i.get("name", ""))))] == key
        and type(i.get("quantity", 1)) is int
    ]
    if read:
        return quantity in read
    stated = {int(d) for d in re.findall(r"\d+", _fold(text)) if int(d) <= 999}
    stated |= {QUANTITY_WORDS[w] for w in _WORD.findall(_fold(text)) if w in QUANTITY_WORDS}
    stated |= {i["quantity"] for i in _baseline_items(baseline) if type(i.get("quantity")) is int}
    return quantity == 1 or quantity in stated


def grounded_share(names: list[str], text: str, baseline: dict[str, Any] | None = None) -> float:
    if not names:
        return 0.0
    return sum(grounded(n, text, baseline) for n in names) / len(names)


def names_list(list_id: str, text: str) -> bool:
    """The text names the list: the list's words are a run of consecutive words of the text
    (not of the baseline's items), each equal or of the same stem; a list id without words
    is a piece of the text."""
    want = [stem(w) for w in _WORD.findall(_fold(list_id))]
    if not want:
        return _fold(list_id) != "" and _fold(list_id) in _fold(text)
    have = [stem(w) for w in _WORD.findall(_fold(text))]
    return any(have[i : i + len(want)] == want for i in range(len(have)))


def list_ok(list_id: str, command: dict[str, Any], baseline: dict[str, Any]) -> bool:
    """The baseline's list; else one of the command's own lists, which must be the default
    (when the baseline has no list) or named in the text."""
    context = command.get("context") or {}
    base_list = ((baseline.get("job") or {}).get("payload") or {}).get("list_id")
    if list_id == base_list:
        return True
    if list_id not in {context.get("default_list_id"), *context.get("lists", [])} - {None}:
        return False
    if base_list is None and list_id == context.get("default_list_id"):
        return True
    return names_list(list_id, command["text"])


def allowlist_ok(raw: object, command: dict[str, Any], baseline: dict[str, Any], t: float) -> bool:
    if not schema_ok(raw):
        return False
    assert isinstance(raw, dict)
    payload = raw["job"]["payload"]
    names = [item["name"] for item in payload["items"]]
    text = command["text"]
    conf = raw.get("confidence")
    confidence = conf if conf is not None else grounded_share(names, text, baseline)
    return (
        raw["intent"] == C
        and raw["job"]["job_type"] == C
        and 1 <= len(names) <= 20
        and all(name_ok(n, text) for n in names)
        and list_ok(payload["list_id"], command, baseline)
        and confidence >= t
        and all(
            grounded(i["name"], text, baseline)
            and quantity_grounded(i["name"], i.get("quantity", 1), text, baseline)
            for i in payload["items"]
        )
    )


def baseline_of(command: dict[str, Any]) -> dict[str, Any]:
    """The reference router's own answer, as the JSON the client would get."""
    return baseline_route(CommandDTO.model_validate(command)).model_dump(mode="json")


def in_corridor(baseline: dict[str, Any]) -> bool:
    """The baseline starts the corridor's job: only then does the LLM have anything to improve."""
    return (
        baseline.get("intent") == C
        and baseline.get("action") == "start_job"
        and isinstance(baseline.get("job"), dict)
    )


def corpus_command(entry: dict[str, Any]) -> dict[str, Any]:
    """A command around an entry's text: fixed ids, and the entry's capabilities and context
    or else the usual ones (``start_job``, two lists)."""
    return {
        "command_id": "c-1",
        "user_id": "u-1",
        "text": entry["text"],
        "capabilities": entry.get("capabilities", ["start_job"]),
        "context": entry.get("context", {"default_list_id": "l-1", "lists": ["l-1", "l-2"]}),
    }


def check_answer(
    command: dict[str, Any],
    raw: Any,
    profile: str | None,
    baseline: httpx.Response,
    answer: httpx.Response,
    lines: list[dict[str, Any]],
) -> dict[str, Any]:
    """One command answered by the middleware, held to the oracle: one risk-log line; unless
    the LLM's answer was accepted, the baseline's bytes and headers untouched; if it was, an
    answer the allowlist accepts that changes only the job's list id and items."""
    assert baseline.status_code == answer.status_code == 200
    assert len(lines) == 1, lines
    (line,) = lines
    if line["status"] != "accepted_llm":
        assert answer.content == baseline.content
        assert answer.headers == baseline.headers
        return line
    base, got = baseline.json(), answer.json()
    assert allowlist_ok(raw, command, base, PROFILES[profile]), raw
    assert got.keys() == base.keys() and got["job"].keys() == base["job"].keys()
    assert got["job"]["payload"].keys() == base["job"]["payload"].keys()
    assert {k: v for k, v in got.items() if k != "job"} == {
        k: v for k, v in base.items() if k != "job"
    }
    assert got["job"]["job_type"] == base["job"]["job_type"] == C
    payload = raw["job"]["payload"]
    assert got["job"]["payload"]["list_id"] == payload["list_id"]
    assert got["job"]["payload"]["items"] == [
        {"name": i["name"].strip(), "quantity": i.get("quantity", 1)} for i in payload["items"]
    ]
    assert int(answer.headers["content-length"]) == len(answer.content)
    assert answer.headers["content-type"] == baseline.headers["content-type"]
    return line
