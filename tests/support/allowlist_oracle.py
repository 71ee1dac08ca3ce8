"""The oracle: the README's acceptance allowlist, written independently of middleware.acceptance.

``allowlist_ok`` is a second reading of the acceptance rules as the README states them (schema
exact and strict, intent and job_type the corridor's, 1..20 items, names non-blank, at most 64
characters, no control/format characters, no ``<>{}[]`\\|$`` and no ``://``, list id the
baseline's or the command's own, confidence (given, or the grounding surrogate) at least the
profile's threshold). It is kept apart from the code it judges so that a bug in
``acceptance.judge`` cannot also hide in the check: the fuzz tests compare the two, and
``check_answer`` holds a whole middleware answer to the same rules.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

import httpx

from middleware.contracts import CommandDTO
from middleware.policy import PolicyRegistry
from middleware.reference.baseline import route as baseline_route
from tests.support.procs import REPO

C = "add_shopping_item"
POLICY = PolicyRegistry.load(REPO / "llm_policy" / "llm-policy.yaml")
PROFILES: dict[str | None, float] = {
    pid: resolved.profile.confidence_threshold
    for pid in (None, "reliable")
    if (resolved := POLICY.resolve("partial_trust_shopping", pid)) is not None
}

_BAD_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Cn"}
_BAD_CHARS = set("<>{}[]`\\|$")
_WORD = re.compile(r"\w+")


def _exact(value: object, required: set[str], optional: frozenset[str] = frozenset()) -> bool:
    return isinstance(value, dict) and required <= value.keys() <= required | optional


def _is_int(value: object) -> bool:
    return type(value) is int


def _is_number(value: object) -> bool:
    return type(value) in (int, float)


def not_a_count(value: object) -> bool:
    """A quantity the allowlist refuses for its type or sign (the fuzz draws its defects with
    it): anything but an int of at least 1, and a bool is not an int here."""
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


def baseline_of(command: dict[str, Any]) -> dict[str, Any]:
    """The reference router's own answer, as the JSON the client would get."""
    return baseline_route(CommandDTO.model_validate(command)).model_dump(mode="json")


def in_corridor(baseline: dict[str, Any]) -> bool:
    """The baseline starts the corridor's job: only then does the LLM have anything to improve."""
    return (
        baseline.get("intent") == C
        and baseline.get("action") == "start_job"
        and isinstance(baseline.get("job"), dict)
    )


def corpus_command(entry: dict[str, Any]) -> dict[str, Any]:
    """A command around an entry's text: fixed ids, and the entry's capabilities and context
    or else the usual ones (``start_job``, two lists)."""
    return {
        "command_id": "c-1",
        "user_id": "u-1",
        "text": entry["text"],
        "capabilities": entry.get("capabilities", ["start_job"]),
        "context": entry.get("context", {"default_list_id": "l-1", "lists": ["l-1", "l-2"]}),
    }


def check_answer(
    command: dict[str, Any],
    raw: Any,
    profile: str | None,
    baseline: httpx.Response,
    answer: httpx.Response,
    lines: list[dict[str, Any]],
) -> dict[str, Any]:
    """One command answered by the middleware, held to the oracle: one risk-log line; unless
    the LLM's answer was accepted, the baseline's bytes and headers untouched; if it was, an
    answer the allowlist accepts that changes only the job's list id and items."""
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
