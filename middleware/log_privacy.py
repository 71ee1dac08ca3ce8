"""Raw LLM traffic never reaches a log, at any level.

At DEBUG, httpcore traces every phase of a call with the ``repr`` of what it saw: the status
line and reason phrase, every request and response header (the API key included), and, when
parsing fails, the offending bytes inside the exception. httpx logs each response's URL and
reason phrase at INFO. Our prompts carry the user's text and the answers carry the model's,
so none of that may be written anywhere.

``install`` attaches one ``logging.Filter`` that rewrites every record of these libraries to
a fixed, content-free form (the phase name, ``HTTP Request: POST -> 200``, an exception's
type) with no args, exc_info or stack. A logger's filters only see records created on that
logger, not those propagating from its children, so the filter is attached to every logger
of these libraries by name: the ones they create (``httpcore.connection``, ``.http11``,
``.http2``, ``.proxy``, ``.socks``, ``httpx``) and any other already known under the same
prefixes. Reference-counted: ``CorridorStack`` installs on start and uninstalls on stop; a
permanent ``install()`` at import of the LLM client keeps it on for library users too.
"""

from __future__ import annotations

import logging
import re
import threading

#: Logger name prefixes whose records may carry raw HTTP traffic.
PREFIXES = ("httpcore", "httpx", "h11", "h2", "hpack")
#: The loggers these libraries create (httpcore/_async|_sync/*.py, httpx/_client.py).
KNOWN_LOGGERS = (
    "httpx",
    "httpcore",
    "httpcore.connection",
    "httpcore.http11",
    "httpcore.http2",
    "httpcore.proxy",
    "httpcore.socks",
    "h11",
    "h2",
    "hpack",
)
_EVENT = re.compile(r"[a-z][a-z0-9_]*\.(?:started|complete|failed)")
_EXCEPTION_TYPE = re.compile(r"exception=([A-Za-z_][A-Za-z0-9_]*)\(")
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT"})


class RedactHTTPTraffic(logging.Filter):
    """Keeps the record (its level, logger and time are useful), drops everything in it."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = safe_message(record)
        record.args = ()
        record.exc_info = None
        record.exc_text = None
        record.stack_info = None
        return True


def safe_message(record: logging.LogRecord) -> str:
    """A message made only of names from the library's code, never of what crossed the wire."""
    msg = record.msg
    if not isinstance(msg, str):
        return f"{record.name}: record redacted"
    if msg.startswith("HTTP Request:") and isinstance(record.args, tuple):
        args = record.args
        method = args[0] if args and isinstance(args[0], str) and args[0] in _METHODS else "?"
        status = args[3] if len(args) > 3 and type(args[3]) is int else "?"
        return f"HTTP Request: {method} -> {status}"
    event = msg.split(" ", 1)[0]
    if _EVENT.fullmatch(event):
        if event.endswith(".failed"):
            found = _EXCEPTION_TYPE.match(msg, len(event) + 1)
            return f"{event} exception={found.group(1) if found else '?'}"
        return event
    return f"{record.name}: record redacted"


_FILTER = RedactHTTPTraffic()
_lock = threading.Lock()
_holders = 0


def protected_loggers() -> list[logging.Logger]:
    """The known loggers plus every logger already created under ``PREFIXES``."""
    names = set(KNOWN_LOGGERS)
    for name in list(logging.Logger.manager.loggerDict):
        if any(name == p or name.startswith(p + ".") for p in PREFIXES):
            names.add(name)
    return [logging.getLogger(name) for name in sorted(names)]


def install() -> None:
    """Attach the filter (again, to pick up loggers created since); one more holder."""
    global _holders
    with _lock:
        _holders += 1
        for lg in protected_loggers():
            lg.addFilter(_FILTER)  # a no-op when already there


def uninstall() -> None:
    """One holder fewer; the filter comes off when none is left."""
    global _holders
    with _lock:
        if _holders == 0:
            return
        _holders -= 1
        if _holders == 0:
            for lg in protected_loggers():
                lg.removeFilter(_FILTER)


def installed() -> bool:
    with _lock:
        return _holders > 0


def redaction_filter() -> logging.Filter:
    """The one filter instance, for tests and for callers who attach it to a handler too."""
    return _FILTER
