"""Run a process as an unprivileged user, so that ``chmod 000`` means something under root.

CI runs as root, for which a file's mode never stops a read. Tests about unreadable files run
the reader as ``nobody`` (uid/gid 65534) through ``setpriv`` when the test runs as root; as any
other user they need nothing. A missing ``setpriv`` fails under ``CI=true`` (never a silent skip).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.procs import require_binary

NOBODY = 65534


def as_reader(argv: list[str]) -> list[str]:
    """``argv`` run by a user whom ``chmod 000`` stops (``nobody`` when we are root)."""
    if os.geteuid() != 0:
        return argv
    setpriv = require_binary("setpriv")
    return [setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", *argv]


@contextmanager
def shared_dir(prefix: str) -> Iterator[Path]:
    """A fresh directory in the system temp dir that the reader owns (pytest's is 0700)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        if os.geteuid() == 0:
            os.chown(path, NOBODY, NOBODY)
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
