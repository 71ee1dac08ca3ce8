"""The console's Starlette app: the page, its JSON API, the webhook and ``/metrics``.

Routes (relative to where the app is mounted):

| method | path | what | access |
| --- | --- | --- | --- |
| GET | ``/`` | the page (``page.html``: plain HTML, CSS and JS, no build step) | view |
| GET | ``/api/state`` | flags, stage, gate verdict and stage clock, audit log newest first | view |
| GET | ``/health`` | ``{"status": "ok"}`` | view |
| GET | ``/metrics`` | the console's own Prometheus registry | view |
| POST | ``/api/login`` | 204 if the bearer token is right (the page's login check) | change |
| POST | ``/api/kill`` ``/api/resume`` ``/api/advance`` ``/api/retreat`` | the controls | change |
| POST | ``/api/set`` | ``{"key", "value"}``: sample rate, timeout or profile | change |
| POST | ``/alertmanager`` | Alertmanager webhook (see ``webhook``) | webhook token |

A change body is JSON ``{"reason": "...", "actor": "name"?, ...}`` of at most 16 KiB (413);
the reason is required (one line, at most 200 characters); reason, actor and a text value
refuse control, bidi and invisible format characters (422, ``partial_trust.apps.console.text``),
and every
string the console shows (audit log, flag file) is escaped, so an old log cannot spoof it.
Values are validated by ``partial_trust.flags.flagfile`` (the CLI's rules) and
written atomically; a refusal is 422 and the file stays byte for byte as it was. File I/O runs
in worker threads: mounted in the reference app, the console never blocks the corridor's loop.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from functools import partial
from importlib import resources
from pathlib import Path
from typing import Any, cast

import anyio
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from partial_trust.apps.console import actions, stagetime, state, text, webhook
from partial_trust.apps.console.audit import AuditLog
from partial_trust.apps.console.auth import Access, Denied, json_body_required, read_body
from partial_trust.apps.console.corridors import corridor_panels
from partial_trust.apps.console.review import ReviewDesk, ReviewDeskConfig
from partial_trust.apps.console.webhook import (
    AutoRollback,
    Notification,
    Outcomes,
    RollbackCollector,
    in_storm,
)
from partial_trust.config import EnvDefaults
from partial_trust.corridors import SHOPPING
from partial_trust.flags import flagfile
from partial_trust.middleware.review_metrics import ReviewMetrics

#: a change body is a reason, an actor and a value: 16 KiB is plenty (413 above)
MAX_CHANGE_BODY_BYTES = 16 * 1024
_SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


@dataclass
class Console:
    flags_file: Path
    audit: AuditLog
    access: Access
    rollback: AutoRollback
    defaults: EnvDefaults
    gate: state.GateCache
    clock: stagetime.StageClock
    registry: CollectorRegistry
    outcomes: Outcomes
    lock: anyio.Lock
    ctx: actions.Context

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
        # escaped as a whole: the audit log's strings and the flag file's hand-edited ones
        return cast(dict[str, Any], text.escape_all(self._raw_state()))

    def _raw_state(self) -> dict[str, Any]:
        flags = state.read_flags(self.flags_file, self.defaults)
        gate: dict[str, Any] = {"available": False, "why": "the flag file is unusable"}
        if flags["ok"]:
            gate = self.gate_view(flags)
        return {
            "flags_file": str(self.flags_file),
            "corridor": self.rollback.corridor,
            "flags": flags,
            "corridors": self.panels(),
            "gate": gate,
            "storm": in_storm(self.audit, self.rollback, self.rollback.corridor),
            "read_only": self.access.read_only,
            "audit": self.audit.newest_first(100),
            "audit_file": str(self.audit.path),
        }

    def panels(self) -> list[dict[str, Any]]:
        """One panel per allow-listed corridor, with its own storm flag (blocking)."""
        panels = corridor_panels(self.flags_file, self.defaults)
        for panel in panels:
            name = panel["corridor"]
            panel["storm"] = in_storm(self.audit, self.rollback, name)
            flags = state.read_flags(self.flags_file, self.defaults, corridor=name)
            panel["advance_to"], panel["retreat_to"] = flags["advance_to"], flags["retreat_to"]
            panel["gate"] = self.gate_view(flags)
        return panels

    def gate_view(self, flags: dict[str, Any]) -> dict[str, Any]:
        return gate_view(self.gate, self.clock, flags)

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
        raw = await read_body(request, MAX_CHANGE_BODY_BYTES)
        if isinstance(raw, Denied):
            return raw.response()
        try:
            body = actions.ChangeBody.model_validate_json(raw)
        except ValidationError as exc:
            why = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors()
            )
            return JSONResponse({"error": why}, status_code=422)
        action = request.path_params["action"]
        if action not in actions.ACTIONS:
            return JSONResponse({"error": f"unknown action {action!r}"}, status_code=404)
        client = request.client.host if request.client else ""
        try:
            async with self.lock:
                run = partial(actions.apply, self.ctx, action, body, client)
                line = await anyio.to_thread.run_sync(run)
        except actions.Refused as exc:
            return JSONResponse({"error": str(exc), **exc.details}, status_code=exc.status)
        except flagfile.FlagFileError as exc:
            msg = f"refused: {exc}; the flag file was left unchanged"
            return JSONResponse({"error": msg}, status_code=422)
        except OSError as exc:
            return JSONResponse({"error": f"not changed: {exc}"}, status_code=500)
        return JSONResponse({"ok": True, "audit": line})

    # -- webhook ---------------------------------------------------------------------------

    async def alertmanager(self, request: Request) -> Response:
        denied = self.access.webhook(request) or json_body_required(request)
        if denied is not None:
            return denied.response()
        raw = await read_body(request, webhook.MAX_BODY_BYTES)
        if isinstance(raw, Denied):
            return raw.response()
        try:
            notification = await anyio.to_thread.run_sync(Notification.model_validate_json, raw)
        except ValidationError as exc:
            return JSONResponse(
                {"error": f"not an Alertmanager v4 webhook: {exc.error_count()} problem(s)"},
                status_code=400,
            )
        # Decided without the change lock (it only reads); the lock covers the one kill.
        decide = partial(webhook.decide, notification, audit=self.audit, config=self.rollback)
        decision = await anyio.to_thread.run_sync(decide)
        run = partial(
            webhook.apply,
            decision,
            flags_file=self.flags_file,
            audit=self.audit,
            config=self.rollback,
        )
        try:
            if decision.to_kill or decision.unknown:
                async with self.lock:
                    await anyio.to_thread.run_sync(run)
        except (flagfile.FlagFileError, OSError) as exc:
            self.outcomes.count("failed")
            # 5xx: Alertmanager retries, and the kill may succeed once the file is fixed.
            return JSONResponse({"error": f"rollback failed: {exc}"}, status_code=500)
        for item in decision.results:
            self.outcomes.count(item["result"])
        self.outcomes.count("over_limit", decision.ignored)
        answer: dict[str, Any] = {"alerts": decision.results, "ignored": decision.ignored}
        if decision.ignored:
            answer["note"] = (
                f"only the first {webhook.MAX_ALERTS} alerts were looked at; "
                f"{decision.ignored} ignored"
            )
        return JSONResponse(answer)


def gate_view(
    cache: state.GateCache, clock: stagetime.StageClock, flags: dict[str, Any]
) -> dict[str, Any]:
    """The gate for ``flags`` (``state.read_flags``) with the stage clock (blocking): what the
    page shows and what ``advance`` obeys, so the two cannot disagree."""
    corridor = str(flags.get("corridor") or SHOPPING)
    gate = cache.verdict(flags["sample_rate"], flags["on"], flags["rate_changed_at"], corridor)
    return stagetime.judge(gate, clock, corridor)


def _page_template() -> str:
    return (
        resources.files("partial_trust.apps.console")
        .joinpath("page.html")
        .read_text(encoding="utf-8")
    )


def build(
    flags_file: Path,
    *,
    audit_path: Path,
    access: Access,
    rollback: AutoRollback,
    risk_log_path: Path | None,
    defaults: EnvDefaults,
    registry: CollectorRegistry | None,
    review: ReviewDeskConfig | None = None,
) -> Starlette:
    registry = registry if registry is not None else CollectorRegistry()
    audit = AuditLog(audit_path)
    outcomes = Outcomes(registry)
    registry.register(RollbackCollector(audit, rollback))
    gate = state.GateCache(risk_log_path)
    clock = stagetime.StageClock(audit_path, risk_log_path)
    console = Console(
        flags_file=flags_file,
        audit=audit,
        access=access,
        rollback=rollback,
        defaults=defaults,
        gate=gate,
        clock=clock,
        registry=registry,
        outcomes=outcomes,
        lock=anyio.Lock(),
        ctx=actions.Context(flags_file, audit, defaults, rollback, partial(gate_view, gate, clock)),
    )
    review = review or ReviewDeskConfig(None, None, audit_path.with_name("review_audit.jsonl"))
    desk = ReviewDesk(
        review.settings, review.token, AuditLog(review.audit_path), access, ReviewMetrics(registry)
    )
    routes = [
        *desk.routes(),
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
