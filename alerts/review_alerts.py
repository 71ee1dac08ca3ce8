"""The advisory review store's alert: configured, and failing.

The store's writer turns review off on any fault (a corrupted, truncated, replaced or
deleted file, a full disk, a wrong key) and keeps the corridor serving, so nothing else
fails: the only signs are ``/health`` and ``partial_trust_review_cases_total``. Every case
handed to a store that is off is counted ``dropped_off`` (``failed``: the one a fault hit),
so the increase of those two over 10m, per corridor, is the store failing while it is
configured and the corridor's review flag is on (a store that is not configured, or a
corridor whose flag is off, hands nothing over and counts nothing).
"""

from __future__ import annotations

from typing import Final

from alerts.alert_spec import Alert

#: the window the failures are counted over (the alert's ``for`` is half of it)
WINDOW: Final = "10m"


def review_store_alerts() -> tuple[Alert, ...]:
    return (
        Alert(
            name="PartialTrustReviewStoreFailing",
            unit="count",
            severity="warning",
            threshold=0,
            min_samples=1,
            for_="5m",
            expr=(  # ``format`` fills {threshold} and {min_samples}: label braces doubled
                "sum by (corridor) (increase(partial_trust_review_cases_total"
                '{{result=~"failed|dropped_off"}}[' + WINDOW + "])) > {threshold}\n"
                "and on (corridor) sum by (corridor) "
                "(increase(partial_trust_review_cases_total[" + WINDOW + "])) >= {min_samples}"
            ),
            summary=(
                "Partial trust corridor {{ $labels.corridor }}: the advisory review store "
                "is failing - disagreements are not kept"
            ),
            description=(
                '{{ $value | printf "%.0f" }} disagreements of corridor '
                "{{ $labels.corridor }} handed to the review store over the last "
                f"{WINDOW} were dropped because the store is off, or failed (threshold "
                "@T@). The corridor keeps serving; reviewers see no new cases and the "
                "advisory stage's override rate stops growing. /health's review_store.reason "
                "says why."
            ),
            anchor="partialtrustreviewstorefailing",
            action="Check the review store, restart",
        ),
    )
