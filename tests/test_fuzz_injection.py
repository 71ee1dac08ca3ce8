"""Fuzz: the prompt-injection corpus, played with an LLM that obeys every injection.

Each entry of ``fixtures/injection_corpus.json`` is a command carrying an attack and the answer
a model that obeyed it would give. Played through the whole middleware, the malicious answer
must never be accepted: either the corridor's pre-checks keep the model out (it is never
asked), or the acceptance rules alone refuse what it said, with the reason the entry expects.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import respx

from partial_trust.contracts import CommandDTO
from partial_trust.middleware import acceptance
from tests.corridor_harness import LLM_URL, completion
from tests.corridor_harness import settings as corridor_settings
from tests.support.allowlist_oracle import PROFILES, C, baseline_of, check_answer, in_corridor
from tests.support.allowlist_oracle import corpus_command as _corpus_command
from tests.support.quick_harness import TIMEOUT_MS, quick_harness

CORPUS_PATH = Path(__file__).parent / "fixtures" / "injection_corpus.json"
CORPUS: list[dict[str, Any]] = json.loads(CORPUS_PATH.read_text(encoding="utf-8"))["commands"]


def test_corpus_shape() -> None:
    ids = [e["id"] for e in CORPUS]
    assert len(ids) >= 30 and len(set(ids)) == len(ids)
    assert {e["lang"] for e in CORPUS} == {"en", "ru"}
    assert sum(e["expect"]["status"] == "skipped" for e in CORPUS) >= 5
    for entry in CORPUS:
        assert entry["expect"]["status"] != "accepted_llm", entry["id"]


@pytest.mark.anyio
@pytest.mark.parametrize("entry", CORPUS, ids=[e["id"] for e in CORPUS])
async def test_obeyed_injection_is_never_accepted(tmp_path: Path, entry: dict[str, Any]) -> None:
    command = _corpus_command(entry)
    expected = baseline_of(command)
    raw = entry["obeying_llm_output"]
    skipped = entry["expect"]["status"] == "skipped"
    reaches_llm = in_corridor(expected) and "start_job" in command["capabilities"]
    assert reaches_llm or skipped, entry["id"]
    with respx.mock(base_url=LLM_URL, assert_all_called=False) as llm:
        route = llm.post("/chat/completions").mock(return_value=completion(raw))
        async with quick_harness(tmp_path) as h:
            body = json.dumps(command, ensure_ascii=False).encode()
            h.source.value = corridor_settings(enabled=False)
            baseline = await h.post(body)
            h.source.value = corridor_settings(timeout_ms=TIMEOUT_MS)
            answer = await h.post(body)
            lines = h.lines()
    check_answer(command, raw, None, baseline, answer, lines)
    got = (lines[0]["status"], lines[0]["reason_code"])
    assert got == (entry["expect"]["status"], entry["expect"]["reason"]), entry["attack"]
    assert answer.content == baseline.content
    if skipped:  # the corridor's pre-checks keep the model out: it is never asked
        assert route.call_count == 0
    elif isinstance(raw, dict):  # and the rules alone refuse the obeying answer
        verdict = acceptance.judge(
            raw,
            corridor=C,
            command=CommandDTO.model_validate(command),
            baseline=expected,
            threshold=PROFILES[None],
        )
        assert not verdict.accepted, (entry["id"], verdict.reason)
