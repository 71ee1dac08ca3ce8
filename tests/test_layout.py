"""The layout's promises, read from the code's own imports (issue 18).

* Everything the wheel installs lives under one import root, ``partial_trust``: a host app
  with its own ``middleware`` and ``flags`` packages mounts the corridor unharmed.
* Imports go only downward: contracts (the modules at the root) -> library (``flags``, then
  ``middleware``) -> applications (``apps``). The library never imports an application, and
  no two packages import each other.
* Nothing imports the folders by their bare names: in a checkout they are importable that
  way too, and a module loaded twice under two names would keep two states.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ROOT = REPO / "partial_trust"
#: package -> the packages it may import (besides itself and the contracts at the root)
ALLOWED: dict[str, set[str]] = {
    "contracts": set(),
    "llm_policy": set(),
    "flags": set(),
    "middleware": {"flags", "llm_policy"},
    "apps": {"flags", "middleware", "llm_policy"},
}


def _package(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "partial_trust":
        return None
    if len(parts) == 1 or parts[1] not in ALLOWED:
        return "contracts"  # partial_trust.config, .outcome, .contracts, .thresholds
    return parts[1]


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.append(node.module)
            found += [f"{node.module}.{alias.name}" for alias in node.names]
    return found


def _sources() -> list[tuple[str, Path]]:
    out = []
    paths = [
        Path(d, f)
        for d, _, names in os.walk(ROOT, followlinks=True)  # through the folder links
        for f in names
        if f.endswith(".py")
    ]
    for path in sorted(paths):
        rel = path.relative_to(ROOT).with_suffix("")
        parts = [p for p in rel.parts if p != "__init__"]
        out.append((".".join(["partial_trust", *parts]), path))
    return out


def test_every_package_imports_only_downward() -> None:
    wrong = []
    for module, path in _sources():
        own = _package(module)
        assert own is not None
        for target in _imports(path):
            other = _package(target)
            if other is None or other in (own, "contracts"):
                continue
            if other not in ALLOWED[own]:
                wrong.append(f"{module} imports {target} ({own} -> {other})")
    assert not wrong, "\n".join(wrong)


def test_the_library_never_imports_an_application() -> None:
    library = [(m, p) for m, p in _sources() if _package(m) != "apps"]
    assert len(library) > 40
    for module, path in library:
        assert not [t for t in _imports(path) if t.startswith("partial_trust.apps")], module


def test_no_package_level_cycle() -> None:
    edges: dict[str, set[str]] = {name: set() for name in ALLOWED}
    for module, path in _sources():
        own = _package(module)
        assert own is not None
        for target in _imports(path):
            other = _package(target)
            if other is not None and other != own:
                edges[own].add(other)
    for a, targets in edges.items():
        for b in targets:
            assert a not in edges[b], f"{a} and {b} import each other"


def test_nothing_imports_the_folders_by_their_bare_names() -> None:
    bare = {"middleware", "flags", "llm_policy", "apps"}
    files = [p for top in ("partial_trust", "tests", "bench", "scripts", "alerts")
             for p in (REPO / top).rglob("*.py")]  # fmt: skip
    wrong = [
        f"{path.relative_to(REPO)}: {target}"
        for path in files
        for target in _imports(path)
        if target.split(".")[0] in bare
    ]
    assert not wrong, "\n".join(wrong)


def test_a_host_app_with_its_own_middleware_and_flags_packages(tmp_path: Path) -> None:
    """The first line of the README's "Mounting it in your own app", in an app that has a
    ``middleware`` and a ``flags`` package of its own (most web apps have the first)."""
    for name in ("middleware", "flags"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text(f"OWNER = 'host {name}'\n")
    (tmp_path / "host.py").write_text(
        textwrap.dedent(
            """
            import middleware, flags
            from starlette.applications import Starlette
            from starlette.responses import JSONResponse
            from starlette.routing import Route
            from starlette.testclient import TestClient

            from partial_trust.middleware.factory import CorridorStack

            async def route(request):
                return JSONResponse({"ok": True})

            stack = CorridorStack.from_env()
            app = stack.wrap(Starlette(routes=[Route("/route", route, methods=["POST"])],
                                       lifespan=stack.lifespan), paths=["/route"])
            with TestClient(app) as client:
                assert client.post("/route", json={}).json() == {"ok": True}
            assert (middleware.OWNER, flags.OWNER) == ("host middleware", "host flags")
            print("mounted")
            """
        )
    )
    env = {
        "PATH": "/usr/bin:/bin",
        "PARTIAL_TRUST_FLAGS_PROVIDER": "env",
        "PARTIAL_TRUST_RISK_LOG_PATH": str(tmp_path / "logs" / "risk.jsonl"),
    }
    done = subprocess.run(
        [sys.executable, "host.py"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().endswith("mounted")
