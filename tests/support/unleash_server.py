"""A real Unleash server for the tests: its own PostgreSQL cluster and ``unleash-server``.

Started once per test session, on 127.0.0.1 and free ports, the first time a test asks for it
(``shared_unleash``), and stopped at the end of the session. Needs PostgreSQL's server binaries
(Debian ``postgresql``: ``/usr/lib/postgresql/<v>/bin``), ``node`` and the npm package
``unleash-server`` installed by ``scripts/ci-unleash`` under
``~/.cache/partial-trust/unleash-server-<version>`` (or ``UNLEASH_SERVER_DIR``). Missing any of
them skips the Unleash tests with the reason, and fails them under ``CI=true``.

PostgreSQL refuses to run as root: under root the cluster runs as the ``postgres`` user (or
``nobody``) through ``setpriv``. ``fsync=off``: a throwaway database, started in ~2 s; Unleash's
migrations then take ~10 s. Everything is bounded (``START_TIMEOUT_S``), never a bare sleep.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.support.procs import free_port, wait_http

UNLEASH_VERSION = "7.5.1"  # the newest unleash-server that runs on Node 20 (7.6+ wants 22)
DEFAULT_DIR = Path.home() / ".cache" / "partial-trust" / f"unleash-server-{UNLEASH_VERSION}"
START_TIMEOUT_S = 120.0
ENVIRONMENT = "development"


def _missing(message: str) -> None:
    message += " (scripts/ci-unleash installs it; .ci/run calls it)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


def _pg_bindir() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"), key=lambda p: p.parts)
    return found[-1].parent if found else None


def _server_js() -> Path:
    base = Path(os.environ.get("UNLEASH_SERVER_DIR") or DEFAULT_DIR)
    return base / "node_modules" / "unleash-server" / "dist" / "server.js"


def _db_ids() -> tuple[int, int] | None:
    """PostgreSQL will not run as root: the ``postgres`` user's (or ``nobody``'s) ids then."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam("postgres")
    except KeyError:
        return 65534, 65534
    return entry.pw_uid, entry.pw_gid


def _as_db_user(argv: list[str]) -> list[str]:
    ids = _db_ids()
    if ids is None:
        return argv
    return ["setpriv", f"--reuid={ids[0]}", f"--regid={ids[1]}", "--clear-groups", *argv]


