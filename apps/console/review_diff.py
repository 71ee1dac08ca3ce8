"""What differed between the baseline's decision and the LLM's candidate, in words a reviewer
reads at a glance (intent, list, items only one side has, quantities)."""

from __future__ import annotations

from collections import Counter
from typing import Any


def _payload(decision: Any) -> dict[str, Any]:
    if not isinstance(decision, dict):
        return {}
    job = decision.get("job")
    payload = job.get("payload") if isinstance(job, dict) else None
    return payload if isinstance(payload, dict) else {}


def _items(decision: Any) -> Counter[tuple[str, object]]:
    items = _payload(decision).get("items")
    found: Counter[tuple[str, object]] = Counter()
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict):
            found[(str(item.get("name", "")).strip().lower(), item.get("quantity", 1))] += 1
    return found


def differences(baseline: Any, candidate: Any) -> list[str]:
    """One line per difference; empty when the two decide the same."""
    lines: list[str] = []
    b_intent = baseline.get("intent") if isinstance(baseline, dict) else None
    c_intent = candidate.get("intent") if isinstance(candidate, dict) else None
    if b_intent != c_intent:
        lines.append(f"intent: baseline {b_intent!r}, LLM {c_intent!r}")
    b_list, c_list = _payload(baseline).get("list_id"), _payload(candidate).get("list_id")
    if b_list != c_list:
        lines.append(f"list: baseline {b_list!r}, LLM {c_list!r}")
    b_items, c_items = _items(baseline), _items(candidate)
    for (name, qty), _ in sorted((b_items - c_items).items(), key=str):
        lines.append(f"only the baseline has: {name} x{qty}")
    for (name, qty), _ in sorted((c_items - b_items).items(), key=str):
        lines.append(f"only the LLM has: {name} x{qty}")
    return lines
