"""Hypothesis strategies for the corridor fuzz: commands and LLM outputs.

Commands come in English, Russian, random Unicode and off-corridor text, with random list
contexts and capabilities, so that the classifier, the baseline and the list-id rule all meet
unexpected input. LLM outputs are mostly shaped like the candidate schema (valid, valid with
one defect, or wild in every field) because only near-misses exercise the acceptance rules
one by one; now and then they are anything at all.
"""

from __future__ import annotations

import re
from typing import Any

from hypothesis import strategies as st

from partial_trust.middleware.baseline_numbers import QUANTITY_WORDS
from tests.support.allowlist_oracle import C, not_a_count

VOCAB_EN = ["milk", "eggs", "bread", "two eggs", "3 apples", "the cheese", "bottles of water"]
VOCAB_RU = ["молоко", "хлеб", "два яйца", "2 батона хлеба", "сыр", "ёжик"]
WORD = st.text(
    alphabet=st.characters(categories=["Ll", "Lu", "Nd"], max_codepoint=0x4FF),
    min_size=1,
    max_size=10,
)
ITEM_TEXT = st.sampled_from(VOCAB_EN + VOCAB_RU) | WORD
LIST_ID = st.sampled_from(["l-1", "l-2", "groceries", "дом", "l-999"]) | st.text(
    alphabet=st.characters(categories=["L", "N", "Pd"]), min_size=1, max_size=12
)
JUNK_TEXT = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=st.characters(categories=["Cc", "Cf", "Zl", "Zp", "Co"]), min_size=1),
    st.sampled_from(
        [
            "<b>milk</b>",
            "milk\n",
            "\tmilk",
            "mi\x00lk",
            "mi\u200blk",
            "\u202emilk",
            "{{milk}}",
            "[milk]",
            "`milk`",
            "$milk",
            "a|b",
            "c:\\milk",
            "https://evil.example",
            "ftp://x",
            "   ",
            "",
            "0.9",
            "1e3",
            "NaN",
            "null",
            "m" * 64,
            "m" * 65,
            " " + "m" * 64 + " ",
            "молоко" * 20,
            # blank to the eye: fillers, default-ignorables, combining-only
            "\u3164",
            "\uffa0",
            "\u2800",
            "\u034f",
            "\ufe0f",
            "\u17b4\u17b5",
            "\u0301\u0302",
            "milk\u0301\u0301\u0301\u0301\u0301",
            "\u0301milk",
            "mi\u3164lk",
            # URL- and domain-like
            "evil.example/phish?x",
            "evil.example",
            "ｅｖｉｌ．ｅｘａｍｐｌｅ",
            "evil\u3002example",
            "www.milk",
            "milk/eggs",
            "1/2 milk",
            "milk%2e",
            "10.0.0.1",
            "xn--mlk-0ja",
            # mixed scripts (a Cyrillic і, a Greek ο)
            "mіlk",
            "mοlk",
            "мilk",
        ]
    ),
    st.text(min_size=60, max_size=300),
)
JSON_SCALAR = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
JSON_ANY = st.recursive(
    JSON_SCALAR,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@st.composite
def commands(draw: st.DrawFn) -> dict[str, Any]:
    lists = draw(
        st.lists(LIST_ID, min_size=draw(st.sampled_from([0, 1, 1, 1])), max_size=4, unique=True)
    )
    default = draw(st.none() | st.sampled_from([*lists, "l-1"]))
    items = draw(st.lists(ITEM_TEXT, min_size=1, max_size=4))
    named = draw(st.sampled_from([None, None, None, "nope", *lists]))
    kind = draw(st.sampled_from(["en"] * 3 + ["ru"] * 3 + ["random", "timer"]))
    if kind == "en":
        text = f"add {draw(st.sampled_from([', ', ' and ']).map(lambda s: s.join(items)))} "
        text += "to my shopping list" + (f" {named}" if named else "")
    elif kind == "ru":
        text = f"добавь {' и '.join(items)} в список покупок" + (f" {named}" if named else "")
    elif kind == "timer":
        text = "set a timer for 5 minutes"
    else:
        text = draw(st.text(max_size=80))
    context: dict[str, Any] = {"lists": lists}
    if default is not None:
        context["default_list_id"] = default
    capabilities = draw(st.sampled_from([["start_job"]] * 4 + [["x", "start_job"], []]))
    return {
        "command_id": draw(st.text(min_size=1, max_size=20)),
        "user_id": draw(st.text(min_size=1, max_size=20)),
        "text": text,
        "capabilities": capabilities,
        "context": context,
    }


@st.composite
def llm_outputs(draw: st.DrawFn, command: dict[str, Any]) -> Any:
    """Mostly candidate-shaped: valid, valid with one defect, or wild in every field; now and
    then anything at all (any JSON value, or a string that is not a JSON object)."""
    shape = draw(st.sampled_from(["valid"] * 3 + ["defect"] * 4 + ["wild"] * 2 + ["junk"]))
    if shape == "junk":
        return draw(
            JSON_ANY
            | st.sampled_from(["not json", "", "[1, 2]", '{"intent":', "<html>"])
            | st.text()
        )
    context = command["context"]
    own_lists = [*context.get("lists", []), context.get("default_list_id") or "l-1"]
    said = command["text"].split() or ["x"]
    wild = shape == "wild"
    good_name = st.sampled_from(said) | ITEM_TEXT if wild else st.sampled_from(said)
    intent = st.sampled_from([C] * 6 + ["remove_shopping_item", "set_timer", C.upper(), ""])
    stated = sorted(
        {1, *(int(d) for d in re.findall(r"[0-9]{1,3}", command["text"]) if int(d) >= 1)}
        | {QUANTITY_WORDS[w] for w in command["text"].lower().split() if w in QUANTITY_WORDS}
    )
    count = st.sampled_from(stated) | st.integers(1, 999)  # mostly what the text says
    quantity = count | st.sampled_from([0, -1, 1000, 2.0, "2", True, None])
    confidence = st.none() | st.floats(0, 1) | st.sampled_from([0.7, 0.8, 1, 0, -0.1, 1.5, "0.9"])
    name = (good_name | JUNK_TEXT | st.integers() | st.none()) if wild else good_name
    item = st.fixed_dictionaries({"name": name}, optional={"quantity": quantity if wild else count})
    items = draw(st.lists(item, min_size=0 if wild else 1, max_size=24 if wild else 5))
    list_id = draw(
        (st.sampled_from(own_lists) | LIST_ID | st.integers())
        if wild
        else st.sampled_from(own_lists)
    )
    raw: dict[str, Any] = {
        "intent": draw(intent) if wild else C,
        "job": {
            "job_type": draw(intent) if wild else C,
            "payload": {"list_id": list_id, "items": items},
        },
    }
    conf_mode = draw(st.sampled_from(["given", "given", "absent", "null"]))
    if conf_mode == "given":
        raw["confidence"] = draw(confidence if wild else st.floats(0.6, 1))
    elif conf_mode == "null":
        raw["confidence"] = None
    if shape == "valid":
        return raw
    job, payload = raw["job"], raw["job"]["payload"]
    defects = [
        "intent", "job_type", "name", "name_type", "quantity", "list_id", "many", "empty",
        "extra_top", "extra_job", "extra_payload", "extra_item", "missing", "confidence",
    ]  # fmt: skip
    for defect in draw(
        st.lists(st.sampled_from(defects), min_size=1, max_size=1 if not wild else 3)
    ):
        if defect in ("intent", "job_type"):
            target = raw if defect == "intent" else job
            target[defect] = draw(intent.filter(lambda v: v != C) | JSON_ANY)
        elif defect == "name" and items:
            items[draw(st.integers(0, len(items) - 1))]["name"] = draw(JUNK_TEXT)
        elif defect == "name_type" and items:
            items[0]["name"] = draw(st.integers() | st.none() | st.lists(st.text(), max_size=2))
        elif defect == "quantity" and items:
            items[-1]["quantity"] = draw(quantity.filter(not_a_count))
        elif defect == "list_id":
            payload["list_id"] = draw(LIST_ID | st.integers() | st.none())
        elif defect == "many":
            payload["items"] = [{"name": draw(good_name)} for _ in range(draw(st.integers(20, 25)))]
        elif defect == "empty":
            payload["items"] = []
        elif defect.startswith("extra_"):
            where = {"extra_top": raw, "extra_job": job, "extra_payload": payload}
            target = where.get(defect, items[0] if items else payload)
            target[draw(st.sampled_from(["note", "action", "price", "admin", "quantity"]))] = draw(
                JSON_ANY
            )
        elif defect == "missing":
            victim = draw(st.sampled_from([raw, job, payload, *items]))
            if victim:
                victim.pop(draw(st.sampled_from(sorted(victim))))
        elif defect == "confidence":
            raw["confidence"] = draw(confidence)
    return raw
