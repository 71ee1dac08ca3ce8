"""The project as a user gets it: a wheel built from this tree, installed into a fresh venv.

Nothing from the checkout or the test environment leaks into the installed tool: no
``PYTHONPATH``, no ``PARTIAL_TRUST_*``/``LLM_*`` variables, and it runs from an empty
directory; pip itself keeps the environment it needs (its index and cache settings).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.procs import REPO, Server, run_server

#: a cold install downloads ~35 packages; a warm pip cache makes it ~30 s
_PIP_TIMEOUT_S = 240


@dataclass(frozen=True)
class Installed:
    wheel: Path
    venv: Path
    home: Path

    @property
    def bin(self) -> Path:
        return self.venv / "bin"

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """A user's shell: the venv on PATH, a scratch HOME, nothing of the project's."""
        base = {
            "PATH": f"{self.bin}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
            "HOME": str(self.home),
            "LANG": "C.UTF-8",
        }
        return {**base, **(extra or {})}

    def run(
        self, *args: str, cwd: Path, env: Mapping[str, str] | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.bin / "partial-trust"), *args],
            cwd=cwd,
            env=self.env(env),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


def _pip_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "PYTHONHOME"}}


def _check(argv: list[str], cwd: Path) -> None:
    done = subprocess.run(
        argv, cwd=cwd, env=_pip_env(), capture_output=True, text=True, timeout=_PIP_TIMEOUT_S
    )
    if done.returncode != 0:
        raise RuntimeError(f"{argv[:4]} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")


#: never part of a build: caches, local state, and setuptools' own output (a stale
#: ``build/lib`` would put files that are gone from the tree into the wheel)
_NOT_SOURCE = shutil.ignore_patterns(
    ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", ".hypothesis",
    "logs", "artifacts", "node_modules",
)  # fmt: skip


def build_and_install(tmp: Path) -> Installed:
    """``pip wheel`` a copy of this tree (no deps), then a fresh venv with it and its deps."""
    src, dist, venv, home = tmp / "src", tmp / "dist", tmp / "venv", tmp / "home"
    home.mkdir()
    shutil.copytree(REPO, src, ignore=_NOT_SOURCE, symlinks=True)
    _check([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(src)],
           tmp)  # fmt: skip
    (wheel,) = dist.glob("partial_trust_corridor-*.whl")
    _check([sys.executable, "-m", "venv", str(venv)], tmp)
    _check([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", str(wheel)], tmp)
    return Installed(wheel, venv, home)


def wheel_names(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as archive:
        return set(archive.namelist())


def wheel_text(wheel: Path, name: str) -> str:
    with zipfile.ZipFile(wheel) as archive:
        return archive.read(name).decode()


@contextmanager
def serving(
    installed: Installed,
    *args: str,
    port: int,
    cwd: Path,
    log_path: Path,
    ready_path: str,
    env: Mapping[str, str] | None = None,
) -> Iterator[Server]:
    """An installed subcommand as a server, stopped (SIGTERM) when the block ends."""
    with run_server(
        [str(installed.bin / "partial-trust"), *args, "--port", str(port)],
        port=port,
        ready_path=ready_path,
        log_path=log_path,
        env=installed.env(env),
        cwd=cwd,
        timeout_s=60,
        inherit_env=False,
    ) as server:
        yield server
