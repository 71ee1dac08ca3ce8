"""The environment is read once (issue 18): only ``partial_trust/environment.py`` touches
``os.environ``/``os.getenv``, and no module reads a mapping named ``environ`` with ``.get``.

An AST scan, so a comment or docstring naming the variable is no hit, and an alias
(``from os import environ``, ``import os as o``) is.
"""

from __future__ import annotations

import ast
import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCANNED = ("partial_trust", "middleware", "flags", "apps", "llm_policy")
ALLOWED = {REPO / "partial_trust" / "environment.py"}
_OS_NAMES = {"environ", "environb", "getenv", "getenvb", "putenv", "unsetenv"}


def _os_aliases(tree: ast.AST) -> set[str]:
    names = {"os"}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.asname for a in node.names if a.name == "os" and a.asname}
    return names


def violations(source: str) -> list[str]:
    """``line: what`` for every read of the process environment in ``source``."""
    tree = ast.parse(source)
    aliases = _os_aliases(tree)
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "os":
            found += [
                f"{node.lineno}: from os import {a.name}" for a in node.names if a.name in _OS_NAMES
            ]
        elif isinstance(node, ast.Attribute):
            base = node.value
            if isinstance(base, ast.Name) and base.id in aliases and node.attr in _OS_NAMES:
                found.append(f"{node.lineno}: {base.id}.{node.attr}")
            elif node.attr == "get" and isinstance(base, ast.Name) and base.id == "environ":
                found.append(f"{node.lineno}: environ.get")
    return found


def _library_files() -> list[Path]:
    files: set[Path] = set()
    for top in SCANNED:
        for folder, _, names in os.walk(REPO / top):
            files |= {Path(folder, n).resolve() for n in names if n.endswith(".py")}
    return sorted(files)


def test_only_environment_module_reads_the_process_environment() -> None:
    files = _library_files()
    assert len(files) > 100  # the walk found the package, not an empty folder
    hits = {
        str(path.relative_to(REPO)): found
        for path in files
        if path not in ALLOWED and (found := violations(path.read_text(encoding="utf-8")))
    }
    assert hits == {}


def test_the_scan_catches_every_spelling() -> None:
    bad = [
        "import os\nx = os.environ['A']",
        "import os\nx = os.environ.get('A')",
        "import os\nx = os.getenv('A')",
        "import os as o\nx = o.environ",
        "from os import environ",
        "from os import getenv",
        "def f(environ):\n    return environ.get('A')",
        "import os\nos.environ['A'] = '1'",
    ]
    for source in bad:
        assert violations(source), source
    fine = [
        '"""os.environ in a docstring"""',
        "# os.environ in a comment",
        "import os\nos.path.join('a')",
        "def f(env):\n    return env.get('A')",
    ]
    for source in fine:
        assert not violations(source), source


def test_the_write_site_is_documented() -> None:
    from partial_trust.environment import hand_to_workers

    assert "worker" in (hand_to_workers.__doc__ or "")
