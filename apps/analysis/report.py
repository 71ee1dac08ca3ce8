"""Human-readable output: the analyzer's table, the gate's checklist, a terminal progress bar.

Plain text, fixed columns, no colour: it is read in incident channels and pasted into tickets.
The progress bar goes to stderr and only when stderr is a terminal, so pipes, CI logs and
``--output-json -`` stay clean.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from partial_trust.apps.analysis.figures import Figures
from partial_trust.apps.analysis.gate import Criterion, Stability, Verdict

DEFINITIONS = """\
definitions (over the records in the window; a zero denominator gives null, never 0):
  sampled                  records with status accepted_llm, fallback_deterministic or error
  error_rate               error / sampled
  acceptance_rate          accepted_llm / sampled
  agreement_rate           records with agreement true / records with agreement not null
                           (the candidate's decision equals the baseline's), also by mode
  intent_mismatch_rate     records with intent_match false / records with intent_match not null
  entity_key_mismatch_rate records with entity_key_match false / ... not null
  latency_p95              95th percentile of latency_ms over sampled records that have one, ms;
                           linear interpolation between closest ranks: h = (n-1)*0.95,
                           p = x[floor h] + (h - floor h) * (x[floor h + 1] - x[floor h])"""


def _fmt(value: float | None, digits: int = 4) -> str:
    return "null" if value is None else f"{value:.{digits}f}"


def analysis_table(fig: Figures) -> str:
    """The analyzer's default output."""
    info = fig.input
    lines = [
        f"partial-trust risk log: {len(info.get('files', []))} file(s), "
        f"{info.get('lines', 0):,} lines, {fig.records:,} records",
    ]
    odd = [f"{info.get(k, 0):,} {k.replace('_', ' ')}" for k in _ODD if info.get(k, 0)]
    if odd:
        share = info.get("foreign_share")
        note = f" ({share:.2%} of non-blank lines not valid)" if share else ""
        lines.append("  not counted: " + ", ".join(odd) + note)
    legacy = info.get("legacy_records", 0)
    if legacy:
        lines.append(
            f"  of which {legacy:,} legacy records (no schema: the original application's "
            "format), counted like the others"
        )
    if fig.hours:
        first, last = fig.hours[0].hour, fig.hours[-1].hour
        lines.append(f"  sampled records span {first}:00 .. {last}:59 UTC")
    lines += ["", f"{'figure':<26}{'value':>12}   numerator / denominator"]
    lines.append(f"{'records':<26}{fig.records:>12,}")
    lines.append(f"{'sampled':<26}{fig.sampled:>12,}")
    for name, rate in fig.rates().items():
        ratio = f"{rate.numerator:,} / {rate.denominator:,}"
        lines.append(f"{name:<26}{_fmt(rate.value):>12}   {ratio}")
    p95 = "null" if fig.latency_p95 is None else f"{fig.latency_p95:.2f} ms"
    lines.append(f"{'latency_p95':<26}{p95:>12}   over {fig.latency_count:,} latencies")
    lines += ["", f"{'by mode':<14}{'records':>10}{'acceptance_rate':>22}{'agreement_rate':>22}"]
    for mode, m in fig.by_mode().items():
        acc, agr = m["acceptance_rate"], m["agreement_rate"]
        lines.append(f"{mode:<14}{m['records']:>10,}{_part(acc):>22}{_part(agr):>22}")
    lines += ["", f"{'status':<26}{'count':>12}"]
    lines += [f"{k:<26}{v:>12,}" for k, v in fig.status_counts.items()]
    lines += ["", f"{'reason_code':<26}{'count':>12}"]
    lines += [f"{k:<26}{v:>12,}" for k, v in fig.reason_counts.items()]
    return "\n".join(lines)


def _part(r: dict[str, Any]) -> str:
    return f"{_fmt(r['value'])} ({r['numerator']:,}/{r['denominator']:,})"


_ODD = ("foreign_lines", "torn_lines", "blank_lines", "outside_window")


def gate_table(
    stage: int | str,
    verdict: Verdict,
    criteria: list[Criterion],
    stab: Stability,
    manual: tuple[str, ...],
) -> str:
    """The gate's checklist: every criterion with its value and result, then the verdict."""
    lines = [
        f"stage {stage} gate  (go: pass = met; rollback: fail = line crossed)"
        + (" over the records with mode shadow" if stage == "shadow" else ""),
        "",
        f"{'kind':<9}{'criterion':<48}{'value':>12}  result",
    ]
    for c in criteria:
        if c.bound.figure == "stable_acceptance":
            value = "null" if c.value is None else ("yes" if c.value else "no")
        elif c.bound.figure in ("sampled", "agreement_records"):
            value = "null" if c.value is None else f"{c.value:,.0f}"
        else:
            value = _fmt(c.value, 2 if c.bound.figure == "latency_p95" else 4)
        note = f"  ({c.detail})" if c.detail else ""
        kind = "go" if c.kind == "go" else "rollback"
        lines.append(f"{kind:<9}{c.text:<48}{value:>12}  {c.result.value}{note}")
    for item in manual:
        lines.append(f"{'manual':<9}{item:<48}{'':>12}  not checked here")
    if stab.windows:
        lines += ["", "acceptance_rate by window (first hour, sampled, rate):"]
        lines += [f"  {w[0]}  {w[1]:>9,}  {w[2] / w[1]:.4f}" for w in stab.windows]
    lines += ["", f"verdict: {verdict.value} (exit {verdict.exit_code})"]
    return "\n".join(lines)


class Progress:
    """A one-line byte progress bar on a terminal's stderr; silent anywhere else."""

    def __init__(self, stream: TextIO | None = None, *, enabled: bool | None = None) -> None:
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self._start = time.monotonic()
        self._last = 0.0

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if not self.enabled or (now - self._last < 0.2 and done < total) or total <= 0:
            return
        self._last = now
        frac = done / total
        rate = done / max(now - self._start, 1e-9) / 1e6
        bar = "#" * int(frac * 30)
        self.stream.write(f"\r[{bar:<30}] {frac:6.1%} {done / 1e6:,.0f} MB {rate:,.0f} MB/s")
        if done >= total:
            self.stream.write("\n")
        self.stream.flush()
