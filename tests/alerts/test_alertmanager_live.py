"""alerts/alertmanager.yml in a real Alertmanager: routing and inhibition, end to end.

Alerts are posted straight to Alertmanager's API (no Prometheus here, see test_paging.py for
the whole chain); two local webhook receivers stand in for the pager and the chat.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.alerts.monitoring import (
    WebhookReceiver,
    alertmanager_test_config,
    run_alertmanager,
)

pytestmark = pytest.mark.integration


def _alert(name: str, severity: str, corridor: str) -> dict[str, object]:
    now = datetime.now(UTC)
    return {
        "labels": {"alertname": name, "severity": severity, "corridor": corridor},
        "annotations": {"summary": f"{name} in {corridor}"},
        "startsAt": now.isoformat(),
        "endsAt": (now + timedelta(minutes=5)).isoformat(),
    }


def _names(receiver: WebhookReceiver) -> set[tuple[str, str]]:
    return {(a["labels"]["alertname"], a["labels"]["corridor"]) for a in receiver.alerts()}


@contextmanager
def _paging(tmp_path: Path) -> Iterator[tuple[WebhookReceiver, WebhookReceiver, str]]:
    """A real Alertmanager on the shipped config whose error-rate page for
    ``add_shopping_item`` has already reached the pager: (pager, chat, alerts API URL)."""
    pager, chat = WebhookReceiver("pager"), WebhookReceiver("chat")
    with pager.running(), chat.running():
        config = alertmanager_test_config(pager.url, chat.url)
        with run_alertmanager(tmp_path, config) as am:
            api = f"{am.url}/api/v2/alerts"
            page = _alert("PartialTrustErrorRateHigh", "critical", "add_shopping_item")
            httpx.post(api, json=[page], timeout=5).raise_for_status()
            assert pager.wait_for(lambda r: r.alerts(), timeout_s=15), "no page arrived"
            time.sleep(0.5)
            yield pager, chat, api


def test_critical_pages_warnings_chat_and_are_inhibited_by_the_page(tmp_path: Path) -> None:
    # the critical alert first, so the inhibition is in place when the warnings come
    with _paging(tmp_path) as (pager, chat, api):
        warnings = [
            _alert("PartialTrustIntentMismatchHigh", "warning", "add_shopping_item"),
            _alert("PartialTrustIntentMismatchHigh", "warning", "other_corridor"),
        ]
        httpx.post(api, json=warnings, timeout=5).raise_for_status()
        assert chat.wait_for(lambda r: r.alerts(), timeout_s=15), "no chat message arrived"
        time.sleep(3)  # several group intervals: anything inhibited would have shown up

        assert _names(pager) == {("PartialTrustErrorRateHigh", "add_shopping_item")}
        # same corridor: inhibited while the page fires; another corridor: delivered
        assert _names(chat) == {("PartialTrustIntentMismatchHigh", "other_corridor")}
        # grouped by corridor + alertname: one group per notification
        for received in chat.received + pager.received:
            assert set(received.body["groupLabels"]) == {"corridor", "alertname"}


def test_rollback_storm_pages_next_to_the_error_rate_page(tmp_path: Path) -> None:
    """The storm is critical: it reaches the pager while the error-rate page fires for the
    same corridor (the inhibition only silences warnings), never the chat."""
    with _paging(tmp_path) as (pager, chat, api):
        storm = _alert("PartialTrustRollbackStorm", "critical", "add_shopping_item")
        httpx.post(api, json=[storm], timeout=5).raise_for_status()
        arrived = pager.wait_for(
            lambda r: any(
                a["labels"]["alertname"] == "PartialTrustRollbackStorm" for a in r.alerts()
            ),
            timeout_s=15,
        )
        assert arrived, f"the storm did not page; pager got {_names(pager)}"
        time.sleep(2)
        assert _names(pager) == {
            ("PartialTrustErrorRateHigh", "add_shopping_item"),
            ("PartialTrustRollbackStorm", "add_shopping_item"),
        }
        assert not chat.alerts()
