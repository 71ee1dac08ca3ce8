"""Reading and judging kept cases (the console's review page and ``review export``).

Opens the store with the key (a wrong key reads nothing: ``ReviewStoreError``), deletes
expired cases first (the retention holds even when no app writes), and records verdicts.
``partial_trust.apps.review.verdicts`` reads verdicts without the key (closed enums in
clear), so the analyzer computes the override rate without ever holding raw data.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final

from partial_trust.apps.review.verdicts import VerdictRow
from partial_trust.middleware import review_store
from partial_trust.middleware.review import ReviewSettings
from partial_trust.middleware.review_store import ReviewStoreError

VERDICTS: Final = ("baseline_right", "llm_right", "both_wrong", "unclear")
#: what a reviewer may say about the LLM when it was overruled ("none" when it was right)
CATEGORIES: Final = ("too_strict", "too_permissive", "unclear")
MAX_NOTE_CHARS: Final = 2000


@dataclass(frozen=True, slots=True)
class Case:
    id: int
    corridor: str
    mode: str
    status: str
    reason: str
    created: float
    command: Any
    text: str | None
    baseline: Any
    candidate: Any


def category_of(verdict: str, category: str | None) -> str:
    """An override's category (``unclear`` verdicts are ``unclear``); ``none`` for llm_right."""
    if verdict not in VERDICTS:
        raise ValueError(f"verdict must be one of {', '.join(VERDICTS)}")
    if verdict == "llm_right":
        return "none"
    if verdict == "unclear":
        return "unclear"
    if category not in CATEGORIES:
        raise ValueError(f"category must be one of {', '.join(CATEGORIES)}")
    return category


class ReviewReader:
    """One open store (blocking: call from a worker thread in async code)."""

    def __init__(self, settings: ReviewSettings) -> None:
        self.settings = settings
        self._fernet = review_store.cipher(settings.key)
        self._db = review_store.connect(settings.path)
        try:
            review_store.prepare(self._db, self._fernet)
            review_store.purge(self._db, settings.retention_s)
        except (ReviewStoreError, sqlite3.Error) as exc:
            self._db.close()
            if isinstance(exc, ReviewStoreError):
                raise
            raise ReviewStoreError(review_store.describe(exc)) from None

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> ReviewReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _case(self, row: tuple[Any, ...]) -> Case:
        data = review_store.unseal(self._fernet, row[6])
        return Case(
            row[0], row[1], row[2], row[3], row[4], row[5],
            data.get("command"), data.get("text"), data.get("baseline"), data.get("candidate"),
        )  # fmt: skip

    _COLUMNS = "c.id, c.corridor, c.mode, c.status, c.reason, c.created, c.payload"

    def next_case(self) -> Case | None:
        """The oldest case nobody has judged yet."""
        review_store.purge(self._db, self.settings.retention_s)
        row = self._db.execute(
            f"SELECT {self._COLUMNS} FROM cases c LEFT JOIN verdicts v ON v.case_id = c.id"
            " WHERE v.case_id IS NULL ORDER BY c.created, c.id LIMIT 1"
        ).fetchone()
        return None if row is None else self._case(row)

    def progress(self) -> dict[str, int]:
        """(n of m reviewed) over the cases still kept."""
        total, judged = self._db.execute(
            "SELECT COUNT(*), COUNT(v.case_id) FROM cases c"
            " LEFT JOIN verdicts v ON v.case_id = c.id"
        ).fetchone()
        return {"reviewed": int(judged), "total": int(total)}

    def judge(
        self, case_id: int, verdict: str, category: str | None, note: str, reviewer: str
    ) -> VerdictRow:
        """Record a verdict once; ``KeyError`` for an unknown (or expired) case,
        ``ValueError`` for a bad verdict or a case already judged."""
        kind = category_of(verdict, category)
        row = self._db.execute(
            "SELECT corridor, created FROM cases WHERE id = ?", (case_id,)
        ).fetchone()
        if row is None:
            raise KeyError(case_id)
        note = note.strip()[:MAX_NOTE_CHARS]
        sealed = review_store.seal(self._fernet, note) if note else None
        now = time.time()
        try:
            with self._db:
                self._db.execute(
                    "INSERT INTO verdicts VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (case_id, row[0], verdict, kind, reviewer, now, row[1], sealed),
                )
        except sqlite3.IntegrityError:
            raise ValueError("this case has a verdict already") from None
        return VerdictRow(row[0], verdict, kind, now)

    def judged_cases(self) -> Iterator[tuple[Case, str, str, str | None]]:
        """Every kept case with its verdict: (case, verdict, category, note)."""
        rows = self._db.execute(
            f"SELECT {self._COLUMNS}, v.verdict, v.category, v.note FROM cases c"
            " JOIN verdicts v ON v.case_id = c.id ORDER BY c.id"
        ).fetchall()
        for row in rows:
            note = review_store.unseal(self._fernet, row[9]) if row[9] is not None else None
            yield self._case(row[:7]), row[7], row[8], note
