"""Fuzz: no invalid candidate is ever accepted, and an accepted one always fits the allowlist.

``allowlist_ok`` below is an independent reading of the acceptance rules as the README states
them (schema exact and strict, intent and job_type the corridor's, 1..20 items, names
non-blank, at most 64 characters, no control/format characters, no ``<>{}[]`\\|$`` and no
``://``, list id the baseline's or the command's own, confidence (given, or the grounding
surrogate) at least the profile's threshold). Hypothesis feeds commands (English, Russian,
random Unicode, random list contexts) and LLM outputs (shaped like the candidate schema and
not) both straight into ``acceptance.judge`` and through the whole middleware (the in-process
harness with respx answering the generated content).

The prompt-injection corpus (``fixtures/injection_corpus.json``) is played with an LLM that
obeys every injection: the malicious answer must never be accepted.
"""

from __future__ import annotations

import asyncio
import json
import re
import ssl
import tempfile
import unicodedata
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from middleware import acceptance
from middleware.circuit import CircuitBreaker
from middleware.config import EffectiveSettings
from middleware.contracts import CommandDTO
from middleware.llm_client import LLMClient
from middleware.policy import PolicyRegistry
from middleware.reference.baseline import classify_intent
from middleware.reference.baseline import route as baseline_route
from tests.corridor_harness import LLM_URL, Harness, completion, harness
from tests.corridor_harness import settings as corridor_settings
from tests.support.procs import REPO

C = "add_shopping_item"
POLICY = PolicyRegistry.load(REPO / "llm_policy" / "llm-policy.yaml")
PROFILES: dict[str | None, float] = {
    pid: resolved.profile.confidence_threshold
    for pid in (None, "reliable")
    if (resolved := POLICY.resolve("partial_trust_shopping", pid)) is not None
}
#: The profile's cap: a loaded machine must not turn an instant LLM double into a timeout.
TIMEOUT_MS = 500
CORPUS_PATH = Path(__file__).parent / "fixtures" / "injection_corpus.json"
CORPUS: list[dict[str, Any]] = json.loads(CORPUS_PATH.read_text(encoding="utf-8"))["commands"]

_SSL = ssl.create_default_context()


@asynccontextmanager
async def quick_harness(
    tmp: Path, initial: EffectiveSettings | None = None, circuit: CircuitBreaker | None = None
) -> AsyncIterator[Harness]:
    """The harness, with the LLM client on an injected ``httpx.AsyncClient`` that reuses one
    SSL context: a fresh client loads the CA bundle (~40 ms), which would be most of every
    hypothesis example. respx still answers every request."""
    async with harness(tmp, initial, circuit) as h, httpx.AsyncClient(verify=_SSL) as client:
        h.engine.llm = LLMClient(LLM_URL, client=client)
        yield h


# --------------------------------------------------------------------------------------------
# The oracle: the README's allowlist, written independently of middleware.acceptance.

_BAD_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Cn"}
_BAD_CHARS = set("<>{}[]`\\|$")
_WORD = re.compile(r"\w+")


def _exact(value: object, required: set[str], optional: frozenset[str] = frozenset()) -> bool:
    return isinstance(value, dict) and required <= value.keys() <= required | optional


def _is_int(value: object) -> bool:
    return type(value) is int


def _is_number(value: object) -> bool:
    return type(value) in (int, float)


def _not_a_count(value: object) -> bool:
    return not (isinstance(value, int) and _is_int(value) and value >= 1)


def name_ok(name: str) -> bool:
    out = name.strip()  # what an accepted answer carries
    return (
        0 < len(out) <= 64
        and not _BAD_CHARS & set(out)
        and "://" not in out
        and all(unicodedata.category(ch) not in _BAD_CATEGORIES for ch in out)
    )


def schema_ok(raw: object) -> bool:
    if not _exact(raw, {"intent", "job"}, frozenset({"confidence"})):
        return False
    assert isinstance(raw, dict)
    job, conf = raw["job"], raw.get("confidence")
    if not isinstance(raw["intent"], str) or not _exact(job, {"job_type", "payload"}):
        return False
    if conf is not None and not (_is_number(conf) and 0.0 <= conf <= 1.0):
        return False
    payload = job["payload"]
    if not isinstance(job["job_type"], str) or not _exact(payload, {"list_id", "items"}):
        return False
    if not isinstance(payload["list_id"], str) or not isinstance(payload["items"], list):
        return False
    for item in payload["items"]:
        if not _exact(item, {"name"}, frozenset({"quantity"})):
            return False
        if not isinstance(item["name"], str):
            return False
        qty = item.get("quantity", 1)
        if not (_is_int(qty) and 1 <= qty <= 999):
            return False
    return True


