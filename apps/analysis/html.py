"""``--html FILE``: one self-contained page for people with no Grafana at hand.

Inline SVG and CSS only: no script, no font, no request to anywhere, so the file can be
mailed, attached to a ticket or opened from an air-gapped host and still render the same.
Charts: outcomes over time, the LLM latency distribution against the runbook's 300/400/500 ms
lines, each rate against its thresholds, and the gate verdict for every stage.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape

from partial_trust import thresholds
from partial_trust.apps.analysis.figures import Figures
from partial_trust.apps.analysis.gate import Criterion, Verdict, unevaluable

W = 900
COLORS = {"accepted_llm": "#2e7d32", "fallback_deterministic": "#f9a825", "error": "#c62828"}
VERDICT_COLORS = {
    Verdict.GO: "#2e7d32",
    Verdict.NO_GO: "#f9a825",
    Verdict.HOLD: "#f9a825",
    Verdict.ROLLBACK: "#c62828",
    Verdict.CANNOT_EVALUATE: "#616161",
}


def table_lines(figure: str) -> tuple[tuple[float, str], ...]:
    """The table's lines for ``figure`` (``partial_trust.thresholds``), each labelled with the
    stages it is a go or (effective) rollback line of, and "alarm" for a monitoring row."""
    kinds: dict[float, dict[str, list[str]]] = {}
    for n in sorted(thresholds.STAGES):
        for kind, line in (
            ("go", thresholds.go_line(n, figure)),
            ("rollback", thresholds.rollback_line(n, figure)),
        ):
            if line is not None:
                kinds.setdefault(line, {}).setdefault(kind, []).append(str(n))
    row = thresholds.alarm(figure)
    if row is not None and not row.rollback:
        kinds.setdefault(row.limit, {})["alarm"] = []
    return tuple(
        (line, " · ".join(f"{k} S{'/'.join(s)}" if s else k for k, s in by_kind.items()))
        for line, by_kind in sorted(kinds.items())
    )


#: rate -> ((threshold, label), ...): the table's lines, drawn as ticks on the rate's bar.
THRESHOLDS: dict[str, tuple[tuple[float, str], ...]] = {
    name: table_lines(name)
    for name in (
        "error_rate",
        "intent_mismatch_rate",
        "entity_key_mismatch_rate",
        "acceptance_rate",
    )
}
#: the shadow stage's agreement lines (week 1 on track, week 2 to leave shadow)
THRESHOLDS["agreement_rate"] = (
    (thresholds.SHADOW.agreement_week1, "shadow week 1"),
    (thresholds.SHADOW.agreement_week2, "leave shadow"),
)
#: the stages' p95 go lines in ms, drawn on the latency histogram
LATENCY_LINES: tuple[tuple[float, str], ...] = tuple(
    (line, f"stage {n}")
    for n in sorted(thresholds.STAGES, reverse=True)
    if (line := thresholds.go_line(n, "latency_p95")) is not None
)
Gate = tuple[int | str, Verdict, Sequence[Criterion]]


def _svg(height: int, body: str, label: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{height}" '
        f'viewBox="0 0 {W} {height}" role="img" aria-label="{escape(label)}">{body}</svg>'
    )


def _text(x: float, y: float, text: str, anchor: str = "start", size: int = 11) -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}">'
        f"{escape(text)}</text>"
    )


def _vline(x: float, y1: float, y2: float, style: str) -> str:
    return f'<line x1="{x:.1f}" y1="{y1:.1f}" x2="{x:.1f}" y2="{y2:.1f}" {style}/>'


def outcomes_chart(fig: Figures) -> str:
    """Stacked bars per UTC hour: accepted, fallback, error (sampled records)."""
    h, top, left = 240, 20, 50
    hours = fig.hours
    if not hours:
        return _svg(60, _text(10, 30, "no sampled records in the window"), "outcomes over time")
    peak = max(x.sampled for x in hours) or 1
    band = (W - left - 10) / len(hours)
    parts = [_text(left - 6, top + 4, f"{peak:,}", "end"), _text(left - 6, h - 30, "0", "end")]
    for i, x in enumerate(hours):
        y = float(h - 30)
        fallback = x.sampled - x.accepted_llm - x.error
        stack = (("accepted_llm", x.accepted_llm), ("fallback_deterministic", fallback))
        for status, n in (*stack, ("error", x.error)):
            height = (h - 30 - top) * n / peak
            y -= height
            parts.append(
                f'<rect class="bar" x="{left + i * band:.1f}" y="{y:.1f}" '
                f'width="{max(band - 1, 0.5):.1f}" height="{height:.1f}" fill="{COLORS[status]}">'
                f"<title>{escape(x.hour)} {status}: {n:,}</title></rect>"
            )
    parts.append(_text(left, h - 12, f"{hours[0].hour}:00 UTC"))
    parts.append(_text(W - 10, h - 12, f"{hours[-1].hour}:59 UTC", "end"))
    legend = "".join(f'<tspan fill="{c}">■</tspan> {s}   ' for s, c in COLORS.items())
    parts.append(
        f'<text x="{W / 2}" y="{h - 12}" font-size="11" text-anchor="middle">{legend}</text>'
    )
    return _svg(h, "".join(parts), "outcomes over time")


def latency_chart(fig: Figures) -> str:
    """Histogram of LLM latency (25 ms bins to 1 s, then overflow), 300/400/500 ms lines."""
    h, top, left, max_ms = 240, 20, 50, 1000.0
    hist = fig.latency_histogram
    if not hist or not fig.latency_count:
        return _svg(60, _text(10, 30, "no LLM latencies in the window"), "latency distribution")
    peak = max(n for _, n in hist) or 1
    plot = W - left - 60

    def x_of(ms: float) -> float:
        return left + plot * min(ms, max_ms) / max_ms

    parts, lower = [], 0.0
    for edge, n in hist:
        hi = max_ms + 50 if edge is None else edge
        x0, x1 = x_of(lower) if lower < max_ms else left + plot, left + plot * hi / max_ms
        height = (h - 30 - top) * n / peak
        label = f"{lower:g}–{'∞' if edge is None else f'{edge:g}'} ms: {n:,}"
        width = max(x1 - x0 - 1, 1)
        parts.append(
            f'<rect class="bar" x="{x0:.1f}" y="{h - 30 - height:.1f}" width="{width:.1f}" '
            f'height="{height:.1f}" fill="#1565c0"><title>{escape(label)}</title></rect>'
        )
        lower = hi
    for k, (ms, stage) in enumerate(LATENCY_LINES):
        x = x_of(ms)
        parts.append(_vline(x, top, h - 30, 'stroke="#555" stroke-dasharray="4 3"'))
        parts.append(_text(x + 3, top + 10 + 13 * k, f"{ms:g} ms ({stage})"))
    if fig.latency_p95 is not None:
        x = x_of(fig.latency_p95)
        parts.append(_vline(x, top, h - 30, 'stroke="#c62828" stroke-width="2"'))
        parts.append(_text(x + 3, top + 52, f"p95 {fig.latency_p95:.1f} ms"))
    parts += [_text(left, h - 12, "0 ms"), _text(left + plot, h - 12, "1000+ ms", "middle")]
    parts.append(_text(left - 6, top + 4, f"{peak:,}", "end"))
    return _svg(h, "".join(parts), "latency distribution")


def rates_chart(fig: Figures) -> str:
    """One bar per rate on its own scale, with the runbook's thresholds as ticks."""
    row, left = 58, 190
    parts = []
    for i, (name, rate) in enumerate(fig.rates().items()):
        y = 24 + i * row
        lines = THRESHOLDS[name]
        scale = 1.0 if not lines else max(1.5 * lines[-1][0], (rate.value or 0) * 1.1)
        plot = W - left - 20
        parts.append(_text(left - 8, y + 14, name, "end", 12))
        parts.append(f'<rect x="{left}" y="{y}" width="{plot}" height="20" fill="#eee"/>')
        if rate.value is not None:
            width = plot * min(rate.value / scale, 1.0)
            parts.append(
                f'<rect class="bar" x="{left}" y="{y}" width="{max(width, 1):.1f}" height="20" '
                f'fill="#1565c0"><title>{rate.numerator} / {rate.denominator}</title></rect>'
            )
        value = "null (no data)" if rate.value is None else f"{rate.value:.4f}"
        parts.append(
            _text(left + 4, y + 34, f"{value}  ({rate.numerator:,} / {rate.denominator:,})")
        )
        for k, (t, label) in enumerate(lines):
            x = left + plot * t / scale
            parts.append(_vline(x, y - 3 - 10 * (k % 2), y + 23, 'stroke="#000"'))
            parts.append(_text(x, y - 5 - 10 * (k % 2), f"{t:g} {label}", "middle", 9))
    return _svg(24 + len(fig.rates()) * row, "".join(parts), "rates against thresholds")


