"""Our own look at the flag file, next to the provider's.

The flagd FILE resolver keeps the last good flags when the file breaks, and accepts JSON that
is not ours (``{"flagz": ...}`` reads as "no flags", so env defaults). ``FileCheck`` validates the
file whenever its inode, size or mtime changes, and tracks whether the provider has reloaded
what is on disk, so the source can hold its snapshot meanwhile and fail closed if the provider
never catches up (flagd reloads only on a newer mtime).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from flags import flagfile


class FileCheck:
    """Is the file valid, and has the provider caught up with it? (module docstring)"""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._seen: tuple[int, int, int] | None = None
        self._loaded: tuple[int, int, int] | None = None
        self._changed_at = 0.0
        self._error: str | None = None

    def _key(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    def mark_loaded(self) -> None:
        """The provider has just (re)loaded the file: what is on disk now is what it serves."""
        self._loaded = self._key()

    def check(self) -> tuple[str | None, float]:
        """(problem, seconds the provider has been behind the file, 0 when in step)."""
        key = self._key()
        if key is None:
            self._seen = None
            return f"flag file {self.path} is missing or unreadable", 0.0
        if key != self._seen:
            self._seen, self._changed_at = key, time.monotonic()
            try:
                flagfile.load(self.path)
                self._error = None
            except flagfile.FlagFileError as exc:
                self._error = str(exc)
        if self._error is not None:
            return self._error, 0.0
        return None, 0.0 if key == self._loaded else time.monotonic() - self._changed_at
