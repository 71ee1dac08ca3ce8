"""One row of the runbook's thresholds table, and the Prometheus alerting rule it becomes.

The row holds the runbook's numbers once; the expression and the annotations are templates that
receive them here, so a threshold changed in the table (``alerts/generate.py``) changes the
PromQL, the summary and the description together and they cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: where ``runbook_url`` points unless ``generate.py --runbook-base-url`` says otherwise: a
#: placeholder on a reserved domain (RFC 2606), never someone else's site. Set it to the URL
#: your team reads ``alerts/playbooks.md`` at (e.g. its page on your forge); every alert's
#: ``runbook_url`` is that base + ``#`` + the alert's heading anchor in playbooks.md.
DEFAULT_RUNBOOK_BASE_URL = "https://partial-trust.example/alerts/playbooks.md"


@dataclass(frozen=True)
class Alert:
    name: str
    severity: str
    threshold: float  # the runbook's number, in the unit of the alert's value
    unit: str  # how the threshold reads in text: "ratio" (as %), "seconds", "count"
    min_samples: int  # the guard: below this many samples in the window, never fire
    for_: str
    expr: str  # ``{threshold}`` and ``{min_samples}`` are filled in from the fields above
    summary: str  # Go templates own the braces here: @T@ / @N@ become threshold / min_samples
    description: str
    anchor: str
    action: str
    #: the table's figure and stage this rule judges (None: every stage), the comparison
    #: (``{op}`` in ``expr``) and extra labels: rules of one name differ by stage or window
    figure: str = ""
    stage: int | None = None
    op: str = ">"
    labels: tuple[tuple[str, str], ...] = ()

    def render_expr(self) -> str:
        return self.expr.format(
            threshold=_num(self.threshold),
            min_samples=self.min_samples,
            stage=self.stage,
            op=self.op,
        )

    def render_text(self, text: str) -> str:
        text = text.replace("@T@", self.threshold_text).replace("@N@", str(self.min_samples))
        return text.replace("@S@", str(self.stage))

    @property
    def threshold_text(self) -> str:
        """The threshold as a person reads it (5%, 500 ms, 1 h), not as PromQL compares it."""
        if self.unit == "ratio":
            return f"{self.threshold * 100:g}%"
        if self.unit == "seconds":
            if self.threshold < 1:
                return f"{self.threshold * 1000:g} ms"
            if self.threshold % 3600 == 0:
                return f"{self.threshold / 3600:g} h"
            return f"{self.threshold:g} s"
        return _num(self.threshold)

    def rule(
        self, for_override: str | None = None, runbook_base_url: str = DEFAULT_RUNBOOK_BASE_URL
    ) -> dict[str, Any]:
        """The alerting rule; ``for_override`` lets integration tests fire within seconds."""
        return {
            "alert": self.name,
            "expr": self.render_expr(),
            "for": for_override or self.for_,
            "labels": {"severity": self.severity, **dict(self.labels)},
            "annotations": {
                "summary": self.render_text(self.summary),
                "description": self.render_text(self.description),
                "action": self.action,
                "runbook_url": f"{runbook_base_url}#{self.anchor}",
            },
        }


def _num(value: float) -> str:
    """``:g`` so 0.05 stays 0.05 and 3600.0 prints as 3600 in PromQL."""
    return f"{value:g}"
