"""The analyzer's figures, defined once (DESIGN "Analyzer metrics") for every source.

``Figures`` is what the gate judges. The risk log fills it today (``from_tally``); a
Prometheus source only has to produce the same dataclass, so the gate cannot tell them apart
and the two sources give the same verdict on the same traffic.

Definitions (numerator / denominator; a zero denominator gives ``None``, never 0):

* sampled = records with status accepted_llm, fallback_deterministic or error
* error_rate = error / sampled
* acceptance_rate = accepted_llm / sampled
* intent_mismatch_rate = records with intent_match false / records with intent_match not null
* entity_key_mismatch_rate = the same with entity_key_match
* agreement_rate = records with agreement true / records with agreement not null (the
  candidate's decision equals the baseline's; null when no candidate was parsed), overall and
  by mode (``shadow``, ``canary``; a line without ``mode`` is canary, without ``agreement``
  null). ``by_mode`` also carries each mode's records, sampled, error and acceptance rates.
* latency_p95 = 95th percentile of latency_ms over sampled records that have one, in ms,
  by linear interpolation between closest ranks: with the n values sorted ascending
  (0-based), h = (n - 1) * 0.95 and p95 = x[floor h] + (h - floor h) * (x[ceil h] - x[floor h])
  (the "C = 1" variant; numpy's and Excel PERCENTILE.INC's default)

Input quality (risk log only, in ``input``): ``foreign_share`` = (foreign + torn lines) /
non-blank lines; the gate refuses to judge a log where it exceeds ``MAX_FOREIGN_SHARE``.
``latency_p95_exact`` is false only past ``MAX_LATENCY_KEYS`` distinct latencies.
``legacy_records`` counts the records (in the window) that carry no ``schema``: the original
application's lines (``records_model.LegacyLine``, ``records.LEGACY_REQUIRED``); they count
in every figure like ours.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from itertools import accumulate
from typing import Any

from partial_trust.apps.analysis.records import MODES
from partial_trust.apps.analysis.tally import SAMPLED, STATUSES, Tally

_TRIBOOL = ("true", "false", "null")


@dataclass(frozen=True, slots=True)
class Rate:
    numerator: int
    denominator: int

    @property
    def value(self) -> float | None:
        return self.numerator / self.denominator if self.denominator else None


@dataclass(frozen=True, slots=True)
class HourCounts:
    """Outcomes in one UTC hour: the unit of the stability check and the time chart."""

    hour: str  # "YYYY-MM-DDTHH"
    sampled: int
    accepted_llm: int
    error: int


@dataclass(frozen=True)
class Figures:
    """Every figure of one analysis window; see the module docstring for definitions."""

    records: int
    status_counts: Mapping[str, int]
    reason_counts: Mapping[str, int]
    intent_match: Mapping[str, int]  # "true" / "false" / "null" -> records
    entity_key_match: Mapping[str, int]
    latency_count: int
    latency_p95: float | None
    hours: tuple[HourCounts, ...] = ()
    #: (upper edge in ms, count) per bin; the last edge is None (overflow). For charts only.
    latency_histogram: tuple[tuple[float | None, int], ...] = ()
    source: str = "risk-log"
    input: Mapping[str, Any] = field(default_factory=dict)  # lines, foreign, torn, files...
    #: mode -> status -> records, and mode -> "true" / "false" / "null" -> records
    mode_status: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    agreement: Mapping[str, Mapping[str, int]] = field(default_factory=dict)

    @property
    def sampled(self) -> int:
        return sum(self.status_counts.get(s, 0) for s in SAMPLED)

    @property
    def error_rate(self) -> Rate:
        return Rate(self.status_counts.get("error", 0), self.sampled)

    @property
    def acceptance_rate(self) -> Rate:
        return Rate(self.status_counts.get("accepted_llm", 0), self.sampled)

    @property
    def intent_mismatch_rate(self) -> Rate:
        m = self.intent_match
        return Rate(m.get("false", 0), m.get("false", 0) + m.get("true", 0))

    @property
    def entity_key_mismatch_rate(self) -> Rate:
        m = self.entity_key_match
        return Rate(m.get("false", 0), m.get("false", 0) + m.get("true", 0))

    @property
    def agreement_rate(self) -> Rate:
        return _sum_rates(self.agreement_rate_of(m) for m in self.agreement)

    def agreement_rate_of(self, mode: str) -> Rate:
        m = self.agreement.get(mode, {})
        return Rate(m.get("true", 0), m.get("true", 0) + m.get("false", 0))

    def records_of(self, mode: str) -> int:
        return sum(self.mode_status.get(mode, {}).values())

    def sampled_of(self, mode: str) -> int:
        return sum(self.mode_status.get(mode, {}).get(s, 0) for s in SAMPLED)

    def status_rate_of(self, mode: str, status: str) -> Rate:
        return Rate(self.mode_status.get(mode, {}).get(status, 0), self.sampled_of(mode))

    def rates(self) -> dict[str, Rate]:
        return {
            "error_rate": self.error_rate,
            "intent_mismatch_rate": self.intent_mismatch_rate,
            "entity_key_mismatch_rate": self.entity_key_mismatch_rate,
            "acceptance_rate": self.acceptance_rate,
            "agreement_rate": self.agreement_rate,
        }

    def by_mode(self) -> dict[str, dict[str, Any]]:
        """Per mode: records, sampled, and the rates that differ by mode, with their parts."""
        return {
            mode: {
                "records": self.records_of(mode),
                "sampled": self.sampled_of(mode),
                "error_rate": _rate_json(self.status_rate_of(mode, "error")),
                "acceptance_rate": _rate_json(self.status_rate_of(mode, "accepted_llm")),
                "agreement_rate": _rate_json(self.agreement_rate_of(mode)),
                "agreement_counts": dict(self.agreement.get(mode, {})),
            }
            for mode in MODES
        }

    def to_json(self) -> dict[str, Any]:
        """Every figure, rates flat (runbook names) and with numerator/denominator."""
        out: dict[str, Any] = {
            "schema": "partial_trust_report/v1",
            "source": self.source,
            "records": self.records,
            "sampled": self.sampled,
        }
        for name, rate in self.rates().items():
            out[name] = _round(rate.value)
        out["latency_p95"] = _round(self.latency_p95)
        out["latency_p95_unit"] = "ms"
        out["latency_count"] = self.latency_count
        out["rates"] = {name: _rate_json(r) for name, r in self.rates().items()}
        out["by_mode"] = self.by_mode()
        out["status_counts"] = dict(self.status_counts)
        out["reason_counts"] = dict(self.reason_counts)
        out["intent_match_counts"] = dict(self.intent_match)
        out["entity_key_match_counts"] = dict(self.entity_key_match)
        out["hours"] = [asdict(h) for h in self.hours]
        out["latency_histogram_ms"] = [{"le": e, "count": n} for e, n in self.latency_histogram]
        out["input"] = dict(self.input)
        return out


def _rate_json(r: Rate) -> dict[str, Any]:
    return {"value": _round(r.value), "numerator": r.numerator, "denominator": r.denominator}


def _sum_rates(rates: Any) -> Rate:
    pairs = [(r.numerator, r.denominator) for r in rates]
    return Rate(sum(p[0] for p in pairs), sum(p[1] for p in pairs))


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def percentile(values: Mapping[float, int], q: float) -> float | None:
    """Linear interpolation between closest ranks over a value -> multiplicity map."""
    xs = sorted(v for v, c in values.items() if c > 0)
    if not xs:
        return None
    cum = list(accumulate(values[v] for v in xs))  # cum[i] = count of values <= xs[i]
    h = (cum[-1] - 1) * q
    lo = math.floor(h)

    def at(rank: int) -> float:  # 0-based rank -> value
        return xs[bisect_right(cum, rank)]

    x_lo = at(lo)
    return x_lo + (h - lo) * (at(min(lo + 1, cum[-1] - 1)) - x_lo)


HIST_EDGES: tuple[float, ...] = tuple(float(e) for e in range(25, 1001, 25))


def histogram(values: Mapping[float, int]) -> tuple[tuple[float | None, int], ...]:
    """Counts per 25 ms bin up to 1 s (upper edge inclusive) plus one overflow bin."""
    counts = [0] * (len(HIST_EDGES) + 1)
    for v, n in values.items():
        counts[bisect_left(HIST_EDGES, v)] += n
    edges: list[float | None] = [*HIST_EDGES, None]
    return tuple(zip(edges, counts, strict=True))


def from_tally(tally: Tally, input_info: Mapping[str, Any] | None = None) -> Figures:
    """Figures from risk-log counts; see the module docstring."""
    status: Counter[str] = Counter({s: 0 for s in STATUSES})
    reason: Counter[str] = Counter()
    intent: Counter[str] = Counter({"true": 0, "false": 0, "null": 0})
    entity: Counter[str] = Counter({"true": 0, "false": 0, "null": 0})
    hours: dict[str, list[int]] = {}
    modes: dict[str, Counter[str]] = {m: Counter({s: 0 for s in STATUSES}) for m in MODES}
    agree: dict[str, Counter[str]] = {m: Counter({a: 0 for a in _TRIBOOL}) for m in MODES}
    for (hour, st, rs, im, em, md, ag), n in tally.records.items():
        s = st.decode()
        mode = md.decode() or "canary"  # b"": the regex saw no mode field
        modes[mode][s] += n
        agree[mode][ag.decode() or "null"] += n
        status[s] += n
        reason[rs.decode()] += n
        intent[im.decode()] += n
        entity[em.decode()] += n
        if s in SAMPLED:
            row = hours.setdefault(hour.decode(), [0, 0, 0])
            row[0] += n
            row[1] += n if s == "accepted_llm" else 0
            row[2] += n if s == "error" else 0
    values: Counter[float] = Counter()
    for (st, token), n in tally.latencies.items():
        if token != b"null" and st.decode() in SAMPLED:
            values[float(token)] += n
    odd = tally.foreign + tally.torn
    judged = tally.lines - tally.blank  # every line that was, or could have been, a record
    info = {
        "lines": tally.lines,
        "foreign_lines": tally.foreign,
        "foreign_share": round(odd / judged, 6) if judged else 0.0,
        "overlong_lines": tally.overlong,
        "latency_p95_exact": tally.latency_exact,
        "torn_lines": tally.torn,
        "blank_lines": tally.blank,
        "outside_window": tally.outside_window,
        # Records without a ``schema`` (the original application's lines): read and counted
        # like ours, reported so that an operator knows which writer the figures come from.
        "legacy_records": tally.legacy,
        **(input_info or {}),
    }
    return Figures(
        records=sum(status.values()),
        status_counts=dict(status),
        reason_counts=dict(sorted(reason.items())),
        intent_match=dict(intent),
        entity_key_match=dict(entity),
        latency_count=sum(values.values()),
        latency_p95=percentile(values, 0.95),
        hours=tuple(HourCounts(h, *row) for h, row in sorted(hours.items())),
        latency_histogram=histogram(values),
        input=info,
        mode_status={m: dict(c) for m, c in modes.items()},
        agreement={m: dict(c) for m, c in agree.items()},
    )
