"""What would stricter acceptance rules have done to a real-model run? (offline, no model)

    python bench/rule_whatif.py RUN.json     # the --json of bench/real_model.py

For every candidate the corridor accepted in the run, each proposed rule says whether it
would have refused it (the baseline's answer would then have been served); the served
accuracy against the labels is recomputed. The rules are proposals measured here, not the
corridor's (``partial_trust.middleware.acceptance`` is the rule set in force), except the
first, which is now in force and is replayed by calling it, so a run recorded before it shows
what it refuses:

* ``list_grounded``: ``acceptance.list_allowed``: ``list_id`` is the baseline's, or one of the
  command's lists that the text names (its words in one run, by stem);
* ``no_fewer_items``: at least as many items as the baseline read;
* ``no_leading_count``: no name begins with a number or a count word (the count belongs in
  ``quantity``).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.corpus_eval import baseline_decision, is_right, load_corpus  # noqa: E402
from partial_trust.contracts import CommandDTO  # noqa: E402
from partial_trust.middleware.acceptance import list_allowed  # noqa: E402
from partial_trust.middleware.baseline_numbers import QUANTITY_WORDS  # noqa: E402
from partial_trust.middleware.grounding import Grounding, fold  # noqa: E402

Rule = Callable[[dict[str, Any], dict[str, Any], dict[str, Any]], bool]  # True: refuse


def _payload(decision: dict[str, Any]) -> dict[str, Any]:
    return dict((decision.get("job") or {}).get("payload") or {})


def list_grounded(entry: dict[str, Any], base: dict[str, Any], cand: dict[str, Any]) -> bool:
    """The library's own list rule (no second copy of it here): True when it refuses."""
    command = CommandDTO.model_validate(entry["command"])
    chosen = str(_payload(cand).get("list_id"))
    return not list_allowed(chosen, command, base, Grounding(command.text))


def no_fewer_items(entry: dict[str, Any], base: dict[str, Any], cand: dict[str, Any]) -> bool:
    return len(_payload(cand).get("items") or []) < len(_payload(base).get("items") or [])


def no_leading_count(entry: dict[str, Any], base: dict[str, Any], cand: dict[str, Any]) -> bool:
    for item in _payload(cand).get("items") or []:
        first = fold(str(item.get("name", ""))).split(" ")[0]
        if first.isdigit() or first in QUANTITY_WORDS:
            return True
    return False


RULES: dict[str, Rule] = {
    "list_grounded": list_grounded,
    "no_fewer_items": no_fewer_items,
    "no_leading_count": no_leading_count,
}


def whatif(figures: dict[str, Any]) -> list[str]:
    corpus = {e["id"]: e for e in load_corpus()}
    accepted = [
        (corpus[c["id"]], c["candidate"])
        for c in figures["per_command"]
        if c["outcome"] == "accepted_llm/accepted"
    ]
    out = [f"accepted: {len(accepted)}"]
    for names in [[n] for n in RULES] + [list(RULES)]:
        refused_wrong = refused_right = 0
        for entry, cand in accepted:
            base = baseline_decision(entry)
            if any(RULES[n](entry, base, cand) for n in names):
                served = {**base, "job": {**base["job"], "payload": _payload(cand)}}
                if is_right(entry["expected"], served):
                    refused_right += 1
                else:
                    refused_wrong += 1
        out.append(
            f"{' + '.join(names)}: refuses {refused_wrong} accepted-but-wrong, "
            f"{refused_right} accepted-and-right"
        )
    return out


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    figures = json.loads(Path(args[0]).read_text(encoding="utf-8"))
    print("\n".join(whatif(figures)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
