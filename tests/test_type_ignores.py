"""Every ``# type: ignore`` names its error code and says why (issue 18: strict typing through
the seam). A bare ignore silences every error on its line, today's and tomorrow's; a code
without a reason leaves the next reader to guess whether it is still needed (mypy's
``warn_unused_ignores`` only says whether it is, not why it was).

Comments are found with ``tokenize``, so the words in a string or a docstring are no hit.
"""

from __future__ import annotations

import io
import os
import re
import tokenize
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCANNED = ("partial_trust", "middleware", "flags", "apps", "llm_policy", "tests", "bench", "alerts")
_IGNORE = re.compile(r"type:\s*ignore")
#: The ignore with its codes in brackets, then another ``#`` comment giving a reason.
_GOOD = re.compile(r"type:\s*ignore\[[a-z-]+(?:,\s*[a-z-]+)*\]\s*#\s*\S.{2,}")


def bad_ignores(source: str) -> list[int]:
    """Lines of ``source`` whose ``type: ignore`` lacks a code or a reason."""
    return [
        token.start[0]
        for token in tokenize.generate_tokens(io.StringIO(source).readline)
        if token.type == tokenize.COMMENT
        and _IGNORE.search(token.string)
        and not _GOOD.search(token.string)
    ]


def _files() -> list[Path]:
    found: set[Path] = set()
    for top in SCANNED:
        for folder, dirs, names in os.walk(REPO / top):
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            found |= {Path(folder, n).resolve() for n in names if n.endswith(".py")}
    return sorted(found)


def test_every_type_ignore_has_a_code_and_a_reason() -> None:
    files = _files()
    assert len(files) > 200  # the walk found the tree
    hits = {
        str(path.relative_to(REPO)): lines
        for path in files
        if (lines := bad_ignores(path.read_text(encoding="utf-8")))
    }
    assert hits == {}


def test_the_scan_tells_good_from_bad() -> None:
    bad = [
        "x = f()  # type: ignore\n",
        "x = f()  # type: ignore[arg-type]\n",
        "x = f()  # type: ignore[arg-type] #\n",
        "x = f()  #type:ignore  # why\n",
    ]
    for source in bad:
        assert bad_ignores(source) == [1], source
    good = [
        "x = f()  # type: ignore[arg-type]  # a wrong type on purpose\n",
        "x = f()  # type: ignore[method-assign, assignment]  # a spy\n",
        's = "# type: ignore"\n',
        '"""\n# type: ignore in a docstring\n"""\n',
    ]
    for source in good:
        assert bad_ignores(source) == [], source
