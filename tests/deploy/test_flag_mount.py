"""What the CLI and the console rewrite is mounted as a directory, never as a single file.

``partial_trust.flags.flagfile`` writes a temporary file and renames it over the flag file: a new
inode. A
single-file bind mount pins the old inode, so flagd behind it would serve the old flags forever
(a kill from the console would never reach it, silently). Checked statically on the resolved
compose file, then for real: in a private mount namespace (``unshare``, util-linux), a real
``partial-trust flags kill`` is visible through a directory bind mount and not through a
single-file one, which is the bug and the fix side by side.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from partial_trust.flags import flagfile
from tests.deploy.compose import bind_mounts, command_args, services
from tests.support.procs import PYTHON, REPO, require_binary

FLAG_FILE = REPO / "flags" / "partial-trust.flagd.json"
# Files the CLI (`partial-trust flags ...`) and the console write (flags/flagfile.py,
# apps/console/audit.py) and the app's risk log: never to be mounted one by one.
REWRITTEN = {
    FLAG_FILE,
    REPO / "logs" / "partial_trust_flag_audit.jsonl",
    REPO / "logs" / "partial_trust_risk.jsonl",
}
REWRITTEN_DIRS = {REPO / "flags", REPO / "logs"}


def test_nothing_the_cli_or_console_rewrites_is_a_single_file_mount() -> None:
    for mount in bind_mounts():
        assert mount.path not in REWRITTEN, f"{mount.service} mounts {mount.source} as a file"
        if mount.path.is_file():
            assert mount.path.parent not in REWRITTEN_DIRS, (
                f"{mount.service} mounts {mount.source}, a file in a directory the CLI or the "
                "console rewrites: mount the directory"
            )


def test_flagd_serves_the_flag_file_from_the_mounted_directory() -> None:
    [mount] = [m for m in bind_mounts() if m.service == "flagd"]
    assert mount.path == FLAG_FILE.parent and mount.path.is_dir()
    uri = command_args(services()["flagd"])
    served = Path(uri[uri.index("--uri") + 1].removeprefix("file:"))
    assert served == Path(mount.target) / FLAG_FILE.name


def test_the_cli_kill_replaces_the_flag_file_inode(tmp_path: Path) -> None:
    """The premise: a kill is a new inode (a single-file mount can never follow it)."""
    flags = tmp_path / FLAG_FILE.name
    shutil.copy(FLAG_FILE, flags)
    before = flags.stat().st_ino
    _kill(flags, tmp_path)
    assert flags.stat().st_ino != before
    assert _enabled(flags) is False


def _kill(flags: Path, tmp_path: Path) -> None:
    env = {**os.environ, "PARTIAL_TRUST_FLAGS_AUDIT_LOG": str(tmp_path / "audit.jsonl")}
    argv = [PYTHON, "-m", "partial_trust.apps.cli", "flags", "kill", "--file", str(flags)]
    proc = subprocess.run(
        [*argv, "--reason", "mount test"], env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _enabled(path: Path) -> object:
    return flagfile.served_value(flagfile.load(path).flags[flagfile.ENABLED])[0]


# Runs inside the private mount namespace: mounts, a real CLI kill, then what each view shows.
_IN_NAMESPACE = """
import json, os, subprocess, sys
from pathlib import Path
from partial_trust.flags import flagfile
host, file_view, dir_view, audit = (Path(a) for a in sys.argv[1:5])
subprocess.run(["mount", "--bind", str(host / "partial-trust.flagd.json"),
                str(file_view / "partial-trust.flagd.json")], check=True)
subprocess.run(["mount", "--bind", "-o", "ro", str(host), str(dir_view)], check=True)
def served(p):
    return flagfile.served_value(flagfile.load(p).flags[flagfile.ENABLED])[0]
views = lambda: {n: served(v / "partial-trust.flagd.json")
                 for n, v in (("file", file_view), ("dir", dir_view))}
before = views()
env = {**os.environ, "PARTIAL_TRUST_FLAGS_AUDIT_LOG": str(audit)}
subprocess.run([sys.executable, "-m", "partial_trust.apps.cli", "flags", "kill", "--file",
                str(host / "partial-trust.flagd.json"), "--reason", "mount test"],
               env=env, check=True, capture_output=True)
print(json.dumps({"before": before, "after": views()}))
"""


def _namespace_argv() -> list[str]:
    """unshare with a private mount namespace: as root directly, else in a user namespace.
    Skipped locally when the kernel forbids both; a failure under CI=true."""
    unshare = require_binary("unshare")
    require_binary("mount")
    candidates = [[unshare, "--mount", "--propagation", "private"]] if os.geteuid() == 0 else []
    candidates.append([unshare, "--user", "--map-root-user", "--mount", "--propagation", "private"])
    for argv in candidates:
        probe = subprocess.run([*argv, "true"], capture_output=True, text=True, timeout=30)
        if probe.returncode == 0:
            return argv
    message = f"no private mount namespace here ({probe.stderr.strip()})"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


def test_a_kill_is_seen_through_a_directory_mount_not_a_file_mount(tmp_path: Path) -> None:
    host = tmp_path / "flags"
    host.mkdir()
    shutil.copy(FLAG_FILE, host / FLAG_FILE.name)
    flagfile.resume(host / FLAG_FILE.name)  # the corridor on, as in production
    file_view, dir_view = tmp_path / "file-mount", tmp_path / "dir-mount"
    file_view.mkdir()
    dir_view.mkdir()
    (file_view / FLAG_FILE.name).touch()  # a file mount needs a file to mount over
    argv = [*_namespace_argv(), sys.executable, "-c", _IN_NAMESPACE]
    argv += [str(host), str(file_view), str(dir_view), str(tmp_path / "audit.jsonl")]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=REPO, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    assert seen["before"] == {"file": True, "dir": True}
    assert _enabled(host / FLAG_FILE.name) is False  # the kill happened on the host
    # the directory mount shows it; the single-file mount still serves the old, "on" file
    assert seen["after"] == {"file": True, "dir": False}