def modes_table(fig: Figures) -> str:
    """Per mode: records, sampled, acceptance and agreement rates with their parts."""

    def cell(r: dict[str, object]) -> str:
        v = r["value"]
        value = "null" if v is None else f"{v:.4f}"
        return f"<td>{value} ({r['numerator']:,} / {r['denominator']:,})</td>"

    rows = "".join(
        f"<tr><td>{escape(mode)}</td><td>{m['records']:,}</td><td>{m['sampled']:,}</td>"
        f"{cell(m['acceptance_rate'])}{cell(m['agreement_rate'])}{cell(m['error_rate'])}</tr>"
        for mode, m in fig.by_mode().items()
    )
    return (
        '<table class="modes"><tr><th>mode</th><th>records</th><th>sampled</th>'
        "<th>acceptance_rate</th><th>agreement_rate</th><th>error_rate</th></tr>"
        f"{rows}</table>"
    )


def _gate_html(gates: Sequence[Gate], fig: Figures, notes: Mapping[int | str, str]) -> str:
    out = []
    why = unevaluable(fig)
    if why is not None:
        out.append(f'<p class="fail">Cannot evaluate: {escape(why)}</p>')
    for stage, verdict, criteria in gates:
        rows = "".join(
            f"<tr><td>{c.kind}</td><td>{escape(c.text)}</td>"
            f"<td>{'null' if c.value is None else f'{c.value:.4g}'}</td>"
            f'<td class="{c.result.value}">{c.result.value}</td></tr>'
            for c in criteria
        )
        color = VERDICT_COLORS[verdict]
        note = f'<p class="duration">{escape(notes[stage])}</p>' if stage in notes else ""
        out.append(
            f'<h3>Stage {stage}: <span class="verdict" style="background:{color}">'
            f"{verdict.value}</span></h3>{note}<table><tr><th>kind</th><th>criterion</th>"
            f"<th>value</th><th>result</th></tr>{rows}</table>"
        )
    return "".join(out)


