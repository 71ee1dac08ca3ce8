"""The gate's second source: ``Figures`` from Prometheus' HTTP API (``gate --prometheus URL``).

Every figure is an instant query over one window ``W`` (``--window``, default 24h) ending at
the evaluation time ``t``, using the recording rules' definitions (alerts/recording_rules.py)
with ``increase`` over ``W`` instead of ``rate`` over 5m/1h:

* status and reason counts: ``sum by (status, reason) (increase(partial_trust_decisions_total
  {corridor="C", reason!="not_sampled"}[W]))``; ``skipped/not_sampled`` is left out because
  the risk log never holds it, so ``records`` means the same in both sources;
* intent / entity-key match counts: ``sum by (intent_match, entity_key_match)
  (increase(partial_trust_candidates_total{corridor="C"}[W]))`` (label ``unknown`` is a record
  with ``null``, exactly as in the risk log);
* latency_p95: ``histogram_quantile(0.95, sum by (le) (increase(
  partial_trust_llm_latency_seconds_bucket{corridor="C", status=~"accepted_llm|
  fallback_deterministic|error"}[W])))``, in ms;
* the stability windows' hourly outcomes: the sampled statuses' ``increase`` per UTC hour
  (a ``query_range`` with a 1h step, plus the two partial hours at the window's edges).

Counts are ``increase`` values rounded to integers. ``t`` defaults to the newest sample of
``partial_trust_decisions_total`` for the corridor (the last scrape), so ``increase`` does not
extrapolate past it; and because every series of the corridor is created at 0 when the app
starts, a window that begins before the app does not extrapolate either. Then the counts are
exact and equal the risk log's on the same traffic. Where a window starts inside a series'
life, Prometheus extrapolates to the window's edge by up to one scrape interval, which is
noise at 24h.

latency_p95 is NOT the risk log's exact percentile: Prometheus interpolates linearly inside
the histogram bucket that holds the 95% rank (``histogram_quantile``). The buckets have edges
at exactly 300, 400 and 500 ms (``metrics.LATENCY_BUCKETS``), the runbook's thresholds, so
"p95 below the threshold" is decided by bucket counts alone and both sources give the same
pass/fail except when the 95% rank lands within one observation of a threshold edge (or an
observation equals the threshold exactly), where the two percentile definitions can differ.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final

import httpx

from partial_trust.apps.analysis.figures import Figures, HourCounts
from partial_trust.apps.analysis.tally import SAMPLED, STATUSES

CORRIDOR: Final = "add_shopping_item"
_SAMPLED_RE: Final = "|".join(sorted(SAMPLED))
_DURATION = re.compile(r"(\d+)(ms|s|m|h|d|w)")
_UNIT_S: Final = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_CHART_MAX_MS: Final = 1000.0


class PrometheusError(Exception):
    """Prometheus could not be asked or gave no usable answer (the gate exits 3)."""


def parse_window(text: str) -> float:
    """A Prometheus duration (``24h``, ``1d12h``, ``90m``) in seconds; ValueError if not one."""
    pos, total = 0, 0.0
    for m in _DURATION.finditer(text):
        if m.start() != pos:
            break
        total += int(m[1]) * _UNIT_S[m[2]]
        pos = m.end()
    if pos != len(text) or not text or total <= 0:
        raise ValueError(f"not a Prometheus duration: {text!r}")
    return total


def _range(seconds: float) -> str:
    return f"{round(seconds * 1000)}ms"


class PrometheusSource:
    def __init__(self, url: str, *, client: httpx.Client | None = None, timeout_s: float = 30.0):
        self.url = url.rstrip("/")
        self._client = client or httpx.Client(timeout=timeout_s)
        self._owns = client is None

    def close(self) -> None:
        if self._owns:
            self._client.close()

    def _get(self, path: str, params: Mapping[str, str]) -> list[dict[str, Any]]:
        try:
            resp = self._client.post(f"{self.url}{path}", data=dict(params))
        except httpx.HTTPError as exc:
            raise PrometheusError(f"{self.url}: cannot query Prometheus ({exc})") from None
        try:
            body = resp.json()
        except ValueError:
            raise PrometheusError(f"{self.url}: not a Prometheus API answer") from None
        if resp.status_code != 200 or body.get("status") != "success":
            detail = body.get("error") if isinstance(body, dict) else None
            raise PrometheusError(
                f"{self.url}: query failed (HTTP {resp.status_code}): {detail or resp.text[:200]}"
            )
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def instant(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        params = {"query": expr}
        if at is not None:
            params["time"] = f"{at:.3f}"
        return self._get("/api/v1/query", params)

    def range(self, expr: str, start: float, end: float, step: float) -> list[dict[str, Any]]:
        params = {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step:g}"}
        return self._get("/api/v1/query_range", params)

    def last_scrape(self, corridor: str) -> float | None:
        rows = self.instant(
            f'max(timestamp(partial_trust_decisions_total{{corridor="{corridor}"}}))'
        )
        return float(rows[0]["value"][1]) if rows else None

    def figures(
        self, *, window_s: float, corridor: str = CORRIDOR, at: float | None = None
    ) -> Figures:
        """The analyzer's figures over (t - window_s, t]; see the module docstring."""
        if re.fullmatch(r"[a-z_][a-z0-9_]*", corridor) is None:
            raise PrometheusError(f"not a corridor name: {corridor!r}")
        t = at if at is not None else self.last_scrape(corridor)
        if t is None:
            t = datetime.now(UTC).timestamp()
        w = _range(window_s)
        sel = f'corridor="{corridor}"'
        sampled_sel = f'{sel}, status=~"{_SAMPLED_RE}"'

        status: Counter[str] = Counter({s: 0 for s in STATUSES})
        reason: Counter[str] = Counter()
        expr = (
            f"sum by (status, reason) (increase(partial_trust_decisions_total"
            f'{{{sel}, reason!="not_sampled"}}[{w}]))'
        )
        for row in self.instant(expr, t):
            n = _count(row)
            if n:
                status[row["metric"].get("status", "")] += n
                reason[row["metric"].get("reason", "")] += n
        records = sum(status.values())

        intent: Counter[str] = Counter({"true": 0, "false": 0})
        entity: Counter[str] = Counter({"true": 0, "false": 0})
        expr = (
            "sum by (intent_match, entity_key_match) "
            f"(increase(partial_trust_candidates_total{{{sel}}}[{w}]))"
        )
        for row in self.instant(expr, t):
            n = _count(row)
            for counter, label in ((intent, "intent_match"), (entity, "entity_key_match")):
                value = row["metric"].get(label, "unknown")
                if value in ("true", "false"):
                    counter[value] += n
        for counter in (intent, entity):
            counter["null"] = max(0, records - counter["true"] - counter["false"])

        buckets_expr = (
            "sum by (le) (increase(partial_trust_llm_latency_seconds_bucket"
            f"{{{sampled_sel}}}[{w}]))"
        )
        buckets = sorted(
            (
                (_le(row["metric"].get("le", "+Inf")), _count(row))
                for row in self.instant(buckets_expr, t)
            ),
            key=lambda b: b[0],
        )
        latency_count = buckets[-1][1] if buckets else 0
        p95: float | None = None
        if latency_count:
            rows = self.instant(f"histogram_quantile(0.95, {buckets_expr})", t)
            value = float(rows[0]["value"][1]) if rows else math.nan
            p95 = value * 1000.0 if math.isfinite(value) else None

        return Figures(
            records=records,
            status_counts=dict(status),
            reason_counts=dict(sorted(reason.items())),
            intent_match=dict(intent),
            entity_key_match=dict(entity),
            latency_count=latency_count,
            latency_p95=p95,
            hours=self._hours(sampled_sel, t, window_s),
            latency_histogram=_chart_bins(buckets),
            source="prometheus",
            input={
                "prometheus": self.url,
                "corridor": corridor,
                "window_seconds": window_s,
                "evaluated_at": datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds"),
                "latency_p95_method": "histogram_quantile (bucket-interpolated)",
            },
        )

    def _hours(self, sampled_sel: str, t: float, window_s: float) -> tuple[HourCounts, ...]:
        """Sampled / accepted / error per UTC hour of (t - window_s, t]."""
        start = t - window_s
        first = math.floor(start / 3600) * 3600 + 3600  # first hour boundary after start
        last = math.floor(t / 3600) * 3600  # last boundary at or before t
        rows: dict[int, Counter[str]] = {}

        def expr(seconds: float) -> str:
            return (
                f"sum by (status) (increase(partial_trust_decisions_total{{{sampled_sel}}}"
                f"[{_range(seconds)}]))"
            )

        def add(hour_start: float, status: str, n: int) -> None:
            rows.setdefault(int(hour_start // 3600), Counter())[status] += n

        if first > t:  # the whole window inside one hour
            for row in self.instant(expr(window_s), t):
                add(start, row["metric"].get("status", ""), _count(row))
        else:
            for row in self.instant(expr(first - start), first):
                add(start, row["metric"].get("status", ""), _count(row))
            if last > first:
                for series in self.range(expr(3600), first + 3600, last, 3600):
                    for ts, value in series.get("values", []):
                        add(float(ts) - 3600, series["metric"].get("status", ""), _round(value))
            if t > last:
                for row in self.instant(expr(t - last), t):
                    add(last, row["metric"].get("status", ""), _count(row))
        out = []
        for index, c in sorted(rows.items()):
            sampled = sum(c.values())
            if sampled:
                hour = datetime.fromtimestamp(index * 3600, UTC).strftime("%Y-%m-%dT%H")
                out.append(HourCounts(hour, sampled, c["accepted_llm"], c["error"]))
        return tuple(out)


def _round(value: object) -> int:
    number = float(str(value))
    return round(number) if math.isfinite(number) else 0


def _count(row: Mapping[str, Any]) -> int:
    return _round(row["value"][1])


def _le(text: str) -> float:
    return math.inf if text in ("+Inf", "Inf") else float(text)


def _chart_bins(
    cumulative: list[tuple[float, int]],
) -> tuple[tuple[float | None, int], ...]:
    """Prometheus' cumulative buckets as (upper edge in ms, count) bins for the HTML chart;
    everything above 1 s is one overflow bin, like the risk log's."""
    out: list[tuple[float | None, int]] = []
    below = 0
    for le, cum in cumulative:
        if le * 1000.0 > _CHART_MAX_MS:
            break
        out.append((le * 1000.0, cum - below))
        below = cum
    total = cumulative[-1][1] if cumulative else 0
    if cumulative:
        out.append((None, total - below))
    return tuple(out)


def fetch(
    url: str, *, window_s: float, corridor: str = CORRIDOR, at: float | None = None
) -> Figures:
    source = PrometheusSource(url)
    try:
        return source.figures(window_s=window_s, corridor=corridor, at=at)
    finally:
        source.close()
