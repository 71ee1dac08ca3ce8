"""The recording rules: the analyzer's rates per corridor, read by the alerts and the dashboard.

Naming follows the Prometheus convention ``level:metric:operations``: ``corridor:`` rules are
summed across instances (and workers) by corridor. The order of the rules is the order of the
committed file, so the sections below are yielded in sequence.
"""

from __future__ import annotations

from collections.abc import Iterator

from alerts.promql import ratio, summed
from partial_trust import thresholds

DECISIONS = "partial_trust_decisions_total"
CANDIDATES = "partial_trust_candidates_total"
LATENCY = "partial_trust_llm_latency_seconds"
AGREEMENT = "partial_trust_agreement_total"

SAMPLED = 'status=~"accepted_llm|fallback_deterministic|error"'
ACCEPTED = 'status="accepted_llm"'
STATUSES = (("sampled", SAMPLED), ("errors", 'status="error"'), ("accepted", ACCEPTED))
#: outcomes that must produce a risk-log line (everything but skipped/not_sampled)
LOGGED = 'reason!="not_sampled"'
#: the candidate checks, each a ``<check>_match`` label of the candidates counter
CHECKS = ("intent", "entity_key")

Rule = tuple[str, str]  # (record, expr)


def recording_rules() -> list[dict[str, str]]:
    sections = (
        _rates(),
        _checked(),
        _latency(),
        _hour_before(),
        _traffic(),
        _flags(),
        _outage(),
        _stage(),
        _agreement(),
    )
    return [{"record": name, "expr": expr} for rules in sections for name, expr in rules]


def _known(check: str) -> str:
    """Candidates whose match is known (the analyzer's "not null"): a label value for
    "unknown" must never dilute a mismatch rate."""
    return f'{check}_match=~"true|false"'


def _rates() -> Iterator[Rule]:
    for w in ("5m", "1h"):
        for name, selector in STATUSES:
            yield f"corridor:partial_trust_{name}:rate{w}", summed("rate", DECISIONS, selector, w)
        for name, part in (("error_rate", "errors"), ("acceptance_rate", "accepted")):
            yield (
                f"corridor:partial_trust_{name}:ratio_rate{w}",
                ratio(
                    f"corridor:partial_trust_{part}:rate{w}",
                    f"corridor:partial_trust_sampled:rate{w}",
                ),
            )
        for check in CHECKS:
            yield (
                f"corridor:partial_trust_{check}_mismatch_rate:ratio_rate{w}",
                ratio(
                    summed("rate", CANDIDATES, f'{check}_match="false"', w),
                    summed("rate", CANDIDATES, _known(check), w),
                ),
            )
        yield (
            f"corridor:partial_trust_sampled:increase{w}",
            summed("increase", DECISIONS, SAMPLED, w),
        )


def _checked() -> Iterator[Rule]:
    """The denominators of the mismatch rates, as counts for the alerts' sample guards."""
    for check in CHECKS:
        yield (
            f"corridor:partial_trust_{check}_checked:increase5m",
            summed("increase", CANDIDATES, _known(check), "5m"),
        )


def _latency() -> Iterator[Rule]:
    yield (
        "corridor:partial_trust_llm_calls:increase5m",
        summed("increase", f"{LATENCY}_count", "", "5m"),
    )
    buckets = f"corridor_le:{LATENCY}_bucket:rate5m"
    yield buckets, summed("rate", f"{LATENCY}_bucket", "", "5m", by="corridor, le")
    for q in ("50", "95", "99"):
        yield f"corridor:{LATENCY}:p{q}_rate5m", f"histogram_quantile(0.{q}, {buckets})"


def _hour_before() -> Iterator[Rule]:
    """The acceptance rate's own level an hour ago (the hour from 2h to 1h ago), straight from
    the raw counters: no recorded history needed, right from the first evaluation after a
    Prometheus restart, and a sudden drop stays visible for an hour instead of being diluted
    into an adjacent baseline within minutes."""
    yield (
        "corridor:partial_trust_sampled:increase1h_offset1h",
        summed("increase", DECISIONS, SAMPLED, "1h", offset="1h"),
    )
    yield (
        "corridor:partial_trust_acceptance_rate:ratio_rate1h_offset1h",
        ratio(
            summed("rate", DECISIONS, ACCEPTED, "1h", offset="1h"),
            summed("rate", DECISIONS, SAMPLED, "1h", offset="1h"),
        ),
    )
    yield (
        "corridor:partial_trust_acceptance_rate:drop_ratio_rate5m_vs_rate1h_offset1h",
        "1 - corridor:partial_trust_acceptance_rate:ratio_rate5m\n"
        "/ corridor:partial_trust_acceptance_rate:ratio_rate1h_offset1h",
    )


