"""The two PromQL shapes every recording rule is built from, each written once.

A per-corridor rate or increase and a guarded ratio recur for the decisions, the LLM candidates
and the latency histogram, across several windows; spelled out by hand they drift apart (a
missing ``> 0`` guard, a ``sum`` without ``by (corridor)``), so the rules call these instead.
"""

from __future__ import annotations


def summed(
    fn: str, metric: str, selector: str, window: str, *, offset: str = "", by: str = "corridor"
) -> str:
    """``sum by (corridor) (fn(metric{selector}[window] offset ...))``.

    Summed across instances and workers: a corridor's figure must not depend on how many
    processes served it. ``fn`` is ``rate`` or ``increase``; an empty selector reads every
    series of the metric.
    """
    sel = f"{{{selector}}}" if selector else ""
    shift = f" offset {offset}" if offset else ""
    return f"sum by ({by}) ({fn}({metric}{sel}[{window}]{shift}))"


def ratio(numerator: str, denominator: str) -> str:
    """``numerator / (denominator > 0)``: no traffic gives no series, not NaN or +Inf.

    An empty window then reads as "no data" to the alerts (which also guard on a minimum
    sample count) instead of as a 100% error or mismatch rate.
    """
    return f"{numerator}\n/ ({denominator} > 0)"
