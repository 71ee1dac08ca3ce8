"""When a sampled request's deadline starts: the loop turn that picked its batch up.

Requests that arrive together are read in one turn of the event loop (the server creates one
task per request there) and start one after another in the next turn, each running its
baseline before the next one starts. Counted from its own start, the tenth of ten requests
that arrived in the same millisecond would get its deadline ~9 baselines later than the first,
and its user would wait the timeout *plus* that queue (an independent run measured +43 to +61
ms over a 200 ms timeout at concurrency 10, issue 18). ``ArrivalClock.now`` gives every request
started in the same loop turn the time at which the first of them started, which is as close
to their common arrival as ASGI lets a middleware see.

Every request that starts in a turn arrived before that turn began (the loop reads sockets
between turns, and a task's first step runs in the turn after its creation), so the shared
start is never later than any of their arrivals, however long the turn. The clock holds one
float for the turn in progress, not per-request state: a ``call_soon`` callback, which runs
at the start of the next turn, clears it. A value is never used on another loop, nor once
older than ``max_turn_s``: a safety net, so a loop stopped before the callback ran cannot
leave a stale start behind.
"""

from __future__ import annotations

import asyncio
from typing import Final

#: A shared start older than this is not used (see the module doc).
MAX_TURN_S: Final = 1.0


class ArrivalClock:
    __slots__ = ("_at", "_loop", "max_turn_s")

    def __init__(self, max_turn_s: float = MAX_TURN_S) -> None:
        if not 0 < max_turn_s < 1e9:
            raise ValueError(f"max_turn_s must be a number of seconds > 0, got {max_turn_s!r}")
        self.max_turn_s = max_turn_s
        self._at = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None

    def now(self, loop: asyncio.AbstractEventLoop) -> float:
        """Loop time at which the current turn's first request started (``loop.time()``)."""
        now = loop.time()
        if self._loop is loop and now - self._at <= self.max_turn_s:
            return self._at
        self._at, self._loop = now, loop
        loop.call_soon(self._clear, loop)
        return now

    def _clear(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._loop is loop:
            self._loop = None
