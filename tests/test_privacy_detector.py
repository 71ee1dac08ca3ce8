"""Privacy: the leak detector the privacy property relies on finds what it must.

``tests/test_privacy_outcomes.py`` passes when ``find_leaks`` finds nothing, which a detector
that never looks would also do: a value planted in each sink must be found there, and a window
without a marker character must never be looked for (it could be the sinks' own ASCII).
"""

from __future__ import annotations

import httpx

from tests.support.leaks import Observed, Secrets, find_leaks, windows


def test_the_leak_detector_finds_a_planted_leak() -> None:
    """The detector itself: a value planted in each sink is found there."""
    s = Secrets("жcmd1", "жusr1", ("щит1",), ("юl1x", "юl2x"), "эf1x", "ёwords")
    planted = Observed(
        response=httpx.Response(200),
        records=[{"note": "x юl2x y"}],
        metric_labels=["ЖUSR1"],
        spans=["attr=щит1"],
        logs=["text: add щит1 and"],
        decisions={},
    )
    sinks = {leak[0] for leak in find_leaks(s, planted)}
    assert sinks == {"risk log", "metric label", "span", "log record"}
    assert windows("abcd") == set() and windows("жabc") == {"жabc"}
