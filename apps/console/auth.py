"""Who may look and who may change.

* **Viewing** (the page, ``/api/state``, ``/metrics``) is for loopback clients; other addresses
  get 403 unless ``allow_remote_read``. The standalone console binds 127.0.0.1 by default.
* **Changes** are POSTs that need ``Authorization: Bearer <PARTIAL_TRUST_CONSOLE_TOKEN>``.
  Without a configured token the console is read-only (403). A missing or wrong token is 401.
  A non-loopback client may change only with ``allow_remote_changes`` (and the token).
* **The webhook** has its own token (``PARTIAL_TRUST_WEBHOOK_TOKEN``), sent by Alertmanager's
  ``http_config.authorization``; a leaked webhook token can only turn the corridor off.

Cross-site requests. The credential is a bearer header, never a cookie: a browser sends
nothing by itself to the console, and a page on another origin cannot add an
``Authorization`` header (or a JSON content type) without a CORS preflight, which the console
never approves. That alone stops CSRF, so no CSRF token is needed. As a second, independent
layer a POST whose ``Sec-Fetch-Site`` is ``cross-site``/``same-site`` or whose ``Origin`` is not
the console's own host is refused with 403 before the token is even looked at, and POST bodies
must be ``application/json`` (415 otherwise: an HTML form cannot send it). The token lives in
the tab's ``sessionStorage`` (gone when the tab closes) and is compared in constant time.
"""

from __future__ import annotations

import hmac
import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse


@dataclass(frozen=True)
class Denied:
    status: int
    message: str

    def response(self) -> JSONResponse:
        headers = {"WWW-Authenticate": 'Bearer realm="partial-trust"'} if self.status == 401 else {}
        return JSONResponse({"error": self.message}, status_code=self.status, headers=headers)


def is_loopback(request: Request) -> bool:
    host = request.client.host if request.client else ""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def bearer(request: Request) -> str | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def token_matches(given: str | None, expected: str) -> bool:
    if given is None:
        return False
    return hmac.compare_digest(given.encode(), expected.encode())


def cross_site(request: Request) -> str | None:
    """Why this request looks cross-site, or None."""
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None and fetch_site.lower() not in {"same-origin", "none"}:
        return f"cross-site request refused (Sec-Fetch-Site: {fetch_site})"
    origin = request.headers.get("origin")
    if origin is not None:
        host = request.headers.get("host", "").lower()
        if origin == "null" or urlsplit(origin).netloc.lower() != host:
            return f"cross-site request refused (Origin {origin} is not this console)"
    return None


@dataclass(frozen=True)
class Access:
    token: str | None
    webhook_token: str | None
    allow_remote_read: bool = False
    allow_remote_changes: bool = False

    @property
    def read_only(self) -> bool:
        return not self.token

    def view(self, request: Request) -> Denied | None:
        if self.allow_remote_read or is_loopback(request):
            return None
        return Denied(403, "viewing from other hosts is off (allow_remote_read)")

    def _post(self, request: Request) -> Denied | None:
        if not is_loopback(request) and not self.allow_remote_changes:
            return Denied(403, "changes from other hosts are off (allow_remote_changes)")
        why = cross_site(request)
        return Denied(403, why) if why else None

    def change(self, request: Request) -> Denied | None:
        denied = self._post(request)
        if denied is not None:
            return denied
        if not self.token:
            return Denied(403, "read-only console: PARTIAL_TRUST_CONSOLE_TOKEN is not set")
        if not token_matches(bearer(request), self.token):
            return Denied(401, "missing or wrong token")
        return None

    def webhook(self, request: Request) -> Denied | None:
        denied = self._post(request)
        if denied is not None:
            return denied
        if not self.webhook_token:
            return Denied(403, "webhook off: PARTIAL_TRUST_WEBHOOK_TOKEN is not set")
        if not token_matches(bearer(request), self.webhook_token):
            return Denied(401, "missing or wrong webhook token")
        return None


def json_body_required(request: Request) -> Denied | None:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/json":
        return Denied(415, "the body must be application/json")
    return None


async def read_body(request: Request, limit: int) -> bytes | Denied:
    """The body, or 413 once it passes ``limit`` bytes (declared or actually sent): a POST
    never makes the console buffer more than ``limit`` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return Denied(413, f"the body is larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                return Denied(413, f"the body is larger than {limit} bytes")
            chunks.append(chunk)
    except ClientDisconnect:  # gone, or cut off by serve's body deadline: nobody to answer
        return Denied(400, "the client went away before the body was complete")
    return b"".join(chunks)