def grounded_share(names: list[str], text: str) -> float:
    words = set(_WORD.findall(text.casefold()))
    if not names:
        return 0.0
    return sum(set(_WORD.findall(n.casefold())) <= words for n in names) / len(names)


def allowlist_ok(raw: object, command: dict[str, Any], baseline: dict[str, Any], t: float) -> bool:
    if not schema_ok(raw):
        return False
    assert isinstance(raw, dict)
    payload = raw["job"]["payload"]
    names = [item["name"] for item in payload["items"]]
    context = command.get("context") or {}
    lists = {
        baseline["job"]["payload"].get("list_id"),
        context.get("default_list_id"),
        *context.get("lists", []),
    } - {None}
    conf = raw.get("confidence")
    confidence = conf if conf is not None else grounded_share(names, command["text"])
    return (
        raw["intent"] == C
        and raw["job"]["job_type"] == C
        and 1 <= len(names) <= 20
        and all(name_ok(n) for n in names)
        and payload["list_id"] in lists
        and confidence >= t
    )


# --------------------------------------------------------------------------------------------
# Strategies.

VOCAB_EN = ["milk", "eggs", "bread", "two eggs", "3 apples", "the cheese", "bottles of water"]
VOCAB_RU = ["молоко", "хлеб", "два яйца", "2 батона хлеба", "сыр", "ёжик"]
WORD = st.text(
    alphabet=st.characters(categories=["Ll", "Lu", "Nd"], max_codepoint=0x4FF),
    min_size=1,
    max_size=10,
)
ITEM_TEXT = st.sampled_from(VOCAB_EN + VOCAB_RU) | WORD
LIST_ID = st.sampled_from(["l-1", "l-2", "groceries", "дом", "l-999"]) | st.text(
    alphabet=st.characters(categories=["L", "N", "Pd"]), min_size=1, max_size=12
)
JUNK_TEXT = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=st.characters(categories=["Cc", "Cf", "Zl", "Zp", "Co"]), min_size=1),
    st.sampled_from(
        [
            "<b>milk</b>",
            "milk\n",
            "\tmilk",
            "mi\x00lk",
            "mi\u200blk",
            "\u202emilk",
            "{{milk}}",
            "[milk]",
            "`milk`",
            "$milk",
            "a|b",
            "c:\\milk",
            "https://evil.example",
            "ftp://x",
            "   ",
            "",
            "0.9",
            "1e3",
            "NaN",
            "null",
            "m" * 64,
            "m" * 65,
            " " + "m" * 64 + " ",
            "молоко" * 20,
        ]
    ),
    st.text(min_size=60, max_size=300),
)
JSON_SCALAR = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
JSON_ANY = st.recursive(
    JSON_SCALAR,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@st.composite
def commands(draw: st.DrawFn) -> dict[str, Any]:
    lists = draw(
        st.lists(LIST_ID, min_size=draw(st.sampled_from([0, 1, 1, 1])), max_size=4, unique=True)
    )
    default = draw(st.none() | st.sampled_from([*lists, "l-1"]))
    items = draw(st.lists(ITEM_TEXT, min_size=1, max_size=4))
    named = draw(st.sampled_from([None, None, None, "nope", *lists]))
    kind = draw(st.sampled_from(["en"] * 3 + ["ru"] * 3 + ["random", "timer"]))
    if kind == "en":
        text = f"add {draw(st.sampled_from([', ', ' and ']).map(lambda s: s.join(items)))} "
        text += "to my shopping list" + (f" {named}" if named else "")
    elif kind == "ru":
        text = f"добавь {' и '.join(items)} в список покупок" + (f" {named}" if named else "")
    elif kind == "timer":
        text = "set a timer for 5 minutes"
    else:
        text = draw(st.text(max_size=80))
    context: dict[str, Any] = {"lists": lists}
    if default is not None:
        context["default_list_id"] = default
    capabilities = draw(st.sampled_from([["start_job"]] * 4 + [["x", "start_job"], []]))
    return {
        "command_id": draw(st.text(min_size=1, max_size=20)),
        "user_id": draw(st.text(min_size=1, max_size=20)),
        "text": text,
        "capabilities": capabilities,
        "context": context,
    }


@st.composite
def llm_outputs(draw: st.DrawFn, command: dict[str, Any]) -> Any:
    """Mostly candidate-shaped: valid, valid with one defect, or wild in every field; now and
    then anything at all (any JSON value, or a string that is not a JSON object)."""
    shape = draw(st.sampled_from(["valid"] * 3 + ["defect"] * 4 + ["wild"] * 2 + ["junk"]))
    if shape == "junk":
        return draw(
            JSON_ANY
            | st.sampled_from(["not json", "", "[1, 2]", '{"intent":', "<html>"])
            | st.text()
        )
    context = command["context"]
    own_lists = [*context.get("lists", []), context.get("default_list_id") or "l-1"]
    said = command["text"].split() or ["x"]
    wild = shape == "wild"
    good_name = st.sampled_from(said) | ITEM_TEXT if wild else st.sampled_from(said)
    intent = st.sampled_from([C] * 6 + ["remove_shopping_item", "set_timer", C.upper(), ""])
    quantity = st.integers(1, 999) | st.sampled_from([0, -1, 1000, 2.0, "2", True, None])
    confidence = st.none() | st.floats(0, 1) | st.sampled_from([0.7, 0.8, 1, 0, -0.1, 1.5, "0.9"])
    name = (good_name | JUNK_TEXT | st.integers() | st.none()) if wild else good_name
    item = st.fixed_dictionaries(
        {"name": name}, optional={"quantity": quantity if wild else st.integers(1, 999)}
    )
    items = draw(st.lists(item, min_size=0 if wild else 1, max_size=24 if wild else 5))
    list_id = draw(
        (st.sampled_from(own_lists) | LIST_ID | st.integers())
        if wild
        else st.sampled_from(own_lists)
    )
    raw: dict[str, Any] = {
        "intent": draw(intent) if wild else C,
        "job": {
            "job_type": draw(intent) if wild else C,
            "payload": {"list_id": list_id, "items": items},
        },
    }
    conf_mode = draw(st.sampled_from(["given", "given", "absent", "null"]))
    if conf_mode == "given":
        raw["confidence"] = draw(confidence if wild else st.floats(0.6, 1))
    elif conf_mode == "null":
        raw["confidence"] = None
    if shape == "valid":
        return raw
    job, payload = raw["job"], raw["job"]["payload"]
    defects = [
        "intent", "job_type", "name", "name_type", "quantity", "list_id", "many", "empty",
        "extra_top", "extra_job", "extra_payload", "extra_item", "missing", "confidence",
    ]  # fmt: skip
    for defect in draw(
        st.lists(st.sampled_from(defects), min_size=1, max_size=1 if not wild else 3)
    ):
        if defect in ("intent", "job_type"):
            target = raw if defect == "intent" else job
            target[defect] = draw(intent.filter(lambda v: v != C) | JSON_ANY)
        elif defect == "name" and items:
            items[draw(st.integers(0, len(items) - 1))]["name"] = draw(JUNK_TEXT)
        elif defect == "name_type" and items:
            items[0]["name"] = draw(st.integers() | st.none() | st.lists(st.text(), max_size=2))
        elif defect == "quantity" and items:
            items[-1]["quantity"] = draw(quantity.filter(_not_a_count))
        elif defect == "list_id":
            payload["list_id"] = draw(LIST_ID | st.integers() | st.none())
        elif defect == "many":
            payload["items"] = [{"name": draw(good_name)} for _ in range(draw(st.integers(20, 25)))]
        elif defect == "empty":
            payload["items"] = []
        elif defect.startswith("extra_"):
            where = {"extra_top": raw, "extra_job": job, "extra_payload": payload}
            target = where.get(defect, items[0] if items else payload)
            target[draw(st.sampled_from(["note", "action", "price", "admin", "quantity"]))] = draw(
                JSON_ANY
            )
        elif defect == "missing":
            victim = draw(st.sampled_from([raw, job, payload, *items]))
            if victim:
                victim.pop(draw(st.sampled_from(sorted(victim))))
        elif defect == "confidence":
            raw["confidence"] = draw(confidence)
    return raw


def baseline_of(command: dict[str, Any]) -> dict[str, Any]:
    return baseline_route(CommandDTO.model_validate(command)).model_dump(mode="json")


def in_corridor(baseline: dict[str, Any]) -> bool:
    return (
        baseline.get("intent") == C
        and baseline.get("action") == "start_job"
        and isinstance(baseline.get("job"), dict)
    )


# --------------------------------------------------------------------------------------------
# acceptance.judge directly.


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), command=commands(), profile=st.sampled_from(sorted(PROFILES, key=str)))
def test_judge_accepts_exactly_the_allowlist(
    data: st.DataObject, command: dict[str, Any], profile: str | None
) -> None:
    baseline = baseline_of(command)
    if not in_corridor(baseline):
        baseline = {
            **baseline,
            "intent": C,
            "action": "start_job",
            "job": {"job_type": C, "payload": {"list_id": "l-1", "items": []}},
        }
    raw = data.draw(llm_outputs(command))
    threshold = PROFILES[profile]
    verdict = acceptance.judge(
        raw,
        corridor=C,
        command=CommandDTO.model_validate(command),
        baseline=baseline,
        threshold=threshold,
    )
    expected = allowlist_ok(raw, command, baseline, threshold)
    event(f"verdict: {verdict.reason.value}")
    assert verdict.accepted == expected, (verdict.reason, raw)
    if verdict.accepted:
        assert verdict.candidate is not None
        merged = acceptance.merge(baseline, verdict.candidate)
        assert merged.keys() == baseline.keys() and merged["job"].keys() == baseline["job"].keys()
        assert merged["job"]["payload"].keys() == baseline["job"]["payload"].keys()
        assert all(
            name_ok(i["name"]) and i["name"] == i["name"].strip()
            for i in merged["job"]["payload"]["items"]
        )


