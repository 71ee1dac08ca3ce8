"""The override rate: what reviewers decided, as figures. Standard library only (the analyzer
must run on a bare Python), and no key: verdicts and categories are stored in clear.

An override is any verdict but ``llm_right``: the reviewer did not take the LLM's decision
(``baseline_right``, ``both_wrong``), or could not say it was right (``unclear``, counted as
an override so an undecidable case never helps a promotion). ``override_rate`` = overrides /
verdicts (``null`` with no verdicts), with the overrides by category: ``too_strict`` (the LLM
dropped or narrowed what the user asked), ``too_permissive`` (it added or widened), ``unclear``.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from dataclasses import dataclass
from typing import Any, Final

OVERRIDE_CATEGORIES: Final = ("too_strict", "too_permissive", "unclear")


class VerdictStoreError(Exception):
    """The store file cannot be read (missing, not a review store)."""


@dataclass(frozen=True, slots=True)
class VerdictRow:
    corridor: str
    verdict: str
    category: str
    judged: float


def verdict_rows(
    path: str, since: float | None = None, until: float | None = None
) -> list[VerdictRow]:
    """Every verdict judged in [since, until) (no raw data is read)."""
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5.0)
    except sqlite3.Error as exc:
        raise VerdictStoreError(f"{path}: cannot open the review store ({exc})") from None
    try:
        rows = db.execute(
            "SELECT corridor, verdict, category, judged FROM verdicts"
            " WHERE judged >= ? AND judged < ?",
            (since or 0.0, until if until is not None else float("inf")),
        ).fetchall()
    except sqlite3.Error as exc:
        raise VerdictStoreError(f"{path}: not a readable review store ({exc})") from None
    finally:
        db.close()
    return [VerdictRow(str(c), str(v), str(k), float(j)) for c, v, k, j in rows]


def override_figures(rows: list[VerdictRow], corridor: str | None = None) -> dict[str, Any]:
    """The override figures over ``rows`` (one corridor's, when given)."""
    chosen = [r for r in rows if corridor is None or r.corridor == corridor]
    overrides = [r for r in chosen if r.verdict != "llm_right"]
    categories = Counter(r.category for r in overrides)
    return {
        "corridor": corridor,
        "verdicts": len(chosen),
        "overrides": len(overrides),
        "override_rate": round(len(overrides) / len(chosen), 6) if chosen else None,
        "by_verdict": dict(sorted(Counter(r.verdict for r in chosen).items())),
        "by_category": {c: categories.get(c, 0) for c in OVERRIDE_CATEGORIES},
    }
