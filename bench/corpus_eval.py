"""Judge shopping decisions against the labelled corpus; the baseline's own accuracy.

    python bench/corpus_eval.py [--split train|held_out|all]

A decision is right by the label when:

* the label is the corridor (``add_shopping_item``): the decision starts that job on the
  labelled list with the labelled items, compared as a multiset of (name stems, quantity),
  so "eggs"/"egg" and "яйца"/"яйцо" are one item
  (``partial_trust.middleware.grounding.stem_key``) but "milk × 2" is not "milk";
* the label is anything else: the decision does not start an ``add_shopping_item`` job
  (asking to clarify, or another intent, is right: the corridor must not take it).

The same judge reads an LLM candidate (the object in the completion), so the baseline, the
model and the served answer are measured alike (``bench/real_model.py``).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.corpus.build import CORPUS_PATH, CORRIDOR  # noqa: E402
from partial_trust.contracts import CommandDTO  # noqa: E402
from partial_trust.middleware.baseline import route  # noqa: E402
from partial_trust.middleware.grounding import stem_key  # noqa: E402

Entry = dict[str, Any]


def load_corpus(path: Path = CORPUS_PATH, split: str | None = None) -> list[Entry]:
    entries: list[Entry] = json.loads(path.read_text(encoding="utf-8"))
    return [e for e in entries if split in (None, "all", e["split"])]


def in_corridor(label: dict[str, Any]) -> bool:
    return bool(label["intent"] == CORRIDOR)


def _reading(list_id: object, items: object) -> tuple[object, Counter[tuple[Any, ...]]] | None:
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        return None
    return list_id, Counter((stem_key(str(i.get("name", ""))), i.get("quantity", 1)) for i in items)


def decision_reading(decision: object) -> tuple[object, Counter[tuple[Any, ...]]] | None:
    """(list, items) of a decision or candidate that adds shopping items, else ``None``."""
    if not isinstance(decision, dict) or decision.get("intent") != CORRIDOR:
        return None
    if "action" in decision and decision["action"] != "start_job":
        return None  # a DecisionDTO that asks to clarify
    job = decision.get("job")
    payload = job.get("payload") if isinstance(job, dict) else None
    if not isinstance(payload, dict):
        return None
    return _reading(payload.get("list_id"), payload.get("items"))


def label_reading(label: dict[str, Any]) -> tuple[object, Counter[tuple[Any, ...]]] | None:
    return _reading(label["list_id"], label["items"]) if in_corridor(label) else None


def is_right(label: dict[str, Any], decision: object) -> bool:
    """Whether ``decision`` (a DecisionDTO dict or a candidate object) is what the label says."""
    return decision_reading(decision) == label_reading(label)


def baseline_decision(entry: Entry) -> dict[str, Any]:
    return route(CommandDTO.model_validate(entry["command"])).model_dump(mode="json")


@dataclass
class Accuracy:
    """Right / judged, overall and by language and category."""

    right: int = 0
    total: int = 0
    groups: dict[str, list[int]] = field(default_factory=dict)

    def add(self, entry: Entry, right: bool) -> None:
        self.right += right
        self.total += 1
        for key in (
            entry["lang"],
            entry["category"],
            "in corridor" if in_corridor(entry["expected"]) else "not in corridor",
        ):
            pair = self.groups.setdefault(key, [0, 0])
            pair[0] += right
            pair[1] += 1

    @property
    def rate(self) -> float | None:
        return self.right / self.total if self.total else None


def baseline_accuracy(entries: Iterable[Entry]) -> Accuracy:
    acc = Accuracy()
    for entry in entries:
        acc.add(entry, is_right(entry["expected"], baseline_decision(entry)))
    return acc


def percent(right: int, total: int) -> str:
    return f"{right}/{total} ({100 * right / total:.1f}%)" if total else "n/a"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="The baseline's accuracy on the corpus.")
    parser.add_argument("--split", choices=("train", "held_out", "all"), default="all")
    args = parser.parse_args(argv)
    acc = baseline_accuracy(load_corpus(split=args.split))
    print(f"baseline accuracy ({args.split}): {percent(acc.right, acc.total)}")
    for key, (right, total) in sorted(acc.groups.items()):
        print(f"  {key:<16} {percent(right, total)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
