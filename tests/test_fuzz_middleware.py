"""Fuzz: through the whole middleware, no invalid candidate is ever served, and nothing 5xx.

The in-process harness runs each generated command twice, corridor off and on, with respx
answering the generated LLM content: the answer is the baseline's bytes unless the oracle in
``tests/support/allowlist_oracle.py`` accepts the candidate, and then only the job's list id
and items differ. Random request bodies and random LLM HTTP bodies must never cost the client
more than the corridor being off would: the baseline's own answer, untouched.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from pathlib import Path
from typing import Any

import httpx
import respx
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from partial_trust.middleware.baseline import classify_intent
from tests.corridor_harness import LLM_URL, completion
from tests.corridor_harness import settings as corridor_settings
from tests.support.allowlist_oracle import PROFILES, C, baseline_of, check_answer, in_corridor
from tests.support.fuzz_strategies import JSON_ANY, commands, llm_outputs
from tests.support.quick_harness import TIMEOUT_MS, quick_harness


async def _through_middleware(
    command: dict[str, Any], content: Any, profile: str | None
) -> tuple[httpx.Response, httpx.Response, list[dict[str, Any]], int]:
    with (
        tempfile.TemporaryDirectory() as tmp,
        respx.mock(base_url=LLM_URL, assert_all_called=False) as llm,
    ):
        route = llm.post("/chat/completions").mock(return_value=completion(content))
        async with quick_harness(
            Path(tmp), corridor_settings(profile_id=profile, timeout_ms=TIMEOUT_MS)
        ) as h:
            body = json.dumps(command, ensure_ascii=False).encode()
            h.source.value = corridor_settings(enabled=False)
            baseline = await h.post(body)
            h.source.value = corridor_settings(profile_id=profile, timeout_ms=TIMEOUT_MS)
            answer = await h.post(body)
            return baseline, answer, h.lines(), int(route.call_count)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), command=commands(), profile=st.sampled_from(sorted(PROFILES, key=str)))
def test_middleware_never_serves_an_invalid_candidate(
    data: st.DataObject, command: dict[str, Any], profile: str | None
) -> None:
    raw = data.draw(llm_outputs(command))
    baseline, answer, lines, calls = asyncio.run(_through_middleware(command, raw, profile))
    line = check_answer(command, raw, profile, baseline, answer, lines)
    event(f"outcome: {line['status']}/{line['reason_code']}")
    if classify_intent(command["text"]) != C or "start_job" not in command["capabilities"]:
        assert line["status"] == "skipped" and calls == 0, line
    elif not in_corridor(baseline_of(command)):
        # the classifier let it in, but the baseline asked to clarify: nothing to improve on
        assert (line["status"], line["reason_code"]) == ("skipped", "corridor_mismatch")
    else:
        assert line["status"] != "skipped" and calls == 1, line


@st.composite
def mangled(draw: st.DrawFn, command: dict[str, Any]) -> bytes:
    """A command's JSON with one slice replaced by random bytes (often still a command)."""
    body = json.dumps(command, ensure_ascii=False).encode()
    start = draw(st.integers(0, len(body)))
    end = draw(st.integers(start, min(len(body), start + 8)))
    return body[:start] + draw(st.binary(max_size=8)) + body[end:]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), command=commands())
def test_middleware_with_random_bodies_never_5xx(
    data: st.DataObject, command: dict[str, Any]
) -> None:
    """Random bytes, random JSON or a mangled command as the request body (the LLM answers
    500): the baseline's own answer, untouched, whatever the corridor made of it."""
    body = data.draw(
        st.binary(max_size=200) | JSON_ANY.map(lambda v: json.dumps(v).encode()) | mangled(command)
    )

    async def scenario() -> tuple[httpx.Response, httpx.Response, list[dict[str, Any]]]:
        with (
            tempfile.TemporaryDirectory() as tmp,
            respx.mock(base_url=LLM_URL, assert_all_called=False) as llm,
        ):
            llm.post("/chat/completions").mock(return_value=httpx.Response(500))
            async with quick_harness(Path(tmp)) as h:
                h.source.value = corridor_settings(enabled=False)
                off = await h.post(body)
                h.source.value = corridor_settings()
                on = await h.post(body)
                return off, on, h.lines()

    off, on, lines = asyncio.run(scenario())
    assert on.status_code == off.status_code and on.status_code < 500
    assert on.content == off.content
    assert len(lines) == 1
    event(f"outcome: {lines[0]['status']}/{lines[0]['reason_code']}")
    if on.status_code >= 400:
        assert (lines[0]["status"], lines[0]["reason_code"]) == ("skipped", "invalid_command")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    llm_body=st.binary(max_size=300)
    | JSON_ANY.map(lambda v: json.dumps(v).encode())
    | JSON_ANY.map(lambda v: json.dumps({"choices": [{"message": {"content": v}}]}).encode()),
    status=st.sampled_from([200, 200, 200, 201, 204, 302, 404, 429, 500]),
)
def test_middleware_with_random_llm_http_bodies(llm_body: bytes, status: int) -> None:
    """Whatever bytes the LLM endpoint sends back: an error or a refusal, the baseline's bytes."""
    command = {
        "command_id": "c-1",
        "user_id": "u-1",
        "text": "add milk and two eggs to my shopping list",
        "capabilities": ["start_job"],
        "context": {"default_list_id": "l-1", "lists": ["l-1", "l-2"]},
    }

    async def scenario() -> tuple[httpx.Response, httpx.Response, list[dict[str, Any]]]:
        with (
            tempfile.TemporaryDirectory() as tmp,
            respx.mock(base_url=LLM_URL, assert_all_called=False) as llm,
        ):
            reply = httpx.Response(status, content=llm_body)
            llm.post("/chat/completions").mock(return_value=reply)
            async with quick_harness(Path(tmp), corridor_settings(timeout_ms=TIMEOUT_MS)) as h:
                h.source.value = corridor_settings(enabled=False)
                off = await h.post(command)
                h.source.value = corridor_settings(timeout_ms=TIMEOUT_MS)
                on = await h.post(command)
                return off, on, h.lines()

    off, on, lines = asyncio.run(scenario())
    assert len(lines) == 1
    assert lines[0]["status"] in {"error", "fallback_deterministic"}, lines[0]
    assert on.status_code == 200 and on.content == off.content
