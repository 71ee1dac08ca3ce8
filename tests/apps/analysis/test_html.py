"""The ``--html`` report: self-contained, and rendered by a real headless Chromium."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from partial_trust.apps.analysis import selftest
from partial_trust.apps.analysis.cli import analyze_main, gate_main
from partial_trust.apps.analysis.figures import Figures, from_tally
from partial_trust.apps.analysis.gate import evaluate
from partial_trust.apps.analysis.html import render
from partial_trust.apps.analysis.tally import Tally
from tests.support.procs import require_binary


def rows() -> list[selftest.Row]:
    """Three hours of mixed outcomes with a spread of latencies, plus every other reason."""
    out: list[selftest.Row] = []
    for i in range(300):
        ts = f"2026-11-23T{9 + i // 100:02d}:{i % 60:02d}:00.000Z"
        status, reason = ("error", "llm_timeout") if i % 17 == 0 else ("accepted_llm", "accepted")
        out.append((ts, status, reason, 80.0 + (i * 37) % 700, True, i % 5 != 0))
    return out + list(selftest.ROWS)


def write_log(path: Path) -> Path:
    path.write_text("".join(selftest.canonical(r) + "\n" for r in rows()), encoding="utf-8")
    return path


def test_page_is_self_contained(tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    assert (
        analyze_main(["--risk-log", str(write_log(tmp_path / "a.jsonl")), "--html", str(out)]) == 0
    )
    page = out.read_text()
    assert "<script" not in page.lower()
    urls = set(re.findall(r"https?://[^\s\"'<>]+", page))
    assert urls <= {"http://www.w3.org/2000/svg"}  # the SVG namespace, never fetched
    assert page.count("<svg") == 3 and "Stage 3:" in page
    gate_html = tmp_path / "g.html"
    args = ["--stage", "2", "--risk-log", str(tmp_path / "a.jsonl"), "--html", str(gate_html)]
    assert gate_main(args) in (0, 1, 2)
    assert "Stage 2:" in gate_html.read_text()


def test_empty_figures_render_placeholders() -> None:
    fig: Figures = from_tally(Tally())
    page = render(fig, [(1, *evaluate(fig, 1)[:2])])
    assert "no sampled records" in page and "no LLM latencies" in page
    assert "CANNOT-EVALUATE" in page and "Cannot evaluate: 0 valid risk record(s)" in page


def test_report_renders_its_charts_in_headless_chromium(tmp_path: Path) -> None:
    chromium = require_binary("chromium")
    try:
        from playwright import sync_api
    except ImportError:  # a dev dependency; CI must have it, never a silent skip there
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("playwright is not installed (pip install playwright)")
        pytest.skip("playwright is not installed")
    out = tmp_path / "report.html"
    assert (
        analyze_main(["--risk-log", str(write_log(tmp_path / "a.jsonl")), "--html", str(out)]) == 0
    )
    errors: list[str] = []
    requests: list[str] = []
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1000, "height": 800})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(out.as_uri())
            charts = page.locator("svg")
            assert charts.count() == 3
            for i in range(3):
                box = charts.nth(i).bounding_box()
                assert box is not None and box["width"] > 800 and box["height"] > 100
            assert page.locator("svg rect.bar").count() > 20  # bars drawn in every chart
            assert page.locator(".verdict").count() == 3
            shot = tmp_path / "report.png"
            page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 20_000
        finally:
            browser.close()
    assert errors == []
    assert requests == [out.as_uri()]  # nothing fetched beyond the file itself
