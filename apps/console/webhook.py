"""Auto-rollback: Alertmanager's webhook (JSON version 4) turns the corridor off.

An alert triggers a rollback when it is ``firing``, every label in ``AutoRollback.matchers``
matches (by default ``alertname="PartialTrustErrorRateHigh"`` and ``severity="critical"``, the
critical alert of ``alerts/partial-trust.rules.yml``). Every rule aggregates ``by (corridor)``,
so an alert names the corridor it is about, and the rollback kills exactly THAT corridor:
``partial_trust.flags.flagfile.kill(path, corridor=<label>)`` (its own switch,
``partial_trust.corridors.flag_keys``; the other corridors keep running) plus one audit line
with source ``auto-rollback``, actor ``alertmanager``, the corridor and the alert's
fingerprint and ``startsAt``.

A ``corridor`` label that is missing or not on the code's allowlist
(``partial_trust.corridors.CORRIDOR_ALLOWLIST``) kills nothing: there is no such switch, and
a label must never let a request write an arbitrary key into the flag file. Such an alert is
counted (``unknown_corridor``) and audited once per (fingerprint, startsAt) with source
``webhook`` (``action: "ignored"``, no flag change), because an alert about a corridor the
console cannot turn off means the rules and the code disagree, which an operator must see.

Ignored (answered 200, counted in ``partial_trust_console_webhook_alerts_total{result}``):
resolved notifications (the console never turns a corridor back on), alerts that do not match,
unknown corridors, and repeats: Alertmanager re-sends a firing alert every ``repeat_interval``
and on every group change; the same (fingerprint, startsAt) is handled once, so an operator
who resumed on purpose is not overruled by a re-send. A new firing of the same alert (a new
``startsAt``) rolls back again.

Bounded work, never in the operator's way: only the first ``MAX_ALERTS`` (100) alerts of a
notification are looked at (the rest are counted ``over_limit`` and the answer says how many),
the body is at most 1 MiB (413), and the decision (which alerts are new firings) is made
without the console's change lock. The lock is taken only for the resulting changes: one kill
per corridor named, however many alerts fired for it, each with one audit line that lists every
(fingerprint, startsAt) it handled (at most one per allow-listed corridor). So an operator's
kill never waits behind a webhook for more than a few file writes. Labels and annotations
recorded from the request are escaped (``partial_trust.apps.console.text``) and bounded: a
spoofing character in a label never blocks a kill.

Rollback storm, per corridor: ``storm_threshold`` auto-rollbacks (default 3) of one corridor
within ``storm_window`` (10 min) set ``partial_trust_console_rollback_storm{corridor}`` to 1:
someone keeps resuming into a broken corridor. While it is 1 the console refuses resume of
THAT corridor unless the operator acknowledges the storm, so it stays off instead of
flapping, and a storm in one corridor never holds another back;
alert on the gauge. Both rollback metrics are computed from the audit log at scrape time, so
they agree across worker processes and restarts.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from pydantic import BaseModel, ConfigDict, Field

from partial_trust.apps.console import text
from partial_trust.apps.console.audit import (
    SCHEMA,
    AuditLog,
    entry,
    handled_alerts,
    now_rfc3339,
)
from partial_trust.corridors import CORRIDOR_ALLOWLIST, SHOPPING
from partial_trust.flags import flagfile

CRITICAL_ALERT = "PartialTrustErrorRateHigh"
DEFAULT_MATCHERS: Mapping[str, str] = {"alertname": CRITICAL_ALERT, "severity": "critical"}
#: alerts looked at per notification; the rest are counted as ``over_limit`` and named in the
#: answer (one kill is all a notification can cause, however many alerts it carries)
MAX_ALERTS = 100
#: the largest webhook body read (413 above)
MAX_BODY_BYTES = 1024 * 1024
#: every value of the ``result`` label (a closed set: no label value comes from a request)
RESULTS = (
    "rolled_back", "repeat", "resolved", "not_matching", "unknown_corridor", "disabled",
    "over_limit", "failed",
)  # fmt: skip
#: the audit source of an alert the webhook ignored but recorded (no flag change)
IGNORED_SOURCE = "webhook"


class Alert(BaseModel):
    model_config = ConfigDict(extra="ignore")

    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    starts_at: str = Field(default="", alias="startsAt")
    fingerprint: str = ""

    def key(self) -> str:
        """Alertmanager's fingerprint; a stable hash of the labels if it is absent."""
        if self.fingerprint:
            return self.fingerprint
        text = json.dumps(self.labels, sort_keys=True).encode()
        return "labels-" + hashlib.sha256(text).hexdigest()[:16]