def _traffic() -> Iterator[Rule]:
    """Counts for the no-traffic and stale-risk-log alerts: eligible is what was sampled plus
    what would have been had the sample rate, the policy and the flags allowed it."""
    sampled = summed("increase", DECISIONS, SAMPLED, "30m")
    skipped = 'reason=~"not_sampled|policy_disabled|flags_unavailable"'
    yield "corridor:partial_trust_sampled:increase30m", sampled
    yield (
        "corridor:partial_trust_eligible:increase30m",
        f"{sampled}\n+ {summed('increase', DECISIONS, skipped, '30m')}",
    )
    yield "corridor:partial_trust_logged:increase1h", summed("increase", DECISIONS, LOGGED, "1h")


def _flags() -> Iterator[Rule]:
    for flag in ("enabled", "sample_rate"):
        yield (
            f"corridor:partial_trust_flag_{flag}:max",
            f"max by (corridor) (partial_trust_flag_{flag})",
        )


def _outage() -> Iterator[Rule]:
    """The short window of the outage page and the timeout share (see partial_trust.thresholds):
    an LLM that went down is seen in one minute, a timeout that hides latency in five."""
    w = thresholds.OUTAGE_WINDOW
    yield f"corridor:partial_trust_sampled:rate{w}", summed("rate", DECISIONS, SAMPLED, w)
    yield f"corridor:partial_trust_errors:rate{w}", summed("rate", DECISIONS, 'status="error"', w)
    yield (
        f"corridor:partial_trust_error_rate:ratio_rate{w}",
        ratio(f"corridor:partial_trust_errors:rate{w}", f"corridor:partial_trust_sampled:rate{w}"),
    )
    yield f"corridor:partial_trust_sampled:increase{w}", summed("increase", DECISIONS, SAMPLED, w)
    yield (
        "corridor:partial_trust_timeout_share:ratio_rate5m",
        ratio(
            summed("rate", DECISIONS, 'status="error",reason="llm_timeout"', "5m"),
            "corridor:partial_trust_sampled:rate5m",
        ),
    )


def _stage() -> Iterator[Rule]:
    """The rollout stage from the sample rate (``thresholds.stage_for_rate``): the lowest stage
    whose rate is at or above it. A corridor with decisions but no sample-rate gauge is judged
    by the strictest stage: a missing gauge must never silence the pages."""
    rate = "corridor:partial_trust_flag_sample_rate:max"
    stages = sorted(thresholds.STAGES.items())
    parts = [f"({rate} <= {s.sample_rate:g}) * 0 + {n}" for n, s in stages[:-1]]
    top = stages[-1][0]
    parts.append(f"{rate} * 0 + {top}")
    parts.append(f"corridor:partial_trust_sampled:increase5m * 0 + {top}")
    yield "corridor:partial_trust_rollout_stage:from_sample_rate", "\nor ".join(parts)


def _agreement() -> Iterator[Rule]:
    """Agreement per corridor and mode (shadow / canary) over ``thresholds.AGREEMENT_WINDOW``:
    candidates that agree with the baseline / candidates with a verdict (``unknown``, no
    candidate parsed, never dilutes the rate), and both counts for the dashboard and the
    alert's sample guard."""
    w = thresholds.AGREEMENT_WINDOW
    by = "corridor, mode"
    agreed = f"corridor_mode:partial_trust_agreements:increase{w}"
    checked = f"corridor_mode:partial_trust_agreement_checked:increase{w}"
    yield agreed, summed("increase", AGREEMENT, 'agreement="true"', w, by=by)
    yield checked, summed("increase", AGREEMENT, 'agreement=~"true|false"', w, by=by)
    yield f"corridor_mode:partial_trust_agreement_rate:ratio_rate{w}", ratio(agreed, checked)
