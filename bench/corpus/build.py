"""Build ``shopping_labelled.json`` from the hand-written rows, deterministically.

    python -m bench.corpus.build           # rewrite the JSON
    python -m bench.corpus.build --check   # exit 1 if the JSON is not what the rows give

Why a builder: the rows stay one line each (easy to review and to correct a label), while the
JSON is what every reader uses (the eval, the real-model bench, the tests), with each
command a valid ``CommandDTO`` body and each label spelled out.

The split is by position inside each (language, category) group: even rows train (the only
source of few-shot examples in the prompt), odd rows are held back for the figures. So both
halves have every kind of command in both languages, and adding a row at the end of a group
moves no other row.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from bench.corpus import rows_en, rows_ru

CORPUS_PATH = Path(__file__).with_name("shopping_labelled.json")
CORRIDOR = "add_shopping_item"
TRAIN, HELD_OUT = "train", "held_out"

#: The contexts the rows refer to by letter: ids as clients send them, Latin and Cyrillic.
CONTEXTS: dict[str, dict[str, Any]] = {
    "A": {"default_list_id": "l-1", "lists": ["l-1", "l-2"]},
    "H": {"default_list_id": "home", "lists": ["home", "party", "office"]},
    "R": {"default_list_id": "дом", "lists": ["дом", "дача"]},
    "N": {"default_list_id": None, "lists": ["weekly", "bbq"]},
}


def parse_expected(notation: str, context: dict[str, Any]) -> dict[str, Any]:
    """``"-set_timer"`` or ``"[@list:] name[*q], ..."`` → the label object."""
    if notation.startswith("-"):
        return {"intent": notation[1:]}
    list_id = context["default_list_id"] or context["lists"][0]
    if notation.startswith("@"):
        list_id, _, notation = notation[1:].partition(": ")
        if list_id not in context["lists"]:
            raise ValueError(f"label names list {list_id!r}, not in the context")
    items = []
    for part in notation.split(", "):
        name, _, quantity = part.partition("*")
        items.append({"name": name, "quantity": int(quantity or 1)})
    return {"intent": CORRIDOR, "list_id": list_id, "items": items}


def build() -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    for lang, rows in (("en", rows_en.ROWS), ("ru", rows_ru.ROWS)):
        seen: dict[str, int] = {}
        for category, ctx, text, expected in rows:
            n = seen[category] = seen.get(category, -1) + 1
            context = CONTEXTS[ctx]
            entries.append(
                {
                    "id": f"{lang}-{category}-{n + 1:03d}",
                    "lang": lang,
                    "category": category,
                    "split": TRAIN if n % 2 == 0 else HELD_OUT,
                    "command": {
                        "command_id": f"corpus-{lang}-{category}-{n + 1:03d}",
                        "user_id": "u-corpus",
                        "text": text,
                        "capabilities": ["start_job"],
                        "context": context,
                    },
                    "expected": parse_expected(expected, context),
                }
            )
    return entries


def render() -> str:
    body = ",\n".join(json.dumps(e, ensure_ascii=False) for e in build())
    return f"[\n{body}\n]\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the JSON is stale")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = CORPUS_PATH.read_text(encoding="utf-8") if CORPUS_PATH.exists() else ""
        if current != text:
            print(f"{CORPUS_PATH} is stale: run python -m bench.corpus.build", file=sys.stderr)
            return 1
        return 0
    CORPUS_PATH.write_text(text, encoding="utf-8")
    print(f"{CORPUS_PATH}: {len(build())} commands")
    return 0


if __name__ == "__main__":
    sys.exit(main())
