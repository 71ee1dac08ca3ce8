"""The review store's Prometheus families: counts by closed enums, never raw data.

``partial_trust_review_cases_total{corridor,result}``: what became of each case handed to
the store (``kept``, ``dropped_full``, ``dropped_queue``, ``dropped_off``, ``failed``).
``partial_trust_review_verdicts_total{corridor,verdict,category}``: reviewers' verdicts
(counted where they are given: the console). Declared once per registry.
"""

from __future__ import annotations

import weakref
from typing import Final

from prometheus_client import REGISTRY, CollectorRegistry, Counter

VERDICTS: Final = ("baseline_right", "llm_right", "both_wrong", "unclear")
CATEGORIES: Final = ("too_strict", "too_permissive", "unclear", "none")

_DECLARED: weakref.WeakKeyDictionary[CollectorRegistry, tuple[Counter, Counter]] = (
    weakref.WeakKeyDictionary()
)


def _families(registry: CollectorRegistry) -> tuple[Counter, Counter]:
    families = _DECLARED.get(registry)
    if families is None:
        families = _DECLARED[registry] = (
            Counter(
                "partial_trust_review_cases_total",
                "Disagreements handed to the advisory review store, by what became of them.",
                ("corridor", "result"),
                registry=registry,
            ),
            Counter(
                "partial_trust_review_verdicts_total",
                "Reviewers' verdicts on kept disagreements (no raw data).",
                ("corridor", "verdict", "category"),
                registry=registry,
            ),
        )
    return families


class ReviewMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.cases, self.verdicts = _families(REGISTRY if registry is None else registry)

    def case(self, corridor: str, result: str, n: int = 1) -> None:
        self.cases.labels(corridor, result).inc(n)

    def verdict(self, corridor: str, verdict: str, category: str) -> None:
        if verdict in VERDICTS and category in CATEGORIES:
            self.verdicts.labels(corridor, verdict, category).inc()
