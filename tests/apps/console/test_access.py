"""Access: no credential, a wrong one, cross-site POSTs, read-only and remote clients.

Every refused change is checked against the flag file byte for byte and an empty audit log.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette

from tests.apps.console.helpers import AUTH, HOOK_AUTH, TOKEN, audit_lines, client, make_console

pytestmark = pytest.mark.anyio
BODY = {"reason": "attack"}


async def refused(
    app: Starlette,
    flags: Path,
    tmp_path: Path,
    status: int,
    *,
    headers: dict[str, str],
    host: str = "127.0.0.1",
    path: str = "/api/resume",
    **kwargs: Any,
) -> dict[str, Any]:
    before = flags.read_bytes()
    if "content" not in kwargs:
        kwargs["json"] = BODY
    async with client(app, host) as c:
        resp = await c.post(path, headers=headers, **kwargs)
    assert resp.status_code == status, resp.text
    assert flags.read_bytes() == before
    assert audit_lines(tmp_path) == []
    result: dict[str, Any] = resp.json()
    return result


async def test_no_credential_is_401(console: Starlette, flags: Path, tmp_path: Path) -> None:
    body = await refused(console, flags, tmp_path, 401, headers={})
    assert "token" in body["error"]


@pytest.mark.parametrize(
    "header",
    [
        f"Bearer {TOKEN}x",
        f"Bearer {TOKEN[:-1]}",
        "Bearer ",
        f"Basic {TOKEN}",
        TOKEN,
        HOOK_AUTH["Authorization"],  # the webhook's token is not a console token
    ],
)
async def test_wrong_credential_is_401(
    console: Starlette, flags: Path, tmp_path: Path, header: str
) -> None:
    await refused(console, flags, tmp_path, 401, headers={"Authorization": header})


async def test_401_names_the_scheme(console: Starlette) -> None:
    async with client(console) as c:
        resp = await c.post("/api/kill", json=BODY)
    assert resp.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    "extra",
    [
        {"Origin": "https://evil.example"},
        {"Origin": "http://127.0.0.1:9999"},
        {"Origin": "null"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
        {"Sec-Fetch-Site": "cross-site", "Origin": "http://127.0.0.1:8090"},
    ],
)
async def test_cross_site_post_is_403_even_with_the_token(
    console: Starlette, flags: Path, tmp_path: Path, extra: dict[str, str]
) -> None:
    body = await refused(console, flags, tmp_path, 403, headers={**AUTH, **extra})
    assert "cross-site" in body["error"]


async def test_same_origin_browser_post_is_accepted(console: Starlette, flags: Path) -> None:
    headers = {**AUTH, "Origin": "http://127.0.0.1:8090", "Sec-Fetch-Site": "same-origin"}
    async with client(console) as c:
        resp = await c.post("/api/kill", json=BODY, headers=headers)
    assert resp.status_code == 200


async def test_a_form_post_is_415_even_with_the_token(
    console: Starlette, flags: Path, tmp_path: Path
) -> None:
    headers = {**AUTH, "Content-Type": "application/x-www-form-urlencoded"}
    await refused(console, flags, tmp_path, 415, headers=headers, content=b"reason=x")


async def test_without_a_configured_token_the_console_is_read_only(
    tmp_path: Path, flags: Path
) -> None:
    app = make_console(tmp_path, flags, token=None)
    body = await refused(app, flags, tmp_path, 403, headers=AUTH)
    assert "read-only" in body["error"]
    async with client(app) as c:
        assert (await c.get("/api/state")).json()["read_only"] is True
        assert (await c.post("/api/login", headers=AUTH)).status_code == 403


async def test_login_check(console: Starlette) -> None:
    async with client(console) as c:
        assert (await c.post("/api/login", headers=AUTH)).status_code == 204
        assert (
            await c.post("/api/login", headers={"Authorization": "Bearer no"})
        ).status_code == 401


@pytest.mark.parametrize("path", ["/", "/api/state", "/metrics", "/health"])
async def test_remote_viewing_is_off_unless_allowed(tmp_path: Path, flags: Path, path: str) -> None:
    closed = make_console(tmp_path, flags)
    async with client(closed, "192.0.2.10") as c:
        assert (await c.get(path)).status_code == 403
    async with client(closed, "::1") as c:
        assert (await c.get(path)).status_code == 200
    opened = make_console(tmp_path, flags, allow_remote_read=True)
    async with client(opened, "192.0.2.10") as c:
        assert (await c.get(path)).status_code == 200


async def test_remote_changes_are_off_unless_allowed(tmp_path: Path, flags: Path) -> None:
    readable = make_console(tmp_path, flags, allow_remote_read=True)
    await refused(readable, flags, tmp_path, 403, headers=AUTH, host="192.0.2.10")
    await refused(
        readable,
        flags,
        tmp_path,
        403,
        headers=HOOK_AUTH,
        host="192.0.2.10",
        path="/alertmanager",
        json={"version": "4", "status": "firing", "alerts": []},
    )
    changeable = make_console(tmp_path, flags, allow_remote_changes=True)
    await refused(changeable, flags, tmp_path, 401, headers={}, host="192.0.2.10")
    async with client(changeable, "192.0.2.10") as c:
        assert (await c.post("/api/kill", json=BODY, headers=AUTH)).status_code == 200
