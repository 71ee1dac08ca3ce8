"""A reviewer in real headless Chromium judges five kept disagreements with the keyboard;
the analyzer then reports the override rate those verdicts give, the advisory gate holds (too
few reviews), and ``review export`` writes a corpus that ``replay`` runs.

    reference app (uvicorn, llm-sim disagreeing on every call, shadow, review flag on)
      -> encrypted review store <- console (python -m partial_trust.apps.console) <- Chromium
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from partial_trust.apps.analysis.replay_corpus import load_corpus
from partial_trust.flags import flagfile
from partial_trust.flags.flagmodel import REVIEW_ENABLED
from tests.apps.console.helpers import SHIPPED, console_process
from tests.apps.console.test_browser import CHROMIUM_ARGS, chromium
from tests.integration.stack import llm_sim, reference_app
from tests.review_helpers import KEY, canary_command, disk_bytes, leaks
from tests.support.procs import PYTHON, REPO

pytestmark = pytest.mark.integration
REVIEWER = "reviewer-token-0123456789abcdef"
#: (keys pressed, verdict): 2 LLM right, 1 baseline right (too strict), 3 both wrong (too
#: permissive), 4 unclear: 3 overrides of 5, one per category
WALK = [
    (["2"], "llm_right"),
    (["1", "s"], "baseline_right"),
    (["2"], "llm_right"),
    (["3", "p"], "both_wrong"),
    (["4"], "unclear"),
]


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PYTHON, "-m", "partial_trust.apps.cli", *args],
        capture_output=True, text=True, timeout=300, env=env, cwd=REPO, check=False,
    )  # fmt: skip


def test_a_reviewer_judges_five_cases_and_the_analyzer_reports_the_override_rate(
    tmp_path: Path,
) -> None:
    executable = chromium()
    from playwright.sync_api import expect, sync_playwright

    flags = tmp_path / "partial-trust.flagd.json"
    flags.write_bytes(SHIPPED.read_bytes())
    flagfile.set_flag(flags, flagfile.SAMPLE_RATE, 1.0, reason="test: every command")
    flagfile.resume(flags, reason="test: on", keep_rate=True)
    flagfile.set_flag(flags, REVIEW_ENABLED, True, reason="test: keep disagreements")
    store = tmp_path / "store" / "review.db"
    review_env = {
        "PARTIAL_TRUST_REVIEW_STORE": str(store),
        "PARTIAL_TRUST_REVIEW_KEY": KEY,
        "PARTIAL_TRUST_REVIEWER_TOKEN": REVIEWER,
        "PARTIAL_TRUST_REVIEW_AUDIT_LOG": str(tmp_path / "review_audit.jsonl"),
    }
    app_env = {"PARTIAL_TRUST_FLAGS_PROVIDER": "file", "PARTIAL_TRUST_FLAGS_FILE": str(flags)}
    with (
        llm_sim(tmp_path, "--disagree-rate", "1") as sim,
        reference_app(tmp_path, f"{sim.url}/v1", **app_env, **review_env) as (app, risk_log),
        httpx.Client(timeout=10) as http,
    ):
        for i in range(5):
            r = http.post(f"{app.url}/route", json=canary_command(f"walk-{i}"))
            assert r.status_code == 200
        for _ in range(100):
            health = http.get(f"{app.url}/health").json()
            review = health["partial_trust"]["review_store"]
            if review.get("kept", 0) >= 5:
                break
            time.sleep(0.1)
        assert review["active"] is True and review["kept"] == 5, review
    assert not leaks(risk_log.read_text()), "canary in the risk log"
    assert not leaks(disk_bytes(store.parent).decode("latin-1")), "canary in clear on disk"

    with (
        console_process(tmp_path, flags, risk_log, **review_env) as console,
        sync_playwright() as pw,
    ):
        browser = pw.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(f"{console.url}/review")
            page.fill("#token", REVIEWER)
            page.fill("#reviewer", "ana")
            page.click("#start")
            for n, (keys, _) in enumerate(WALK):
                expect(page.locator("#progress")).to_have_text(f"{n} of 5 reviewed")
                expect(page.locator("#text")).to_contain_text("zqxwvbanana")
                expect(page.locator("#differed")).not_to_be_empty()
                for key in keys:
                    page.keyboard.press(key)
                if n == 3:  # a note, typed after "n", then back to the keys
                    page.keyboard.press("n")
                    page.keyboard.type("two lists named alike")
                    page.keyboard.press("Escape")
                with page.expect_response(lambda r: r.url.endswith("/review/api/verdict")):
                    page.keyboard.press("Enter")
            expect(page.locator("#progress")).to_have_text("5 of 5 reviewed")
            expect(page.locator("#done")).to_be_visible()
        finally:
            browser.close()
        console_log = (tmp_path / "console.log").read_text()
    assert not leaks(console_log), "canary in the console's log"
    audit = [json.loads(x) for x in (tmp_path / "review_audit.jsonl").read_text().splitlines()]
    assert [(a["actor"], a["verdict"]) for a in audit] == [("ana", v) for _, v in WALK]
    assert not leaks(json.dumps(audit)), "canary in the review audit log"
    if (tmp_path / "audit.jsonl").exists():
        assert not leaks((tmp_path / "audit.jsonl").read_text()), "canary in the flag audit log"

    env = {**os.environ, **review_env}
    out = tmp_path / "report.json"
    analyze = _cli(
        "analyze", "--risk-log", str(risk_log), "--review-store", str(store),
        "--output-json", str(out), "--html", str(tmp_path / "report.html"), env=env,
    )  # fmt: skip
    assert analyze.returncode == 0, analyze.stderr
    override = json.loads(out.read_text())["override"]
    assert override["verdicts"] == 5 and override["overrides"] == 3
    assert override["override_rate"] == pytest.approx(0.6)
    assert override["by_category"] == {"too_strict": 1, "too_permissive": 1, "unclear": 1}
    assert "override_rate 60.0%" in (tmp_path / "report.html").read_text()

    gate = _cli(
        "gate", "--stage", "advisory", "--risk-log", str(risk_log), "--review-store",
        str(store), "--risk-class", "write", "--output-json", "-", env=env,
    )  # fmt: skip
    verdict = json.loads(gate.stdout)
    # 5 verdicts: too few to promote whatever the rate; 60% is over the write line: NO-GO
    assert verdict["verdict"] != "GO" and gate.returncode in (1, 3), gate.stderr

    exported = _cli("review", "export", "--out", str(tmp_path / "corpus"), env=env)
    assert exported.returncode == 0, exported.stderr
    corpus_file = tmp_path / "corpus" / "review_corpus.json"
    entries = json.loads(corpus_file.read_text())
    assert [e["verdict"] for e in entries] == [v for _, v in WALK]
    # the decision the reviewer took: the LLM's (which differs), the baseline's, or none
    assert entries[1]["expected"]["list_id"] == "l-1"
    assert entries[1]["expected"]["items"] == [
        {"name": "zqxwvbanana", "quantity": 1},
        {"name": "milk", "quantity": 1},
    ]
    assert entries[0]["expected"] not in (None, entries[1]["expected"])
    assert entries[3]["expected"] is None and entries[4]["expected"] is None
    assert all(e["command"]["user_id"] == "u-review" for e in entries)
    assert len(load_corpus(corpus_file)) == 5
    replay = _cli("replay", "--corpus", str(corpus_file), "--sim-disagree-rate", "0", env=env)
    assert replay.returncode == 0, replay.stdout + replay.stderr
