"""The environment is read once (issue 18): only ``partial_trust/environment.py`` touches
``os.environ``/``os.getenv``, and no module reads a mapping named ``environ`` with ``.get``.
``Environment.from_os()`` itself is called only by entry points: the applications
(``apps/``) and the host-facing defaults a host app calls from its own start-up; never by
the engine, sampling, the LLM client or any other library code, which take an
``Environment`` (or the values in it) from their caller.

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


#: Library functions that are a host app's entry point and may default to the process
#: environment when given none: (file, qualified function name).
HOST_DEFAULTS = {
    ("middleware/factory.py", "CorridorStack.from_env"),
    ("middleware/metrics.py", "metrics_endpoint"),
}
#: Where any function may read the process environment: the applications on top.
ENTRY_POINT_TREES = ("apps",)


def from_os_uses(source: str) -> list[tuple[int, str]]:
    """(line, enclosing function) for every reference to ``from_os`` (a call, or an alias
    taken of it) in ``source``; the function is ``""`` at module level."""
    found: list[tuple[int, str]] = []

    def visit(node: ast.AST, scope: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                visit(child, f"{scope}.{child.name}" if scope else child.name)
                continue
            if isinstance(child, ast.Attribute) and child.attr == "from_os":
                found.append((child.lineno, scope))
            elif (
                isinstance(child, ast.Constant) and child.value == "from_os"
            ):  # getattr(Environment, "from_os")
                found.append((child.lineno, scope))
            visit(child, scope)

    visit(ast.parse(source), "")
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


def test_only_entry_points_call_environment_from_os() -> None:
    """``CommandKeyer``, the engine, the LLM client: none may fall back to the process
    environment; a hidden read there is a second, unseen source of configuration."""
    hits: list[str] = []
    seen_defaults: set[tuple[str, str]] = set()
    for path in _library_files():
        rel = path.relative_to(REPO).as_posix()
        if rel.split("/")[0] in ENTRY_POINT_TREES or path in ALLOWED:
            continue
        for line, scope in from_os_uses(path.read_text(encoding="utf-8")):
            if (rel, scope) in HOST_DEFAULTS:
                seen_defaults.add((rel, scope))
            else:
                hits.append(f"{rel}:{line} in {scope or '<module>'}")
    assert hits == []
    assert seen_defaults == HOST_DEFAULTS  # the allow-list names real call sites, no stale ones


def test_the_from_os_scan_sees_calls_aliases_and_scopes() -> None:
    source = (
        "from partial_trust.environment import Environment\n"
        "DEFAULT = Environment.from_os()\n"
        "class CommandKeyer:\n"
        "    def __init__(self):\n"
        "        read = Environment.from_os\n"
        "        self.env = read()\n"
        "def f():\n"
        "    return getattr(Environment, 'from_os')()\n"
        "def g(env):\n"
        "    return env.get('A')\n"
        '"""Environment.from_os() in a docstring"""\n'
    )
    assert from_os_uses(source) == [(2, ""), (5, "CommandKeyer.__init__"), (8, "f")]


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