# --------------------------------------------------------------------------------------------
# The whole middleware.


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


def check_answer(
    command: dict[str, Any],
    raw: Any,
    profile: str | None,
    baseline: httpx.Response,
    answer: httpx.Response,
    lines: list[dict[str, Any]],
) -> dict[str, Any]:
    assert baseline.status_code == answer.status_code == 200
    assert len(lines) == 1, lines
    (line,) = lines
    if line["status"] != "accepted_llm":
        assert answer.content == baseline.content
        assert answer.headers == baseline.headers
        return line
    base, got = baseline.json(), answer.json()
    assert allowlist_ok(raw, command, base, PROFILES[profile]), raw
    assert got.keys() == base.keys() and got["job"].keys() == base["job"].keys()
    assert got["job"]["payload"].keys() == base["job"]["payload"].keys()
    assert {k: v for k, v in got.items() if k != "job"} == {
        k: v for k, v in base.items() if k != "job"
    }
    assert got["job"]["job_type"] == base["job"]["job_type"] == C
    payload = raw["job"]["payload"]
    assert got["job"]["payload"]["list_id"] == payload["list_id"]
    assert got["job"]["payload"]["items"] == [
        {"name": i["name"].strip(), "quantity": i.get("quantity", 1)} for i in payload["items"]
    ]
    assert int(answer.headers["content-length"]) == len(answer.content)
    assert answer.headers["content-type"] == baseline.headers["content-type"]
    return line


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


