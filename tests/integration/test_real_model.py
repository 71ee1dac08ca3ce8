"""The corridor against a REAL model: llama-cpp-python's server with SmolLM2-135M on CPU.

Marked ``real_model``: it needs ``.venv-llm`` (``scripts/ci-real-model``, which ``.ci/run``
runs). Locally, without it, the test is skipped with the reason; with ``CI=true`` a missing
venv, a server that does not build or does not start, fails. Eight held-out commands of the
labelled corpus (``bench/corpus``) go through a real ``partial-trust serve`` at a 100% sample
(``bench/real_model.run``): about a minute on 2 cores once the prompt prefix is warm.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from bench.corpus_eval import load_corpus
from bench.llm_server import LLMServerUnavailable, llm_server, locate
from bench.real_model import PROFILE, run
from partial_trust.middleware.policy import PolicyRegistry
from tests.support.allowlist_oracle import allowlist_ok, baseline_of, in_corridor

pytestmark = [pytest.mark.integration, pytest.mark.real_model]

#: Held-out commands of every kind the corridor sees: plain, counts, several, a named list,
#: Russian, a typo, another intent, an injection.
SLICE = (
    "en-plain-002",
    "en-digits-002",
    "en-several-002",
    "en-named-002",
    "ru-several-002",
    "ru-words-002",
    "en-other-002",
    "en-injection-002",
)


def _require_llm() -> None:
    try:
        locate()
    except LLMServerUnavailable as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(str(exc))
        pytest.skip(str(exc))


def _baseline_bytes(command: dict[str, object]) -> bytes:
    """The reference router's body as Starlette's JSONResponse renders it."""
    return json.dumps(
        baseline_of(command), ensure_ascii=False, allow_nan=False, separators=(",", ":")
    ).encode("utf-8")


def test_real_model_through_serve(tmp_path: Path) -> None:
    _require_llm()
    by_id = {e["id"]: e for e in load_corpus()}
    entries = [by_id[i] for i in SLICE]
    profile = PolicyRegistry.load().resolve("partial_trust_shopping", PROFILE)
    assert profile is not None
    threshold = profile.profile.confidence_threshold
    with llm_server(tmp_path / "llm-server.log") as llm:
        report = run(entries, tmp_path, llm=llm)
        assert llm.process.poll() is None, llm.output()[-2000:]

    rows = report.rows
    assert [r.status for r in rows] == [200] * len(SLICE)  # no 5xx, and nothing else either
    expected_sampled = 0
    for row in rows:
        command = row.entry["command"]
        baseline = baseline_of(command)
        assert row.record is not None, row.entry["id"]  # every outcome at rate 1 is logged
        expected_sampled += in_corridor(baseline)
        assert row.sampled == in_corridor(baseline), (row.entry["id"], row.record)
        if row.record["status"] == "accepted_llm":
            assert row.tapped is not None and row.tapped.status == 200
            assert allowlist_ok(row.tapped.candidate, command, baseline, threshold), row.tapped
            served = row.served
            assert {k: v for k, v in served.items() if k != "job"} == {
                k: v for k, v in baseline.items() if k != "job"
            }
            assert served["job"]["payload"]["items"] == [
                {"name": i["name"].strip(), "quantity": i["quantity"]}
                for i in row.tapped.candidate["job"]["payload"]["items"]
            ]
        else:
            assert row.body == _baseline_bytes(command), row.entry["id"]
    # The model was really asked, and answered in the candidate's shape (the JSON schema in
    # response_format): every sampled command has a schema-valid candidate or a timeout (a
    # busy machine can push a CPU answer past the profile's 20 s; one answer at least).
    sampled = [r for r in rows if r.sampled]
    assert expected_sampled >= 5 and len(sampled) == expected_sampled
    for row in sampled:
        assert row.record is not None
        if row.record["status"] == "error":
            assert row.record["reason_code"] == "llm_timeout", row.record
        else:
            assert row.record["reason_code"] != "schema_violation", row.record
    assert any(r.record["status"] != "error" for r in sampled if r.record), report.figures()

    # Risk log: one line per request (rate 1: nothing is not_sampled), sampled lines equal
    # sampled requests, and none of the user's data.
    log = (tmp_path / "risk-canary.jsonl").read_text(encoding="utf-8")
    lines = [json.loads(line) for line in log.splitlines()]
    assert len(lines) == len(SLICE)
    assert sum(line["sampled"] for line in lines) == expected_sampled
    serve_log = (tmp_path / "serve-canary.log").read_text(errors="replace")
    for row in rows:
        command = row.entry["command"]
        secrets = [command["text"], command["command_id"], *command["context"]["lists"]]
        secrets += [i["name"] for i in row.entry["expected"].get("items", [])]
        if row.tapped is not None and isinstance(row.tapped.candidate, dict):
            secrets += [i["name"] for i in row.tapped.candidate["job"]["payload"]["items"]]
        for secret in secrets:
            assert f'"{secret}"' not in log and secret not in serve_log, secret
            assert secret not in log or len(secret) < 4, secret
