"""Is the file provider serving exactly the content the flag file guard validated?

The guard (``partial_trust.flags.guard``) knows what the operator's file holds and whether it is
usable; the
flagd resolver serves the guard's snapshot once it has reloaded it (within one poll). The
snapshot carries its content hash as the flag ``SNAPSHOT_FLAG``, so evaluating that flag says
which content flagd serves, with no reliance on mtimes or event timing. ``check()`` is cheap
(a lock and one in-memory evaluation): the source calls it on the event loop.
"""

from __future__ import annotations

import time
from typing import Any

from partial_trust.flags.guard import SNAPSHOT_FLAG, FlagFileGuard


class FileCheck:
    """The guard's verdict, and how long the provider has been behind it."""

    def __init__(self, guard: FlagFileGuard, client: Any) -> None:
        self.guard = guard
        self._client = client

    @property
    def path(self) -> object:
        return self.guard.path

    def served(self) -> str | None:
        """The content hash flagd serves now (None if it serves no snapshot)."""
        details = self._client.get_string_details(SNAPSHOT_FLAG, "")
        if details.error_code is not None or not isinstance(details.value, str):
            return None
        return details.value or None

    def check(self) -> tuple[str | None, float, str | None]:
        """(problem, seconds the provider has been behind the file, the hash to expect)."""
        state = self.guard.state()
        if state.error is not None:
            return state.error, 0.0, None
        if state.digest is None:
            return "the flag file has not been read yet", 0.0, None
        if self.served() == state.digest:
            return None, 0.0, state.digest
        return None, max(time.monotonic() - state.changed_at, 1e-9), state.digest