class UnleashServer:
    """PostgreSQL + unleash-server; ``stop_unleash``/``start_unleash`` for outage tests."""

    def __init__(self, bindir: Path, server_js: Path, node: str) -> None:
        self.bindir, self.server_js, self.node = bindir, server_js, node
        self.tmp = Path(tempfile.mkdtemp(prefix="partial-trust-unleash-"))
        self.pg_port, self.port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.api_url = f"{self.url}/api"
        self.admin_token = f"*:*.pt-admin-{secrets.token_hex(8)}"
        self.client_token = f"default:{ENVIRONMENT}.pt-client-{secrets.token_hex(8)}"
        self._pg: subprocess.Popen[bytes] | None = None
        self._unleash: subprocess.Popen[bytes] | None = None
        self.admin = httpx.Client(
            base_url=f"{self.api_url}/admin", headers={"Authorization": self.admin_token}
        )

    # --- processes ----------------------------------------------------------------------
    def start(self) -> None:
        data = self.tmp / "pg"
        data.mkdir()
        ids = _db_ids()
        if ids is not None:  # the socket goes in tmp, the cluster in data: both theirs
            os.chown(self.tmp, *ids)
            os.chown(data, *ids)
        self._run([str(self.bindir / "initdb"), "-D", str(data), "-U", "postgres",
                   "--auth=trust", "-E", "UTF8", "--no-sync"])  # fmt: skip
        postgres = [
            str(self.bindir / "postgres"), "-D", str(data), "-p", str(self.pg_port),
            "-k", str(self.tmp), "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off",
            "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
        ]  # fmt: skip
        self._pg = self._spawn(_as_db_user(postgres), "postgres.log")
        pg = ["-h", "127.0.0.1", "-p", str(self.pg_port), "-U", "postgres"]
        self._until(lambda: self._ok([str(self.bindir / "pg_isready"), *pg]), "PostgreSQL")
        self._run([str(self.bindir / "createdb"), *pg, "unleash"])
        self.start_unleash()

    def start_unleash(self) -> None:
        env = {
            **os.environ,
            "DATABASE_URL": f"postgres://postgres@127.0.0.1:{self.pg_port}/unleash",
            "DATABASE_SSL": "false",
            "HTTP_HOST": "127.0.0.1",
            "HTTP_PORT": str(self.port),
            "CHECK_VERSION": "false",
            "SEND_TELEMETRY": "false",
            "LOG_LEVEL": "warn",
            "INIT_ADMIN_API_TOKENS": self.admin_token,
            "INIT_BACKEND_API_TOKENS": self.client_token,
        }
        self._unleash = self._spawn([self.node, str(self.server_js)], "unleash.log", env)
        try:
            wait_http(f"{self.url}/health", START_TIMEOUT_S, self._unleash)
            # the tokens are loaded just after /health answers: wait for the client API
            self._until(lambda: self.client_status() == 200, "the Unleash client API")
        except Exception as exc:
            raise RuntimeError(f"unleash-server did not start:\n{self.output()}") from exc

    def stop_unleash(self) -> None:
        proc, self._unleash = self._unleash, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def pause(self, paused: bool = True) -> None:
        """SIGSTOP / SIGCONT unleash-server: connections hang instead of being refused."""
        assert self._unleash is not None
        self._unleash.send_signal(signal.SIGSTOP if paused else signal.SIGCONT)

    def running(self) -> bool:
        return self._unleash is not None and self._unleash.poll() is None

    def close(self) -> None:
        self.admin.close()
        self.stop_unleash()
        if self._pg is not None and self._pg.poll() is None:
            self._pg.terminate()  # SIGTERM: PostgreSQL's "smart" shutdown
            try:
                self._pg.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self._pg.kill()
                self._pg.wait()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def output(self) -> str:
        path = self.tmp / "unleash.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def client_status(self, token: str | None = None) -> int:
        try:
            return httpx.get(
                f"{self.api_url}/client/features",
                headers={"Authorization": token or self.client_token},
                timeout=2,
            ).status_code
        except httpx.HTTPError:
            return 0

    def _spawn(
        self, argv: list[str], log: str, env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        with open(self.tmp / log, "ab") as out:
            return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)

    def _run(self, argv: list[str]) -> None:
        done = subprocess.run(_as_db_user(argv), capture_output=True, timeout=60, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{Path(argv[0]).name} failed: {done.stderr.decode()[-2000:]}")

    @staticmethod
    def _ok(argv: list[str]) -> bool:
        return subprocess.run(argv, capture_output=True, timeout=10, check=False).returncode == 0

    @staticmethod
    def _until(predicate: Callable[[], bool], what: str, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not predicate():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what} not ready within {timeout_s:g} s")
            time.sleep(0.1)


_shared: UnleashServer | None = None
_broken: str | None = None


def shared_unleash(config: pytest.Config) -> UnleashServer:
    """The session's Unleash server, started on first use (skip/fail if it cannot be)."""
    global _shared, _broken
    bindir, server_js, node = _pg_bindir(), _server_js(), shutil.which("node")
    if bindir is None:
        _missing("PostgreSQL server binaries are not installed (Debian package postgresql)")
    if node is None:
        _missing("node is not installed (Debian package nodejs)")
    if not server_js.exists():
        _missing(f"unleash-server {UNLEASH_VERSION} is not installed at {server_js}")
    if os.geteuid() == 0 and shutil.which("setpriv") is None:
        _missing("setpriv is not installed (Debian package util-linux)")
    if _broken is not None:
        pytest.fail(f"the Unleash test server failed to start earlier: {_broken}")
    if _shared is None:
        assert bindir is not None and node is not None
        server = UnleashServer(bindir, server_js, node)
        config.add_cleanup(server.close)
        started = time.monotonic()
        try:
            server.start()
        except Exception as exc:
            _broken = str(exc)
            raise
        print(f"\nUnleash {UNLEASH_VERSION} up in {time.monotonic() - started:.1f} s")
        _shared = server
    if not _shared.running():  # a test stopped it and could not restart it
        _shared.start_unleash()
    return _shared
