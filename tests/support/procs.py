"""Real processes for integration tests: uvicorn apps, llm-sim, Prometheus, Alertmanager.

Every process binds 127.0.0.1 on a free port, is waited for over HTTP (never a sleep), and is
terminated when the test ends, with its output kept in a file to show on failure.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
PYTHON = sys.executable


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def require_binary(name: str) -> str:
    """The binary's path; skip when it is missing, but fail under CI=true (never a silent skip)."""
    path = shutil.which(name)
    if path:
        return path
    message = f"{name!r} is not installed (Debian package; .ci/run installs it)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


@dataclass
class Server:
    url: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")


def wait_http(
    url: str, timeout_s: float = 20.0, process: subprocess.Popen[bytes] | None = None
) -> None:
    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before {url} answered")
        try:
            if httpx.get(url, timeout=1.0).status_code < 500:
                return
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.05)
    raise TimeoutError(f"{url} did not answer within {timeout_s}s: {last}")


@contextmanager
def run_server(
    argv: Sequence[str],
    *,
    port: int,
    ready_path: str,
    log_path: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout_s: float = 20.0,
    inherit_env: bool = True,
) -> Iterator[Server]:
    """``argv`` as a server on ``port``, waited for at ``ready_path``, stopped when the block
    ends. ``inherit_env=False`` runs it with ``env`` alone (an installed wheel must not see
    this checkout's interpreter settings)."""
    full_env = {**(os.environ if inherit_env else {}), **(env or {})}
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            list(argv), stdout=log, stderr=subprocess.STDOUT, env=full_env, cwd=cwd or REPO
        )
    server = Server(f"http://127.0.0.1:{port}", port, proc, log_path)
    try:
        try:
            wait_http(server.url + ready_path, timeout_s, proc)
        except Exception as exc:
            raise RuntimeError(f"{argv[:4]} did not start:\n{server.output()}") from exc
        yield server
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def partial_trust(*args: str) -> list[str]:
    """argv for the project's CLI, run by this interpreter (no reliance on PATH)."""
    return [PYTHON, "-m", "partial_trust.apps.cli", *args]
