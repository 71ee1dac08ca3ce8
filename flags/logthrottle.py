"""Throttle a logger that repeats itself.

The flagd FILE resolver logs a full traceback on every poll (every 50 ms here) while the flag
file is broken: 20 tracebacks a second would bury everything else in the log during exactly
the incident someone is trying to read it for. This filter lets one record per message through
per interval and says how many it held back.
"""

from __future__ import annotations

import logging
import threading
import time

#: The logger the flagd provider's file and gRPC watchers write to.
FLAGD_LOGGER = "openfeature.contrib"


class ThrottleFilter(logging.Filter):
    """Pass the first record of each message, then at most one per ``interval_s``."""

    def __init__(self, interval_s: float = 60.0) -> None:
        super().__init__()
        self.interval_s = interval_s
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = str(record.msg)
        now = time.monotonic()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self.interval_s:
                self._held[key] = self._held.get(key, 0) + 1
                return False
            self._last[key] = now
            held = self._held.pop(key, 0)
        if held:
            # the suffix has no '%', so a %-style msg with args still formats
            record.msg = f"{record.msg} [{held} similar records suppressed]"
        return True


def install(logger_name: str = FLAGD_LOGGER, interval_s: float = 60.0) -> ThrottleFilter:
    """Attach a new filter; keep the return value to ``remove`` it later."""
    flt = ThrottleFilter(interval_s)
    logging.getLogger(logger_name).addFilter(flt)
    return flt


def remove(flt: ThrottleFilter, logger_name: str = FLAGD_LOGGER) -> None:
    logging.getLogger(logger_name).removeFilter(flt)
