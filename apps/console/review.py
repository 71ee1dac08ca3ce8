"""The review page: people judge the disagreements the advisory review store kept.

| method | path | what | access |
| --- | --- | --- | --- |
| GET | ``/review`` | the page (``review.html``; it holds no case, the API does) | view |
| GET | ``/review/api/next`` | the oldest unjudged case, what differed, progress | reviewer token |
| POST | ``/review/api/verdict`` | ``{case_id, verdict, category?, note?, reviewer}`` | token |

The reviewer token (``PARTIAL_TRUST_REVIEWER_TOKEN``) is not the operator's
(``PARTIAL_TRUST_CONSOLE_TOKEN``): neither opens the other's doors. Without it set, or
without a usable store (``PARTIAL_TRUST_REVIEW_STORE`` + ``PARTIAL_TRUST_REVIEW_KEY``), the
API answers 403/503 and reads nothing. Every verdict is one line of the review audit log
(``PARTIAL_TRUST_REVIEW_AUDIT_LOG``) with the reviewer's name, the case number, verdict
and category; never the command, the decisions or the note.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from functools import partial
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Final

import anyio
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from partial_trust.apps.console import text
from partial_trust.apps.console.audit import AuditLog, now_rfc3339
from partial_trust.apps.console.auth import (
    Access,
    Denied,
    bearer,
    json_body_required,
    read_body,
    token_matches,
)
from partial_trust.apps.console.review_diff import differences
from partial_trust.apps.review.store import CATEGORIES, VERDICTS, Case, ReviewReader
from partial_trust.environment import Environment
from partial_trust.middleware.review import ReviewSettings
from partial_trust.middleware.review_metrics import ReviewMetrics
from partial_trust.middleware.review_store import ReviewStoreError

REVIEWER_TOKEN_ENV: Final = "PARTIAL_TRUST_REVIEWER_TOKEN"
REVIEW_AUDIT_ENV: Final = "PARTIAL_TRUST_REVIEW_AUDIT_LOG"
DEFAULT_REVIEW_AUDIT: Final = "logs/partial_trust_review_audit.jsonl"
AUDIT_SCHEMA: Final = "partial-trust-review-audit/1"
_MAX_BODY: Final = 8 * 1024
_HEADERS: Final = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


class VerdictBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    case_id: Annotated[int, Field(ge=1)]
    verdict: str
    category: str | None = None
    note: Annotated[str, Field(max_length=2000)] = ""
    reviewer: Annotated[str, Field(min_length=1, max_length=64)]

    @field_validator("verdict")
    @classmethod
    def _verdict(cls, value: str) -> str:
        if value not in VERDICTS:
            raise ValueError(f"one of {', '.join(VERDICTS)}")
        return value

    @field_validator("category")
    @classmethod
    def _category(cls, value: str | None) -> str | None:
        if value is not None and value not in CATEGORIES:
            raise ValueError(f"one of {', '.join(CATEGORIES)}")
        return value

    @field_validator("reviewer")
    @classmethod
    def _reviewer(cls, value: str) -> str:
        return text.check(value, limit=64)


@dataclass(frozen=True)
class ReviewDeskConfig:
    """The review page's settings, read from the console's environment mapping."""

    settings: ReviewSettings | None
    token: str | None
    audit_path: Path

    @classmethod
    def from_env(cls, env: Environment) -> ReviewDeskConfig:
        return cls(
            ReviewSettings.from_env(env),
            (env.get(REVIEWER_TOKEN_ENV) or "").strip() or None,
            Path(env.get(REVIEW_AUDIT_ENV) or DEFAULT_REVIEW_AUDIT).absolute(),
        )


@dataclass
class ReviewDesk:
    settings: ReviewSettings | None
    token: str | None
    audit: AuditLog
    access: Access
    metrics: ReviewMetrics

    def _reviewer(self, request: Request) -> Denied | None:
        if (denied := self.access.view(request)) is not None:
            return denied
        if not self.token:
            return Denied(403, f"review is off: {REVIEWER_TOKEN_ENV} is not set")
        if not token_matches(bearer(request), self.token):
            return Denied(401, "missing or wrong reviewer token")
        if self.settings is None:
            return Denied(503, "review is off: PARTIAL_TRUST_REVIEW_STORE is not set")
        return None

    async def page(self, request: Request) -> Response:
        if (denied := self.access.view(request)) is not None:
            return denied.response()
        nonce = secrets.token_urlsafe(16)
        html = (
            resources.files("partial_trust.apps.console")
            .joinpath("review.html")
            .read_text(encoding="utf-8")
            .replace("__NONCE__", nonce)
        )
        csp = (
            f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; "
            "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
        )
        return HTMLResponse(html, headers={**_HEADERS, "Content-Security-Policy": csp})

    async def next_case(self, request: Request) -> Response:
        if (denied := self._reviewer(request)) is not None:
            return denied.response()
        try:
            body = await anyio.to_thread.run_sync(self._next)
        except ReviewStoreError as exc:
            return JSONResponse({"error": f"review store: {exc}"}, status_code=503)
        return JSONResponse(body, headers=_HEADERS)

    def _store(self) -> ReviewSettings:
        if self.settings is None:  # _reviewer refused already; kept for a direct caller
            raise ReviewStoreError("PARTIAL_TRUST_REVIEW_STORE is not set")
        return self.settings

    def _next(self) -> dict[str, Any]:
        with ReviewReader(self._store()) as reader:
            case = reader.next_case()
            return {"case": None if case is None else _view(case), "progress": reader.progress()}

    async def verdict(self, request: Request) -> Response:
        denied = self._reviewer(request) or json_body_required(request)
        if denied is None:
            denied = self.access._post(request)
        if denied is not None:
            return denied.response()
        raw = await read_body(request, _MAX_BODY)
        if isinstance(raw, Denied):
            return raw.response()
        try:
            body = VerdictBody.model_validate_json(raw)
        except ValidationError as exc:
            why = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors()
            )
            return JSONResponse({"error": why}, status_code=422)
        try:
            result = await anyio.to_thread.run_sync(partial(self._judge, body))
        except ReviewStoreError as exc:
            return JSONResponse({"error": f"review store: {exc}"}, status_code=503)
        except KeyError:
            return JSONResponse({"error": "no such case (expired?)"}, status_code=404)
        except _Unprocessable as exc:
            return JSONResponse({"error": str(exc)}, status_code=422)
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, status_code=409)
        return JSONResponse(result, headers=_HEADERS)

    def _judge(self, body: VerdictBody) -> dict[str, Any]:
        with ReviewReader(self._store()) as reader:
            try:
                row = reader.judge(
                    body.case_id, body.verdict, body.category, body.note, body.reviewer
                )
            except ValueError as exc:
                if "already" in str(exc):
                    raise
                raise _Unprocessable(str(exc)) from None
            progress = reader.progress()
        self.audit.append(
            {
                "time": now_rfc3339(),
                "schema": AUDIT_SCHEMA,
                "source": "review",
                "actor": body.reviewer,
                "case": body.case_id,
                "corridor": row.corridor,
                "verdict": row.verdict,
                "category": row.category,
            }
        )
        self.metrics.verdict(row.corridor, row.verdict, row.category)
        return {"ok": True, "progress": progress, "judged_at": time.time()}

    def routes(self) -> list[Route]:
        return [
            Route("/review", self.page, methods=["GET"]),
            Route("/review/api/next", self.next_case, methods=["GET"]),
            Route("/review/api/verdict", self.verdict, methods=["POST"]),
        ]


class _Unprocessable(ValueError):
    """A verdict without the category it needs (422, not 409)."""


def _view(case: Case) -> dict[str, Any]:
    return {
        "id": case.id,
        "corridor": case.corridor,
        "mode": case.mode,
        "status": case.status,
        "reason": case.reason,
        "created": case.created,
        "text": case.text,
        "command": case.command,
        "baseline": case.baseline,
        "candidate": case.candidate,
        "differed": differences(case.baseline, case.candidate),
    }
