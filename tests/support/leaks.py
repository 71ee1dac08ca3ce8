"""The user's data as the privacy tests generate it, and the detector that looks for it.

No false positives: each generated value carries a "marker" character (lowercase Cyrillic
or CJK) in every position divisible by 3, so every 4-character window holds at least one,
and only windows with a marker are looked for. The sinks only ever write ASCII of their own
(enums, numbers, hex keys, English messages), so a hit can only be the user's data. Matching
is case-insensitive (the baseline lowercases item names).
"""

from __future__ import annotations

import json
import unicodedata
from dataclasses import dataclass
from typing import Any

import httpx
from hypothesis import strategies as st

from partial_trust.middleware.item_names import invisible
from partial_trust.middleware.text import strip_punct
from tests.corridor_harness import iter_strings

C = "add_shopping_item"
MARKERS = "абвгдежзийклмнопрстуфхцчшщъыьэюяё中文字符测试隐私数据"


def _name_safe(ch: str) -> bool:
    """Characters an accepted item name may hold, also after NFKC folding (the acceptance
    rules refuse markup, URL and template characters in either form, and invisible ones)."""
    folded = unicodedata.normalize("NFKC", ch)
    return not any(c in "<>{}[]`\\|$:;=@#./?%" or c.isspace() or invisible(c) for c in folded)


_RICH = st.characters(categories=["L", "N", "Pd", "Pc", "So"]).filter(_name_safe) | (
    st.sampled_from(list("-_'~+^!"))
)


@st.composite
def secret(draw: st.DrawFn, min_size: int = 4, max_size: int = 16) -> str:
    n = draw(st.integers(min_size, max_size))
    return "".join(draw(st.sampled_from(MARKERS)) if i % 3 == 0 else draw(_RICH) for i in range(n))


@dataclass(frozen=True)
class Secrets:
    command_id: str
    user_id: str
    items: tuple[str, ...]
    lists: tuple[str, str]
    foreign_list: str
    words: str

    def command(self, text: str | None = None, **extra: Any) -> dict[str, Any]:
        body: dict[str, Any] = {
            "command_id": self.command_id,
            "user_id": self.user_id,
            "text": self.text() if text is None else text,
            "capabilities": ["start_job"],
            "context": {"default_list_id": self.lists[0], "lists": list(self.lists)},
        }
        body.update(extra)
        return body

    def text(self) -> str:
        return f"add {' and '.join(self.items)} to my shopping list"

    def candidate(self, **over: Any) -> dict[str, Any]:
        raw: dict[str, Any] = {
            "intent": C,
            "job": {
                "job_type": C,
                "payload": {
                    # the default: the text names no list, so another one is refused
                    "list_id": self.lists[0],
                    # 1: the text states no count, so no other quantity is grounded in it
                    "items": [{"name": n, "quantity": 1} for n in self.items],
                },
            },
            "confidence": 0.95,
        }
        payload = over.pop("payload", {})
        raw["job"]["payload"].update(payload)
        raw.update(over)
        return raw

    def values(self) -> list[str]:
        return [
            self.command_id,
            self.user_id,
            *self.items,
            *self.lists,
            self.foreign_list,
            self.words,
            self.text(),
        ]


def _distinct(s: Secrets) -> bool:
    """No two values the baseline could take for the same (it trims punctuation, lowercases)."""
    keys = [strip_punct(v).casefold() for v in (*s.items, *s.lists, s.foreign_list)]
    return len(set(keys)) == len(keys)


SECRETS = st.builds(
    Secrets,
    command_id=secret(),
    user_id=secret(),
    items=st.lists(secret(max_size=12), min_size=1, max_size=3).map(tuple),
    lists=st.tuples(secret(max_size=10), secret(max_size=10)),
    foreign_list=secret(max_size=10),
    words=secret(8, 30),
).filter(_distinct)


def windows(value: str) -> set[str]:
    folded = value.casefold()
    return {
        folded[i : i + 4]
        for i in range(len(folded) - 3)
        if any(ch in MARKERS for ch in folded[i : i + 4])
    }


@dataclass
class Observed:
    """Everything one request left behind, sink by sink, as the detector reads it."""

    response: httpx.Response
    records: list[dict[str, Any]]
    metric_labels: list[str]
    spans: list[str]
    logs: list[str]
    decisions: dict[tuple[str, str], float]


def find_leaks(s: Secrets, obs: Observed) -> list[tuple[str, str, str]]:
    sinks = {
        "risk log": [json.dumps(r, ensure_ascii=False) for r in obs.records]
        + [x for r in obs.records for x in iter_strings(r)],
        "metric label": obs.metric_labels,
        "span": obs.spans,
        "log record": obs.logs,
    }
    leaks: list[tuple[str, str, str]] = []
    for sink, texts in sinks.items():
        haystack = "\n".join(texts).casefold()
        for value in s.values():
            leaks += [(sink, value, w) for w in sorted(windows(value)) if w in haystack]
    return leaks
