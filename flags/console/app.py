"""The console's Starlette app: the page, its JSON API, the webhook and ``/metrics``.

Routes (relative to where the app is mounted):

| method | path | what | access |
| --- | --- | --- | --- |
| GET | ``/`` | the page (``page.html``: plain HTML, CSS and JS, no build step) | view |
| GET | ``/api/state`` | flags, stage, gate verdict, audit log newest first | view |
| GET | ``/health`` | ``{"status": "ok"}`` | view |
| GET | ``/metrics`` | the console's own Prometheus registry | view |
| POST | ``/api/login`` | 204 if the bearer token is right (the page's login check) | change |
| POST | ``/api/kill`` ``/api/resume`` ``/api/advance`` ``/api/retreat`` | the controls | change |
| POST | ``/api/set`` | ``{"key", "value"}``: sample rate, timeout or profile | change |
| POST | ``/alertmanager`` | Alertmanager webhook (see ``webhook``) | webhook token |

A change body is JSON ``{"reason": "...", "actor": "name"?, ...}``; the reason is required (one
line, at most 200 characters). Values are validated by ``flags.flagfile`` (the CLI's rules) and
written atomically; a refusal is 422 and the file stays byte for byte as it was. File I/O runs
in worker threads: mounted in the reference app, the console never blocks the corridor's loop.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from functools import partial
from importlib import resources
from pathlib import Path
from typing import Any

import anyio
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from flags import flagfile
from flags.console import state
from flags.console.audit import AuditLog, entry
from flags.console.auth import Access, Denied, json_body_required
from flags.console.webhook import AutoRollback, Notification, Outcomes, RollbackCollector, in_storm
from flags.console.webhook import handle as handle_alerts
from middleware.config import EnvDefaults

ACTIONS = frozenset({"kill", "resume", "advance", "retreat", "set"})
SETTABLE = (flagfile.SAMPLE_RATE, flagfile.TIMEOUT_MS, flagfile.PROFILE_ID)
_SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


def _one_line(value: str) -> str:
    value = value.strip()
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise ValueError("must be one line of plain text")
    return value


class ChangeBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(max_length=200)
    actor: str | None = Field(default=None, max_length=64)
    key: str | None = None
    value: str | int | float | bool | None = None
    acknowledge_storm: bool = False

    @field_validator("reason")
    @classmethod
    def _reason(cls, value: str) -> str:
        value = _one_line(value)
        if not value:
            raise ValueError("a reason is required: say in a few words why")
        return value

    @field_validator("actor")
    @classmethod
    def _actor(cls, value: str | None) -> str | None:
        return _one_line(value) or None if value is not None else None


class Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Console:
    flags_file: Path
    audit: AuditLog
    access: Access
    rollback: AutoRollback
    defaults: EnvDefaults
    gate: state.GateCache
    registry: CollectorRegistry
    outcomes: Outcomes
    lock: anyio.Lock

    # -- views -----------------------------------------------------------------------------

    async def page(self, request: Request) -> Response:
        if (denied := self.access.view(request)) is not None:
            return denied.response()
        nonce = secrets.token_urlsafe(16)
        html = _page_template().replace("__NONCE__", nonce)
        csp = (
            f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; "
            "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; "
            "frame-ancestors 'none'"
        )
        headers = {**_SECURITY_HEADERS, "Content-Security-Policy": csp}
        return HTMLResponse(html, headers=headers)

    async def api_state(self, request: Request) -> Response:
        if (denied := self.access.view(request)) is not None:
            return denied.response()
        body = await anyio.to_thread.run_sync(self._state)
        return JSONResponse(body, headers=_SECURITY_HEADERS)

    def _state(self) -> dict[str, Any]:
        flags = state.read_flags(self.flags_file, self.defaults)
        gate: dict[str, Any] = {"available": False, "why": "the flag file is unusable"}
        if flags["ok"]:
            gate = self.gate.verdict(flags["sample_rate"], flags["on"], flags["rate_changed_at"])
        return {
            "flags_file": str(self.flags_file),
            "corridor": self.rollback.corridor,
            "flags": flags,
            "gate": gate,
            "storm": in_storm(self.audit, self.rollback),
            "read_only": self.access.read_only,
            "audit": self.audit.newest_first(100),
            "audit_file": str(self.audit.path),
        }

    async def health(self, request: Request) -> Response:
        if (denied := self.access.view(request)) is not None:
            return denied.response()
        return JSONResponse({"status": "ok"})

    async def metrics(self, request: Request) -> Response:
        if (denied := self.access.view(request)) is not None:
            return denied.response()
        data = await anyio.to_thread.run_sync(generate_latest, self.registry)
        return Response(data, media_type=CONTENT_TYPE_LATEST)

    # -- changes ---------------------------------------------------------------------------

    async def login(self, request: Request) -> Response:
        if (denied := self.access.change(request)) is not None:
            return denied.response()
        return Response(status_code=204)

    async def change(self, request: Request) -> Response:
        denied = self.access.change(request) or json_body_required(request)
        if denied is not None:
            return denied.response()
        try:
            body = ChangeBody.model_validate_json(await request.body())
        except ValidationError as exc:
            why = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors()
            )
            return JSONResponse({"error": why}, status_code=422)
        action = request.path_params["action"]
        if action not in ACTIONS:
            return JSONResponse({"error": f"unknown action {action!r}"}, status_code=404)
        client = request.client.host if request.client else ""
        try:
            async with self.lock:
                line = await anyio.to_thread.run_sync(partial(self._apply, action, body, client))
        except Refused as exc:
            return JSONResponse({"error": str(exc)}, status_code=exc.status)
        except flagfile.FlagFileError as exc:
            msg = f"refused: {exc}; the flag file was left unchanged"
            return JSONResponse({"error": msg}, status_code=422)
        except OSError as exc:
            return JSONResponse({"error": f"not changed: {exc}"}, status_code=500)
        return JSONResponse({"ok": True, "audit": line})

    def _apply(self, action: str, body: ChangeBody, client: str) -> dict[str, Any]:
        """Validate, open the audit log, change the file, write the audit line (blocking)."""
        key, value = self._target(action, body)
        fd = self.audit.open_fd()  # an unwritable audit log refuses the change up front
        try:
            change = flagfile.set_flag(self.flags_file, key, value, reason=body.reason)
            line = entry(
                change,
                source="ui",
                actor=body.actor or "operator",
                reason=body.reason,
                action=action,
                client=client,
                file=str(self.flags_file),
            )
            self.audit.write(fd, line)
        finally:
            os.close(fd)
        return line

    def _target(self, action: str, body: ChangeBody) -> tuple[str, object]:
        if action == "kill":
            return flagfile.ENABLED, False
        opening = action in {"resume", "advance"} or (
            action == "set" and body.key == flagfile.SAMPLE_RATE
        )
        if opening and in_storm(self.audit, self.rollback) and not body.acknowledge_storm:
            raise Refused(
                409,
                "rollback storm: the corridor was rolled back automatically "
                f"{self.rollback.storm_threshold} or more times in the last "
                f"{int(self.rollback.storm_window.total_seconds() // 60)} minutes; "
                "acknowledge the storm to change it anyway",
            )
        if action == "resume":
            return flagfile.ENABLED, True
        if action == "set":
            if body.key not in SETTABLE:
                raise Refused(
                    422,
                    f"key must be one of {', '.join(SETTABLE)} (kill/resume "
                    "switch partial-trust-enabled)",
                )
            if body.value is None:
                raise Refused(422, "a value is required")
            return body.key, body.value
        flags = state.read_flags(self.flags_file, self.defaults)
        if not flags["ok"]:
            raise flagfile.FlagFileError(flags["error"])
        target = flags["advance_to" if action == "advance" else "retreat_to"]
        if target is None:
            where = "the last stage (10%)" if action == "advance" else "the first stage (1%)"
            hint = "" if action == "advance" else "; use the kill switch to turn it off"
            raise Refused(409, f"cannot {action}: already at {where}{hint}")
        return flagfile.SAMPLE_RATE, target

    # -- webhook ---------------------------------------------------------------------------

    async def alertmanager(self, request: Request) -> Response:
        denied = self.access.webhook(request) or json_body_required(request)
        if denied is not None:
            return denied.response()
        try:
            notification = Notification.model_validate_json(await request.body())
        except ValidationError as exc:
            return JSONResponse(
                {"error": f"not an Alertmanager v4 webhook: {exc.error_count()} problem(s)"},
                status_code=400,
            )
        run = partial(
            handle_alerts,
            notification,
            flags_file=self.flags_file,
            audit=self.audit,
            config=self.rollback,
        )
        try:
            async with self.lock:
                results = await anyio.to_thread.run_sync(run)
        except (flagfile.FlagFileError, OSError) as exc:
            self.outcomes.count("failed")
            # 5xx: Alertmanager retries, and the kill may succeed once the file is fixed.
            return JSONResponse({"error": f"rollback failed: {exc}"}, status_code=500)
        for item in results:
            self.outcomes.count(item["result"])
        return JSONResponse({"alerts": results})


def _page_template() -> str:
    return resources.files("flags.console").joinpath("page.html").read_text(encoding="utf-8")


def build(
    flags_file: Path,
    *,
    audit_path: Path,
    access: Access,
    rollback: AutoRollback,
    risk_log_path: Path | None,
    defaults: EnvDefaults,
    registry: CollectorRegistry | None,
) -> Starlette:
    registry = registry if registry is not None else CollectorRegistry()
    audit = AuditLog(audit_path)
    outcomes = Outcomes(registry)
    registry.register(RollbackCollector(audit, rollback))
    console = Console(
        flags_file=flags_file,
        audit=audit,
        access=access,
        rollback=rollback,
        defaults=defaults,
        gate=state.GateCache(risk_log_path),
        registry=registry,
        outcomes=outcomes,
        lock=anyio.Lock(),
    )
    routes = [
        Route("/", console.page, methods=["GET"]),
        Route("/api/state", console.api_state, methods=["GET"]),
        Route("/health", console.health, methods=["GET"]),
        Route("/metrics", console.metrics, methods=["GET"]),
        Route("/api/login", console.login, methods=["POST"]),
        Route("/api/{action:str}", console.change, methods=["POST"]),
        Route("/alertmanager", console.alertmanager, methods=["POST"]),
    ]
    app = Starlette(routes=routes)
    app.state.console = console
    return app


__all__ = ["Console", "Denied", "build"]
