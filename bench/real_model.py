"""The corridor against a real model: llama-cpp-python's server with SmolLM2-135M on CPU.

    scripts/ci-real-model                                   # once: .venv-llm with both
    .venv/bin/python bench/real_model.py [--split held_out|train|all] [--limit N]
        [--mode canary] [--profile smollm2-local] [--timeout-ms 20000] [--json FILE]

Starts the LLM server on 127.0.0.1 with the packaged model (``bench.llm_server``), a
recording tap in front of it (``bench.llm_tap``: the risk log holds no content, the tap sees
what the model wrote), and a real ``partial-trust serve`` at a 100% sample pointed at the
tap; sends the corpus's commands one at a time (the CPU server answers one at a time);
stops ``serve`` (which flushes the risk log) and prints acceptance, agreement with the
baseline, accuracy against the labels for the baseline, the model and the served answer,
outcomes by reason, latency percentiles of the LLM and of the request, HTTP errors, and every
accepted answer that the label says is wrong (``bench.real_model_report``).

Modes: ``canary`` serves an accepted candidate (sample rate 1); ``shadow`` answers every
request with the baseline at once and asks the model afterwards, in the corridor's background
queue. The CPU server answers one call at a time, so in shadow the run waits for each
command's risk-log line (written when its shadow job ends) before it sends the next: without
that the commands would queue behind the model, the queue (64) would overflow, and the run
would measure drops rather than the model.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.corpus_eval import load_corpus  # noqa: E402
from bench.llm_server import LLMServer, free_port, llm_server  # noqa: E402
from bench.llm_tap import LLMTap, command_key  # noqa: E402
from bench.real_model_report import Observed, Report, render  # noqa: E402
from partial_trust.middleware.sampling import CommandKeyer  # noqa: E402

PROFILE = "smollm2-local"
HASH_KEY = "real-model-bench-key"
#: Per mode, the environment of ``partial-trust serve`` on top of ``serve_env``.
MODES: dict[str, dict[str, str]] = {
    "canary": {"PARTIAL_TRUST_SAMPLE_RATE": "1", "PARTIAL_TRUST_MODE": "canary"},
    "shadow": {"PARTIAL_TRUST_SAMPLE_RATE": "1", "PARTIAL_TRUST_MODE": "shadow"},
}


def serve_env(
    llm_url: str, risk_log: Path, mode: str, profile: str, timeout_ms: int
) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "PARTIAL_TRUST_FLAGS_PROVIDER": "env",
        "PARTIAL_TRUST_ENABLED": "true",
        "PARTIAL_TRUST_TIMEOUT_MS": str(timeout_ms),
        "PARTIAL_TRUST_PROFILE_ID": profile,
        "LLM_POLICY_ENABLED": "true",
        "LLM_BASE_URL": llm_url,
        "PARTIAL_TRUST_RISK_LOG_PATH": str(risk_log),
        "PARTIAL_TRUST_HASH_KEY": HASH_KEY,
        **MODES[mode],
    }


@contextmanager
def serve(env: dict[str, str], log_path: Path) -> Iterator[str]:
    """``partial-trust serve`` on a free port; stopped with SIGTERM (flushes the risk log)."""
    import subprocess

    port = free_port()
    argv = [sys.executable, "-m", "partial_trust.apps.cli", "serve", "--port", str(port),
            "--log-level", "warning"]  # fmt: skip
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"serve exited: {log_path.read_text(errors='replace')}")
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError("partial-trust serve did not start")
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def warm_up(llm_url: str, profile_id: str) -> float:
    """One untimed completion straight to the server before the run, in the profile's framing.

    The first call evaluates the whole prompt prefix (system prompt and few-shot examples,
    ~900 tokens: ~20 s on 2 busy cores); llama.cpp keeps it, so later calls evaluate only the
    command. Without this the first command times out, and, since a CPU server finishes an
    abandoned call before the next, so does the second. A deployment pays it once per start.
    """
    from partial_trust.contracts import CommandDTO
    from partial_trust.middleware.corridor import ShoppingCorridor
    from partial_trust.middleware.policy import PolicyRegistry

    resolved = PolicyRegistry.load().resolve(ShoppingCorridor.task, profile_id)
    if resolved is None:
        raise SystemExit(f"no profile {profile_id!r} in the shipped LLM policy")
    command = CommandDTO(command_id="warm-up", user_id="bench", text="add tea to my list",
                         capabilities=["start_job"])  # fmt: skip
    request = ShoppingCorridor().build_request(command, resolved.profile)
    started = time.perf_counter()
    httpx.post(f"{llm_url}/chat/completions", json=request, timeout=300).raise_for_status()
    return time.perf_counter() - started


def read_risk_log(path: Path) -> dict[str, dict[str, Any]]:
    """Risk-log records by command_key (the last one per key)."""
    records: dict[str, dict[str, Any]] = {}
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            records[str(record.get("command_key"))] = record
    return records


def wait_for_record(risk_log: Path, key: str, timeout_ms: int) -> bool:
    """Shadow: until this command's outcome is in the risk log (its shadow job ended), or the
    deadline plus slack passed (an outcome that never comes shows up as a missing record)."""
    deadline = time.monotonic() + timeout_ms / 1000 + 30
    while time.monotonic() < deadline:
        try:
            if key in read_risk_log(risk_log):
                return True
        except ValueError:  # a line the writer has not finished yet
            pass
        time.sleep(0.05)
    return False


def run(
    entries: list[dict[str, Any]],
    workdir: Path,
    *,
    mode: str = "canary",
    profile: str = PROFILE,
    timeout_ms: int = 20_000,
    llm: LLMServer | None = None,
    progress: bool = False,
) -> Report:
    """Send ``entries`` through a real serve + tap + LLM server; the recorded run."""
    if llm is None:
        with llm_server(workdir / "llm-server.log") as server:
            return run(entries, workdir, mode=mode, profile=profile, timeout_ms=timeout_ms,
                       llm=server, progress=progress)  # fmt: skip
    risk_log = workdir / f"risk-{mode}.jsonl"
    warm_s = warm_up(llm.base_url, profile)
    rows: list[tuple[dict[str, Any], int, bytes, float]] = []
    keyer = CommandKeyer(HASH_KEY.encode())
    with LLMTap(llm.base_url) as tap:
        env = serve_env(tap.base_url, risk_log, mode, profile, timeout_ms)
        with serve(env, workdir / f"serve-{mode}.log") as url, httpx.Client(timeout=120) as http:
            for n, entry in enumerate(entries, 1):
                started = time.perf_counter()
                response = http.post(f"{url}/route", json=entry["command"])
                elapsed = (time.perf_counter() - started) * 1000
                rows.append((entry, response.status_code, response.content, elapsed))
                if mode == "shadow":
                    wait_for_record(risk_log, keyer(entry["command"]["command_id"]), timeout_ms)
                if progress:
                    print(f"[{n}/{len(entries)}] {entry['id']} {response.status_code} "
                          f"{elapsed:.0f} ms", file=sys.stderr, flush=True)  # fmt: skip
        tapped = dict(tap.records)
    records = read_risk_log(risk_log)
    observed = []
    for entry, status, body, elapsed in rows:
        command = entry["command"]
        ctx = command["context"]
        observed.append(
            Observed(
                entry, status, body, elapsed,
                records.get(keyer(command["command_id"])),
                tapped.get(command_key(command["text"], ctx["default_list_id"], ctx["lists"])),
            )
        )  # fmt: skip
    text = risk_log.read_text(encoding="utf-8") if risk_log.exists() else ""
    lines = {"risk_log_total_lines": len(text.splitlines())}
    extra = {"llm_server_start_s": round(llm.started_s, 1), "warm_up_s": round(warm_s, 1)}
    return Report(mode, "", observed, {**lines, **extra})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="The corridor against a real local model.")
    parser.add_argument("--split", choices=("held_out", "train", "all"), default="held_out")
    parser.add_argument("--limit", type=int, default=0, help="first N commands only (0: all)")
    parser.add_argument("--mode", choices=sorted(MODES), default="canary")
    parser.add_argument("--profile", default=PROFILE)
    parser.add_argument("--timeout-ms", type=int, default=20_000)
    parser.add_argument("--json", type=Path, help="write the figures here as JSON")
    parser.add_argument("--keep", type=Path, help="keep the logs in this directory")
    args = parser.parse_args(argv)
    entries = load_corpus(split=args.split)
    if args.limit:
        entries = entries[: args.limit]
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="real-model-") as tmp:
        workdir = args.keep or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        report = run(entries, workdir, mode=args.mode, profile=args.profile,
                     timeout_ms=args.timeout_ms, progress=True)  # fmt: skip
    report.split = args.split
    figures = report.figures()
    figures["wall_s"] = round(time.monotonic() - started, 1)
    print(render(figures))
    print(f"wall time {figures['wall_s']} s")
    if args.json:
        args.json.write_text(json.dumps(figures, ensure_ascii=False, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