def _agreement(fig: Figures) -> str:
    r = fig.agreement_rate
    value = "null" if r.value is None else f"{r.value:.4f}"
    return f"agreement_rate {value} ({r.numerator:,} / {r.denominator:,})"


def render(
    fig: Figures,
    gates: Sequence[Gate],
    title: str = "Partial-trust risk report",
    notes: Mapping[int | str, str] | None = None,
) -> str:
    """The whole page as one string; ``notes``: a line under a stage's verdict (its clock)."""
    counts = "".join(
        f"<tr><td>{escape(k)}</td><td>{v:,}</td></tr>"
        for k, v in (*fig.status_counts.items(), *fig.reason_counts.items())
    )
    files = ", ".join(escape(str(f)) for f in fig.input.get("files", []))
    p95 = "null" if fig.latency_p95 is None else f"{fig.latency_p95:.2f} ms"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>
<style>
body {{ font: 14px system-ui, sans-serif; margin: 24px; color: #222; max-width: 960px; }}
table {{ border-collapse: collapse; margin: 8px 0 16px; }}
td, th {{ border: 1px solid #ccc; padding: 3px 8px; text-align: left; }}
.pass {{ color: #2e7d32; }} .fail {{ color: #c62828; font-weight: bold; }}
.insufficient-data {{ color: #8d6e00; }}
.verdict {{ color: #fff; padding: 2px 10px; border-radius: 4px; }}
svg {{ display: block; margin: 8px 0 20px; background: #fafafa; }}
</style></head><body>
<h1>{escape(title)}</h1>
<p>{fig.records:,} records, {fig.sampled:,} sampled, latency_p95 {p95}, {_agreement(fig)}.
Source: {files}</p>
<h2>Gate verdicts</h2>{_gate_html(gates, fig, notes or {})}
<h2>Outcomes over time (sampled records per UTC hour)</h2>{outcomes_chart(fig)}
<h2>LLM latency distribution</h2>{latency_chart(fig)}
<h2>Rates against thresholds</h2>{rates_chart(fig)}
<h2>By mode (shadow: nothing served; canary: accepted candidates served)</h2>{modes_table(fig)}
<h2>Counts by status and reason_code</h2><table>{counts}</table>
</body></html>
"""