class Notification(BaseModel):
    """Alertmanager webhook payload, version 4 (unused fields are ignored)."""

    model_config = ConfigDict(extra="ignore")

    version: Literal["4"]
    status: Literal["firing", "resolved"]
    alerts: list[Alert]


@dataclass(frozen=True)
class AutoRollback:
    """Configuration; ``enabled=False`` turns the webhook into a no-op (still authenticated).

    ``corridor``: the console's default corridor (what its page shows first); the webhook
    acts on the corridor each alert names, whatever this says."""

    corridor: str = SHOPPING
    enabled: bool = True
    matchers: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_MATCHERS))
    storm_threshold: int = 3
    storm_window: timedelta = timedelta(minutes=10)


class Outcomes:
    """The webhook's in-process counter of alerts by result."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.counter = Counter(
            "partial_trust_console_webhook_alerts",
            "Alerts received on the console's Alertmanager webhook, by what was done",
            ["result"],
            registry=registry,
        )
        for result in RESULTS:
            self.counter.labels(result)

    def count(self, result: str, amount: int = 1) -> None:
        if amount:
            self.counter.labels(result).inc(amount)


class RollbackCollector(Collector):
    """Auto-rollback total and the storm gauge, read from the audit log at scrape time."""

    def __init__(self, audit: AuditLog, config: AutoRollback) -> None:
        self.audit = audit
        self.config = config

    def collect(self) -> Iterable[Metric]:
        total = CounterMetricFamily(
            "partial_trust_console_auto_rollbacks",
            "Corridor kills made by the Alertmanager webhook (from the audit log)",
            labels=["corridor"],
        )
        storm = GaugeMetricFamily(
            "partial_trust_console_rollback_storm",
            f"1 while >= {self.config.storm_threshold} auto-rollbacks happened within "
            f"{int(self.config.storm_window.total_seconds())} s",
            labels=["corridor"],
        )
        for corridor in CORRIDOR_ALLOWLIST:  # closed label values: the code's allowlist
            total.add_metric([corridor], len(self.audit.auto_rollbacks(corridor)))
            storm.add_metric([corridor], float(in_storm(self.audit, self.config, corridor)))
        yield total
        yield storm


def in_storm(audit: AuditLog, config: AutoRollback, corridor: str) -> bool:
    """Whether ``corridor`` had ``storm_threshold`` auto-rollbacks within ``storm_window``."""
    recent = audit.recent_auto_rollbacks(config.storm_window, corridor)
    return recent >= config.storm_threshold


def _matches(alert: Alert, config: AutoRollback) -> bool:
    return all(alert.labels.get(k) == v for k, v in config.matchers.items())


@dataclass
class Decision:
    """What a notification asks, decided without the change lock (reads only)."""

    results: list[dict[str, Any]]
    to_kill: list[tuple[int, Alert]]  # (index in results, alert): allow-listed corridors
    ignored: int
    audit_offset: int
    #: new firings naming no allow-listed corridor: audited once, never a flag change
    unknown: list[tuple[int, Alert]] = field(default_factory=list)


def _pair(alert: Alert) -> tuple[str, str]:
    """The alert's (fingerprint, startsAt) as recorded: escaped and bounded like any free text
    from a request, so that a label cannot spoof the audit display and repeats still match."""
    return (
        text.escape(alert.key(), limit=text.MAX_RECORDED),
        text.escape(alert.starts_at, limit=text.MAX_RECORDED),
    )


def corridor_of(alert: Alert) -> str | None:
    """The alert's ``corridor`` label when it names an allow-listed corridor, else ``None``."""
    name = alert.labels.get("corridor")
    return name if name in CORRIDOR_ALLOWLIST else None


def _ignored_before(records: list[dict[str, Any]]) -> set[tuple[str, str]]:
    """(fingerprint, starts_at) of the unknown-corridor alerts already audited."""
    return {
        (str(r.get("fingerprint")), str(r.get("starts_at")))
        for r in records
        if r.get("source") == IGNORED_SOURCE
    }


