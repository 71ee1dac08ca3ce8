"""``replay --html FILE``: the replay's verdict as one self-contained page, like ``analyze``'s.

Same rules as ``html.py``: inline SVG and CSS only, no script, nothing fetched, so the page
can be attached to a triage item and opened anywhere. It shows the verdict and every line
crossed, each rate as a bar against its line, where the candidates came from (an injected
disagreement is labelled as such), the counts, and the disagreeing and nondeterministic
command ids (corpus ids: the corpus is test data, never user traffic).
"""

from __future__ import annotations

import json
from html import escape

from partial_trust.apps.analysis.replay_report import ReplayReport, source_text

W = 900
_GREEN, _RED, _GREY = "#2e7d32", "#c62828", "#616161"


def _bar(y: float, label: str, rate: float | None, line: float | None, detail: str) -> str:
    """One rate as a bar on a 0..scale axis with its line (if any) as a black tick."""
    left, plot = 190, W - 190 - 160
    scale = max(0.05, (line or 0) * 2, rate or 0)
    parts = [
        f'<text x="10" y="{y + 14:.0f}" font-size="12">{escape(label)}</text>',
        f'<rect x="{left}" y="{y}" width="{plot}" height="18" fill="#eee"/>',
    ]
    if rate is not None:
        crossed = line is not None and rate > line + 1e-12
        color = _RED if crossed else _GREEN
        parts.append(
            f'<rect x="{left}" y="{y}" width="{plot * rate / scale:.1f}" height="18" '
            f'fill="{color}"><title>{rate:.2%}</title></rect>'
        )
    if line is not None:
        x = left + plot * line / scale
        parts.append(f'<line x1="{x:.1f}" y1="{y - 4}" x2="{x:.1f}" y2="{y + 22}" stroke="#000"/>')
        parts.append(
            f'<text x="{x:.1f}" y="{y - 6}" font-size="9" text-anchor="middle">'
            f"line {line:.2%}</text>"
        )
    value = "n/a" if rate is None else f"{rate:.2%}"
    parts.append(
        f'<text x="{left + plot + 8}" y="{y + 14:.0f}" font-size="12">'
        f"{escape(value)} {escape(detail)}</text>"
    )
    return "".join(parts)


def rates_chart(report: ReplayReport) -> str:
    n = report.corridor_commands
    rows = (
        ("disagreement_rate", report.disagreement_rate, report.max_disagreement,
         f"({len(report.disagreements)}/{n})"),
        ("error_rate", report.error_rate, report.max_error_rate, f"({report.errors}/{n})"),
        ("acceptance_rate", report.acceptance_rate, None, f"({report.accepted}/{n})"),
    )  # fmt: skip
    body = "".join(_bar(20 + 44 * i, *row) for i, row in enumerate(rows))
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{20 + 44 * len(rows)}" '
        f'role="img" aria-label="replay rates against their lines">{body}</svg>'
    )


def _table(rows: dict[str, int]) -> str:
    return "".join(f"<tr><td>{escape(k)}</td><td>{v:,}</td></tr>" for k, v in rows.items())


def render(report: ReplayReport, title: str = "Partial-trust replay") -> str:
    """The whole page as one string."""
    color = _GREEN if report.passed else (_GREY if report.nothing_judged else _RED)
    verdict = "PASS" if report.passed else "FAIL"
    failures = "".join(f'<li class="fail">{escape(f)}</li>' for f in report.failures)
    disagree = "".join(
        f"<tr><td>{escape(r.command_id)}</td>"
        f"<td><code>{escape(json.dumps(r.baseline, ensure_ascii=False))}</code></td>"
        f"<td><code>{escape(json.dumps(r.final, ensure_ascii=False))}</code></td></tr>"
        for r in report.disagreements[:50]
    )
    nondet = ", ".join(escape(c) for c in report.nondeterministic[:50]) or "none"
    det = "identical" if report.deterministic else f"{len(report.nondeterministic)} differ"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>
<style>
body {{ font: 14px system-ui, sans-serif; margin: 24px; color: #222; max-width: 960px; }}
table {{ border-collapse: collapse; margin: 8px 0 16px; }}
td, th {{ border: 1px solid #ccc; padding: 3px 8px; text-align: left; vertical-align: top; }}
.fail {{ color: #c62828; font-weight: bold; }}
.verdict {{ color: #fff; padding: 2px 10px; border-radius: 4px; }}
svg {{ display: block; margin: 8px 0 20px; background: #fafafa; }}
code {{ font-size: 11px; }}
</style></head><body>
<h1>{escape(title)}</h1>
<h2>Verdict: <span class="verdict" id="verdict" style="background:{color}">{verdict}</span>
(exit {report.exit_code})</h2>
<ul>{failures}</ul>
<p>Candidates from: {escape(source_text(report.source))}. {report.commands:,} commands,
{report.corridor_commands:,} in the corridor; {len(report.runs)} run(s): {det}.</p>
<h2>Rates against their lines</h2>{rates_chart(report)}
<h2>Counts by status and reason_code</h2>
<table>{_table(report.status_counts)}{_table(report.reason_counts)}</table>
<h2>Disagreeing commands (first 50)</h2>
<table><tr><th>command</th><th>baseline</th><th>final</th></tr>{disagree}</table>
<h2>Nondeterministic commands</h2><p>{nondet}</p>
</body></html>
"""