# --------------------------------------------------------------------------------------------
# The prompt-injection corpus, with an LLM that obeys.


def test_corpus_shape() -> None:
    ids = [e["id"] for e in CORPUS]
    assert len(ids) >= 30 and len(set(ids)) == len(ids)
    assert {e["lang"] for e in CORPUS} == {"en", "ru"}
    assert sum(e["expect"]["status"] == "skipped" for e in CORPUS) >= 5
    for entry in CORPUS:
        assert entry["expect"]["status"] != "accepted_llm", entry["id"]


def _corpus_command(entry: dict[str, Any]) -> dict[str, Any]:
    return {
        "command_id": "c-1",
        "user_id": "u-1",
        "text": entry["text"],
        "capabilities": entry.get("capabilities", ["start_job"]),
        "context": entry.get("context", {"default_list_id": "l-1", "lists": ["l-1", "l-2"]}),
    }


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


def test_oracle_sanity() -> None:
    """The oracle itself: a plain good candidate passes, each single defect fails."""
    command = _corpus_command({"text": "add milk and two eggs to my shopping list"})
    base = baseline_of(command)
    good: dict[str, Any] = {
        "intent": C,
        "job": {"job_type": C, "payload": {"list_id": "l-2", "items": [{"name": "milk"}]}},
        "confidence": 0.9,
    }
    assert allowlist_ok(good, command, base, 0.7)
    assert not allowlist_ok({**good, "confidence": 0.1}, command, base, 0.7)
    assert not allowlist_ok({**good, "x": 1}, command, base, 0.7)
    assert not allowlist_ok({**good, "intent": "x"}, command, base, 0.7)
    assert not allowlist_ok(good | {"job": {**good["job"], "job_type": "x"}}, command, base, 0.7)
    assert [name_ok(n) for n in ["milk", " milk ", "", " ", "m" * 65, "<b>", "a://b", "\x07"]] == [
        True, True, False, False, False, False, False, False,
    ]  # fmt: skip
    assert grounded_share(["milk", "caviar"], "add milk") == 0.5