def decide(notification: Notification, *, audit: AuditLog, config: AutoRollback) -> Decision:
    """Classify the first ``MAX_ALERTS`` alerts (blocking: reads the audit log once).

    Returns one ``{"fingerprint", "result"}`` per alert acted on (plus ``corridor`` when it
    names an allow-listed one); the new firings to roll back get ``rolled_back``
    provisionally (``apply`` may turn them into ``repeat``).
    """
    records, offset = audit.read_from(0)
    done, seen = handled_alerts(records), _ignored_before(records)
    results: list[dict[str, Any]] = []
    to_kill: list[tuple[int, Alert]] = []
    unknown: list[tuple[int, Alert]] = []
    for alert in notification.alerts[:MAX_ALERTS]:
        pair = _pair(alert)
        corridor = corridor_of(alert)
        if not config.enabled:
            result = "disabled"
        elif alert.status == "resolved":
            result = "resolved"
        elif not _matches(alert, config):
            result = "not_matching"
        elif corridor is None:
            result = "unknown_corridor"
            if pair not in seen:  # audited once; a re-send is counted, not written again
                seen.add(pair)
                unknown.append((len(results), alert))
        elif pair in done:
            result = "repeat"
        else:
            result = "rolled_back"
            done.add(pair)  # the same alert twice in one notification is one rollback
            to_kill.append((len(results), alert))
        item: dict[str, Any] = {"fingerprint": pair[0], "result": result}
        if corridor is not None:
            item["corridor"] = corridor
        results.append(item)
    ignored = max(0, len(notification.alerts) - MAX_ALERTS)
    return Decision(results, to_kill, ignored, offset, unknown)


def _ignored_line(alert: Alert) -> dict[str, Any]:
    """The audit line of an alert naming no allow-listed corridor (no flag was changed)."""
    fingerprint, starts_at = _pair(alert)
    label = alert.labels.get("corridor")
    line: dict[str, Any] = text.escape_all(
        {
            "time": now_rfc3339(),
            "schema": SCHEMA,
            "source": IGNORED_SOURCE,
            "actor": "alertmanager",
            "action": "ignored",
            "reason": "the alert names no corridor on the code's allowlist: nothing to turn off",
            "alertname": text.escape(alert.labels.get("alertname", ""), limit=text.MAX_RECORDED),
            "corridor_label": None if label is None else text.escape(label, limit=64),
            "fingerprint": fingerprint,
            "starts_at": starts_at,
        }
    )
    return line


def apply(decision: Decision, *, flags_file: Path, audit: AuditLog, config: AutoRollback) -> None:
    """One kill per corridor named by the new firings in ``decision``, each with one audit
    line, and one audit line per new unknown-corridor alert (blocking: run it in a worker
    thread, under the console's change lock).

    Under the audit log's ``flock``, only the lines written since ``decide`` are read again:
    another request or worker that handled the same alerts meanwhile turns them into
    ``repeat`` here, so "handled already?" and "handle it" stay one step without holding the
    lock while 100 alerts are looked at. A failed kill raises ``FlagFileError``/``OSError``
    (the caller answers 500 so that Alertmanager retries); the corridors killed before it
    stay killed and audited, so the retry finds them ``repeat``.
    """
    if not decision.to_kill and not decision.unknown:
        return
    with audit.locked() as fd:
        since, _ = audit.read_from(decision.audit_offset)
        done, seen = handled_alerts(since), _ignored_before(since)
        for _, alert in decision.unknown:
            if _pair(alert) not in seen:
                audit.write(fd, _ignored_line(alert))
        by_corridor: dict[str, list[Alert]] = {}
        for index, alert in decision.to_kill:
            if _pair(alert) in done:
                decision.results[index]["result"] = "repeat"
            else:
                by_corridor.setdefault(str(corridor_of(alert)), []).append(alert)
        for corridor, fresh in by_corridor.items():
            _kill(fd, corridor, fresh, flags_file=flags_file, audit=audit)


def _kill(fd: int, corridor: str, fresh: list[Alert], *, flags_file: Path, audit: AuditLog) -> None:
    """Turn ``corridor`` off for ``fresh`` (its new firings) and write its one audit line."""
    first = fresh[0]
    fingerprint, starts_at = _pair(first)
    alertname = text.escape(first.labels.get("alertname", ""), limit=text.MAX_RECORDED)
    reason = f"auto-rollback: {alertname} firing for corridor {corridor}"
    change = flagfile.kill(
        flags_file, reason=f"{reason} (fingerprint {fingerprint})", corridor=corridor
    )
    summary = first.annotations.get("summary")
    line = entry(
        change,
        source="auto-rollback",
        actor="alertmanager",
        reason=reason,
        fingerprint=fingerprint,
        starts_at=starts_at,
        alertname=alertname,
        corridor=corridor,
        summary=text.escape(summary, limit=text.MAX_RECORDED) if summary else None,
        handled=[list(_pair(a)) for a in fresh[1:]] or None,
        file=str(flags_file),
    )
    audit.write(fd, line)


def handle(
    notification: Notification, *, flags_file: Path, audit: AuditLog, config: AutoRollback
) -> list[dict[str, Any]]:
    """``decide`` then ``apply`` in one call (blocking), for callers without a change lock."""
    decision = decide(notification, audit=audit, config=config)
    apply(decision, flags_file=flags_file, audit=audit, config=config)
    return decision.results
