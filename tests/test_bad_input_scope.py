"""What the corridor does not judge by, in process: the path, the method, the content type.

The same router endpoint mounted where the middleware does not look, and methods other than
POST, get the baseline's answer untouched. The content type is ignored by the reference
router and so by the corridor too: a bad body is refused alike whatever it claims to be, and
a valid command is judged as if it were JSON. See ``tests.support.bad_input`` for the check.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.corridor_harness import harness, served_by_llm, settings
from tests.support.bad_input import (
    BAD_BODIES,
    VALID,
    assert_skipped_invalid,
    llm_calls,
    off_then_on,
    same_response,
    send,
)

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("name", ["oversized-1mb-text", "nested-100k-arrays", "empty"])
async def test_bad_body_on_an_unwrapped_path_is_the_same_answer(
    tmp_path: Path, llm: Any, name: str
) -> None:
    """The same router endpoint mounted where the middleware does not look answers alike."""
    body = BAD_BODIES[name]
    async with harness(tmp_path) as h:
        wrapped = await send(h, body)
        bare = await send(h, body, path="/other")
        same_response(wrapped, bare)
        assert_skipped_invalid(h)
        assert llm_calls(llm) == 0


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=xyz",
        "application/json; charset=latin-1",
        "application/octet-stream",
        None,
    ],
)
async def test_wrong_content_type_with_a_bad_body(
    tmp_path: Path, llm: Any, content_type: str | None
) -> None:
    headers = {} if content_type is None else {"content-type": content_type}
    async with harness(tmp_path) as h:
        off, on = await off_then_on(h, b"command_id=c-1&text=add+milk", headers)
        assert off.status_code == 422
        same_response(on, off)
        assert_skipped_invalid(h)
        assert llm_calls(llm) == 0


@pytest.mark.parametrize("content_type", ["text/plain", "application/xml", None])
async def test_wrong_content_type_with_a_valid_command_is_judged_like_json(
    tmp_path: Path, llm: Any, content_type: str | None
) -> None:
    """The reference router ignores the content type, and so does the corridor: both see the
    same command, so the answer is the one a JSON request gets (here an accepted candidate)."""
    headers = {} if content_type is None else {"content-type": content_type}
    async with harness(tmp_path) as h:
        as_json = await send(h, VALID)
        other = await send(h, VALID, headers)
        assert other.status_code == 200 and other.content == as_json.content
        assert served_by_llm(other.json())
        assert [r["reason_code"] for r in h.lines()] == ["accepted", "accepted"]


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
async def test_other_methods_pass_untouched(tmp_path: Path, llm: Any, method: str) -> None:
    async with harness(tmp_path) as h:
        h.source.value = settings(enabled=False)
        off = await h.client.request(method, "/route", content=b"{not json")
        h.source.value = settings()
        on = await h.client.request(method, "/route", content=b"{not json")
        assert off.status_code == 405
        same_response(on, off)
        assert h.lines() == [] and llm_calls(llm) == 0
