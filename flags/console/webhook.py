"""Auto-rollback: Alertmanager's webhook (JSON version 4) turns the corridor off.

An alert triggers a rollback when it is ``firing``, every label in ``AutoRollback.matchers``
matches (by default ``alertname="PartialTrustErrorRateHigh"`` and ``severity="critical"``, the
critical alert of ``alerts/partial-trust.rules.yml``) and its ``corridor`` label is the
console's corridor. The rollback is ``flags.flagfile.kill`` plus one audit line with source
``auto-rollback``, actor ``alertmanager`` and the alert's fingerprint and ``startsAt``.

Ignored (answered 200, counted in ``partial_trust_console_webhook_alerts_total{result}``):
resolved notifications (the console never turns a corridor back on), alerts that do not match,
other corridors, and repeats: Alertmanager re-sends a firing alert every ``repeat_interval``
and on every group change; the same (fingerprint, startsAt) is handled once, so an operator
who resumed on purpose is not overruled by a re-send. A new firing of the same alert (a new
``startsAt``) rolls back again.

Rollback storm: ``storm_threshold`` auto-rollbacks (default 3) of one corridor within
``storm_window`` (10 min) set ``partial_trust_console_rollback_storm{corridor}`` to 1: someone
keeps resuming into a broken corridor. While it is 1 the console refuses resume and advance
unless the operator acknowledges the storm, so the corridor stays off instead of flapping;
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

from flags import flagfile
from flags.console.audit import AuditLog, entry

CRITICAL_ALERT = "PartialTrustErrorRateHigh"
DEFAULT_MATCHERS: Mapping[str, str] = {"alertname": CRITICAL_ALERT, "severity": "critical"}


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
    """Configuration; ``enabled=False`` turns the webhook into a no-op (still authenticated)."""

    corridor: str = "add_shopping_item"
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
        for result in ("rolled_back", "repeat", "resolved", "not_matching", "other_corridor"):
            self.counter.labels(result)
        self.counter.labels("disabled")

    def count(self, result: str) -> None:
        self.counter.labels(result).inc()


class RollbackCollector(Collector):
    """Auto-rollback total and the storm gauge, read from the audit log at scrape time."""

    def __init__(self, audit: AuditLog, config: AutoRollback) -> None:
        self.audit = audit
        self.config = config

    def collect(self) -> Iterable[Metric]:
        corridor = self.config.corridor
        total = CounterMetricFamily(
            "partial_trust_console_auto_rollbacks",
            "Corridor kills made by the Alertmanager webhook (from the audit log)",
            labels=["corridor"],
        )
        total.add_metric([corridor], len(self.audit.auto_rollbacks(corridor)))
        storm = GaugeMetricFamily(
            "partial_trust_console_rollback_storm",
            f"1 while >= {self.config.storm_threshold} auto-rollbacks happened within "
            f"{int(self.config.storm_window.total_seconds())} s",
            labels=["corridor"],
        )
        storm.add_metric([corridor], float(in_storm(self.audit, self.config)))
        yield total
        yield storm


def in_storm(audit: AuditLog, config: AutoRollback) -> bool:
    recent = audit.recent_auto_rollbacks(config.storm_window, config.corridor)
    return recent >= config.storm_threshold


def _matches(alert: Alert, config: AutoRollback) -> bool:
    return all(alert.labels.get(k) == v for k, v in config.matchers.items())


def handle(
    notification: Notification, *, flags_file: Path, audit: AuditLog, config: AutoRollback
) -> list[dict[str, Any]]:
    """Act on every alert; blocking (file I/O, locks): call it from a worker thread.

    Returns one ``{"fingerprint", "result"}`` per alert. A failed kill raises
    ``FlagFileError`` (the caller answers 500 so that Alertmanager retries).
    """
    results = []
    for alert in notification.alerts:
        fingerprint = alert.key()
        if not config.enabled:
            result = "disabled"
        elif alert.status == "resolved":
            result = "resolved"
        elif not _matches(alert, config):
            result = "not_matching"
        elif alert.labels.get("corridor") != config.corridor:
            result = "other_corridor"
        else:
            result = _roll_back(alert, fingerprint, flags_file, audit, config)
        results.append({"fingerprint": fingerprint, "result": result})
    return results


def _roll_back(
    alert: Alert, fingerprint: str, flags_file: Path, audit: AuditLog, config: AutoRollback
) -> str:
    alertname = alert.labels.get("alertname", "")
    with audit.locked() as fd:  # "handled already?" and "handle it" as one step
        if audit.handled(fingerprint, alert.starts_at):
            return "repeat"
        reason = f"auto-rollback: {alertname} firing for corridor {config.corridor}"
        change = flagfile.kill(flags_file, reason=f"{reason} (fingerprint {fingerprint})")
        line = entry(
            change,
            source="auto-rollback",
            actor="alertmanager",
            reason=reason,
            fingerprint=fingerprint,
            starts_at=alert.starts_at,
            alertname=alertname,
            corridor=config.corridor,
            summary=alert.annotations.get("summary"),
            file=str(flags_file),
        )
        audit.write(fd, line)
    return "rolled_back"
