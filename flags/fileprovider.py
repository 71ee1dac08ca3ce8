"""The ``file`` provider: flagd's FILE resolver, fed only by the flag file guard.

``GuardedFileProvider`` is the flagd provider (in-process FILE resolver, as DESIGN names it)
pointed at the guard's private snapshot instead of the operator's path, so flagd only ever
opens a small regular file that the guard validated, and reloads on every change of content
(the guard gives each snapshot a newer mtime). ``initialize`` starts the guard first (the
first snapshot exists before flagd reads it); ``shutdown`` stops it. The settings source finds
the guard as ``provider.guard``.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from openfeature.contrib.provider.flagd import FlagdProvider
from openfeature.contrib.provider.flagd.config import ResolverType

from partial_trust.flags.guard import FlagFileGuard


class GuardedFileProvider(FlagdProvider):  # flagd ships no type hints: Any to mypy
    """flagd's FILE resolver on ``FlagFileGuard(path).snapshot_path``."""

    def __init__(self, path: Path, poll_ms: int) -> None:
        self.guard = FlagFileGuard(path, poll_s=poll_ms / 1000)
        super().__init__(
            resolver_type=ResolverType.FILE,
            offline_flag_source_path=str(self.guard.snapshot_path),
            deadline_ms=poll_ms,
        )

    def initialize(self, evaluation_context: Any) -> None:
        self.guard.start()
        super().initialize(evaluation_context)

    def shutdown(self) -> None:
        """Stop the guard and flagd's watcher, then remove the snapshot directory (uvicorn
        ends on the re-raised SIGTERM, so no exit handler would remove it)."""
        self.guard.stop()
        super().shutdown()
        watcher = getattr(getattr(self.resolver, "connector", None), "thread", None)
        if isinstance(watcher, threading.Thread) and watcher is not threading.current_thread():
            watcher.join(timeout=1.0)  # it may poll the snapshot once more after shutdown
        if not (isinstance(watcher, threading.Thread) and watcher.is_alive()):
            self.guard.cleanup()
