"""The agreement panel's colours agree with the gate and the alert at the lines themselves.

The shadow gate and ``PartialTrustAgreementLow`` want the rate strictly above each line
(``thresholds.SHADOW``): exactly 0.80 fails week 1, exactly 0.90 does not leave shadow. The
committed dashboard is read as Grafana reads it (a value takes the colour of the last step
whose value is at or below it).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from partial_trust import thresholds

BOARD = Path(__file__).resolve().parents[2] / "dashboards" / "partial-trust-corridor.json"


def _steps() -> list[dict[str, Any]]:
    doc = json.loads(BOARD.read_text())
    stack = list(doc["panels"])
    while stack:
        panel = stack.pop()
        stack.extend(panel.get("panels", []))
        if panel.get("title") == "Agreement rate":
            steps: list[dict[str, Any]] = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
            return steps
    raise AssertionError("no Agreement rate panel")


def grafana_colour(value: float) -> str:
    colour = ""
    for step in _steps():
        if step["value"] is None or value >= step["value"]:
            colour = step["color"]
    return colour


W1, W2 = thresholds.SHADOW.agreement_week1, thresholds.SHADOW.agreement_week2


@pytest.mark.parametrize(
    ("rate", "colour"),
    [
        (0.0, "red"),
        (W1, "red"),  # the alert fires at or below week 1's line, the gate says NO-GO
        (math.nextafter(W1, 1.0), "orange"),
        ((W1 + W2) / 2, "orange"),
        (W2, "orange"),  # not above the line to leave shadow
        (math.nextafter(W2, 1.0), "green"),
        (1.0, "green"),
    ],
)
def test_the_colour_at_each_line_is_the_gates_side_of_it(rate: float, colour: str) -> None:
    assert grafana_colour(rate) == colour
    passes_week1, leaves_shadow = rate > W1, rate > W2
    assert (colour == "red") is not passes_week1
    assert (colour == "green") is leaves_shadow
