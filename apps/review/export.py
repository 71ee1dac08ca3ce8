"""``partial-trust review export --out DIR``: the judged cases as a labelled replay corpus.

``DIR/review_corpus.json`` is a JSON list in the labelled corpus format
(``bench/corpus/shopping_labelled.json``): ``{"id", "category", "split", "command",
"expected", "verdict", "corridor"}``, which ``partial-trust replay --corpus`` accepts, so the
next prompt or model is checked on what people actually judged. ``expected`` is the decision
the reviewer took: the baseline's (``baseline_right``) or the candidate's (``llm_right``);
``null`` when neither was right or it was unclear (the case still replays; its label says
what people thought). The command keeps its text and context only: its id becomes
``review-<case>`` and its user ``u-review``, so the corpus holds no id of a real user. The
file is written 0600: it is raw user text, like the store it came from.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Final

from partial_trust.apps.review.store import Case, ReviewReader
from partial_trust.middleware.review import ReviewSettings

CORPUS_NAME: Final = "review_corpus.json"


def _decision(decision: Any) -> dict[str, Any] | None:
    if not isinstance(decision, dict):
        return None
    job = decision.get("job")
    job = job if isinstance(job, dict) else {}
    payload = job.get("payload")
    payload = payload if isinstance(payload, dict) else {}
    items = payload.get("items")
    items = items if isinstance(items, list) else []
    return {
        "intent": decision.get("intent"),
        "list_id": payload.get("list_id"),
        "items": [
            {"name": i.get("name"), "quantity": i.get("quantity", 1)}
            for i in items
            if isinstance(i, dict)
        ],
    }


def entry(case: Case, verdict: str, category: str) -> dict[str, Any]:
    command = dict(case.command) if isinstance(case.command, dict) else {}
    command["command_id"] = f"review-{case.id}"
    command["user_id"] = "u-review"
    expected = {"baseline_right": case.baseline, "llm_right": case.candidate}.get(verdict)
    return {
        "id": f"review-{case.id}",
        "category": category,
        "split": "review",
        "corridor": case.corridor,
        "verdict": verdict,
        "command": command,
        "expected": _decision(expected),
    }


def export(settings: ReviewSettings, out: Path) -> tuple[Path, int]:
    """Write the corpus; (its path, the number of cases)."""
    with ReviewReader(settings) as reader:
        entries = [entry(case, v, c) for case, v, c, _note in reader.judged_cases()]
    out.mkdir(parents=True, exist_ok=True)
    target = out / CORPUS_NAME
    data = json.dumps(entries, ensure_ascii=False, indent=1) + "\n"
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(data)
    return target, len(entries)
