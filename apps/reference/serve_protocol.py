"""uvicorn's HTTP protocols with a request-head and a request-body deadline (slowloris).

What uvicorn does by itself (0.30-0.55, read in ``uvicorn/protocols/http/h11_impl.py`` and
``httptools_impl.py``): the only timer is ``timeout_keep_alive``, armed in
``on_response_complete`` and cancelled by ``_unset_keepalive_if_required`` at the top of every
``data_received``. So a connection that never completes a request is never timed out: one
that sends nothing after connecting has no timer at all, one that trickles its head a byte at
a time cancels the keep-alive timer with each byte, and one whose body stops half-way waits in
the app's ``receive()`` forever. Both parsers (h11 and httptools, what ``uvicorn[standard]``
picks) behave the same. 2,000 such connections were held for 40 s and more.

``RequestDeadlines`` adds one timer per request, per connection, on the event loop (no task,
no thread; nothing on a request that arrives in time but one ``call_later`` and its cancel):

* **head**: armed when the connection is made, and when the first byte of a next request
  arrives on a kept-alive connection; it must see the whole head within ``header_timeout_s``.
  A head larger than ``max_header_bytes`` is refused at once (431): httptools has no limit of
  its own, h11 refuses at ``h11_max_incomplete_event_size``.
* **body**: re-armed when the head is complete and a body is due; the whole body must arrive
  within ``body_timeout_s``. (The parser stops reading while the app does not consume a large
  body; the apps served here read their bodies at once.)
* on expiry: ``408 Request Timeout`` with ``Connection: close`` if no answer has started, then
  the connection is closed; a request already handed to the app sees ``http.disconnect``.

How the head's end is seen without touching either parser: both protocols make a new
``RequestResponseCycle`` (``self.cycle``) exactly when a head is complete, and set its
``more_body`` to False when the body is complete. The limits come from ``PARTIAL_TRUST_SERVE_*``
(``partial_trust.apps.reference.serve_limits``), which ``serve`` exports for its workers. Pass the
class to
uvicorn as ``http=`` (``protocol_path`` gives the import string, which worker processes can
import): ``uvicorn.run(app, http="partial_trust.apps.reference.serve_protocol:H11WithDeadlines")``.
"""

from __future__ import annotations

import asyncio
import functools
import importlib.util
import logging
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

from partial_trust.apps.reference.serve_limits import ServeLimits, from_env
from partial_trust.environment import Environment

log = logging.getLogger("partial_trust.serve")
_REASONS = {408: b"Request Timeout", 431: b"Request Header Fields Too Large"}


@functools.cache
def current_limits() -> ServeLimits:
    """The process's limits (read once): ``PARTIAL_TRUST_SERVE_*``, else the defaults."""
    try:
        return from_env(Environment.from_os())  # this worker's entry point: uvicorn builds it
    except ValueError as exc:
        log.warning("%s; using the defaults", exc)
        return ServeLimits()


class RequestDeadlines(asyncio.Protocol):
    """Mixin for a uvicorn HTTP protocol class (first base; see the module docstring)."""

    # set by uvicorn's protocol classes
    transport: asyncio.Transport
    loop: asyncio.AbstractEventLoop
    cycle: Any

    _pt_timer: asyncio.TimerHandle | None = None
    _pt_phase: str = "idle"  # "head", "body" or "idle" (nothing due from the client)
    _pt_before: object = None  # the cycle that was current when this request's head began
    _pt_head_bytes: int = 0

    def _pt_setup(self) -> None:
        self._pt_limits = current_limits()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._pt_start_head()

    def data_received(self, data: bytes) -> None:
        if self._pt_phase == "idle" and (self.cycle is None or self.cycle.response_complete):
            self._pt_start_head()  # the first byte of the next request on this connection
        super().data_received(data)
        self._pt_progress(len(data))

    def connection_lost(self, exc: Exception | None) -> None:
        self._pt_cancel()
        self._pt_phase = "idle"
        super().connection_lost(exc)

    # -- the deadline ------------------------------------------------------------------------

    def _pt_start_head(self) -> None:
        self._pt_phase = "head"
        self._pt_before = self.cycle
        self._pt_head_bytes = 0
        self._pt_arm(self._pt_limits.header_timeout_s)

    def _pt_arm(self, seconds: float) -> None:
        self._pt_cancel()
        self._pt_timer = self.loop.call_later(seconds, self._pt_expired)

    def _pt_cancel(self) -> None:
        if self._pt_timer is not None:
            self._pt_timer.cancel()
            self._pt_timer = None

    def _pt_new_cycle(self) -> Any:
        """The cycle of the request whose head this deadline waits for, once it exists."""
        cycle = self.cycle
        return None if cycle is None or cycle is self._pt_before else cycle

    def _pt_progress(self, received: int) -> None:
        if self._pt_phase == "idle":
            return
        if self.transport.is_closing():  # the parser refused the request (400) or similar
            self._pt_cancel()
            self._pt_phase = "idle"
            return
        cycle = self._pt_new_cycle()
        if cycle is None:  # the head is still incomplete
            self._pt_head_bytes += received
            if self._pt_head_bytes > self._pt_limits.max_header_bytes:
                self._pt_refuse(431, "the request head is too large")
            return
        if not cycle.more_body:  # head and body are in: nothing more is due from the client
            self._pt_cancel()
            self._pt_phase = "idle"
        elif self._pt_phase == "head":
            self._pt_phase = "body"
            self._pt_arm(self._pt_limits.body_timeout_s)

    def _pt_expired(self) -> None:
        self._pt_timer = None
        if self._pt_phase == "head":
            why = f"the request head did not arrive within {self._pt_limits.header_timeout_s:g} s"
        else:
            why = f"the request body did not arrive within {self._pt_limits.body_timeout_s:g} s"
        self._pt_refuse(408, why)

    def _pt_refuse(self, status: int, why: str) -> None:
        """Answer ``status`` unless an answer has started, then close the connection."""
        self._pt_cancel()
        self._pt_phase = "idle"
        if self.transport.is_closing():
            return
        log.debug("closing a connection: %s", why)
        cycle = self._pt_new_cycle()
        if cycle is None or not cycle.response_started:
            body = why.encode() + b"\n"
            head = (
                b"HTTP/1.1 %d %s\r\ncontent-type: text/plain; charset=utf-8\r\n"
                b"content-length: %d\r\nconnection: close\r\n\r\n"
                % (status, _REASONS[status], len(body))
            )
            self.transport.write(head + body)
        if cycle is not None:  # the app's receive() answers http.disconnect from now on
            cycle.disconnected = True
            cycle.message_event.set()
        self.transport.close()


class H11WithDeadlines(RequestDeadlines, H11Protocol):
    """uvicorn's h11 protocol with the head and body deadlines."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._pt_setup()


_PATHS = {
    "h11": "partial_trust.apps.reference.serve_protocol:H11WithDeadlines",
    "httptools": "partial_trust.apps.reference.serve_protocol_httptools:HttpToolsWithDeadlines",
}


def protocol_path(http: str) -> str:
    """The ``http=`` import string for ``auto``, ``h11`` or ``httptools`` (uvicorn's choice
    for ``auto``: httptools when it is installed)."""
    if http == "auto":
        http = "httptools" if importlib.util.find_spec("httptools") is not None else "h11"
    return _PATHS[http]
