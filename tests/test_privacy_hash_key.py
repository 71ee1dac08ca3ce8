"""The risk log's ``command_key`` secret (``partial_trust.middleware.hash_key``): no built-in key,
a key file
created once with owner-only permissions, shared by concurrent creators, refused when unsafe.

A public key lets anyone with the risk log recover guessable command ids by hashing guesses;
each refusal below is a way the key could be read, swapped or half-written.
"""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from partial_trust.environment import Environment
from partial_trust.middleware import hash_key, sampling
from partial_trust.middleware.hash_key import (
    KEY_FILE_NAME,
    HashKey,
    key_file_path,
    load_or_create,
    resolve_hash_key,
)
from partial_trust.middleware.sampling import CommandKeyer
from tests.support.procs import REPO

OLD_PUBLIC_KEY = b"partial-trust-corridor/command-key/v1"  # the removed built-in default


def _hash(key: bytes, command_id: str) -> str:
    """``command_key`` as anyone holding ``key`` computes it."""
    return hashlib.blake2b(command_id.encode(), key=key, digest_size=12).hexdigest()


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_created_once_owner_only_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "logs" / KEY_FILE_NAME  # the directory does not exist yet
    first = load_or_create(str(path))
    assert _mode(path) == 0o600
    assert len(first) == 64 and bytes.fromhex(first.decode())  # 256 random bits, as hex
    assert load_or_create(str(path)) == first == path.read_bytes()
    assert [p.name for p in path.parent.iterdir()] == [KEY_FILE_NAME]  # no temporary left
    other = tmp_path / "elsewhere" / KEY_FILE_NAME
    assert load_or_create(str(other)) != first  # random, not derived from anything public


def test_resolution_order_and_status_never_show_the_key(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    log = str(tmp_path / "risk.jsonl")
    env_key = resolve_hash_key(
        Environment.from_mapping({"PARTIAL_TRUST_HASH_KEY": "a-long-enough-secret-key"}), log
    )
    assert env_key.source == "env" and env_key.status() == {"source": "env"}
    assert not (tmp_path / KEY_FILE_NAME).exists()  # the environment wins; no file made
    from_file = resolve_hash_key(
        Environment.from_mapping({"PARTIAL_TRUST_HASH_KEY": ""}), log
    )  # empty means unset
    assert from_file.status() == {"source": "file", "path": key_file_path(log)}
    assert from_file.path == str(tmp_path / KEY_FILE_NAME)
    for key in (env_key, from_file):
        assert key.key.decode() not in repr(key) + repr(key.status())
    with caplog.at_level("WARNING", "partial_trust.hash_key"):
        resolve_hash_key(Environment.from_mapping({"PARTIAL_TRUST_HASH_KEY": "k9z"}), log)
    assert "shorter than 16 bytes" in caplog.text and "k9z" not in caplog.text


def test_no_built_in_key_remains() -> None:
    assert not hasattr(sampling, "_DEFAULT_HASH_KEY")
    for module in (sampling, hash_key):
        constants = [v for v in vars(module).values() if isinstance(v, bytes)]
        assert all(v != OLD_PUBLIC_KEY for v in constants)
    # A keyer made without a key holds a random per-process key (tests/test_keyer_default.py).
    keyer = CommandKeyer()
    assert keyer.status()["source"] == "ephemeral" and "warning" in keyer.status()
    assert keyer("c-1") != _hash(OLD_PUBLIC_KEY, "c-1")


def test_generated_key_defeats_guessing_with_public_constants(tmp_path: Path) -> None:
    keyer = CommandKeyer(
        resolve_hash_key(Environment.from_mapping({}), str(tmp_path / "risk.jsonl"))
    )
    public = [OLD_PUBLIC_KEY, sampling._SAMPLING_KEY, b"partial-trust-replay", b"\x00"]
    ids = [f"c-{i}" for i in range(1, 1001)]
    logged = {keyer(i) for i in ids}
    assert len(logged) == 1000
    for constant in public:
        guesses = {_hash(constant, i) for i in ids}
        assert not logged & guesses
    # The check would catch a public key: the old default is recovered by the same guessing.
    old = CommandKeyer(OLD_PUBLIC_KEY)
    assert {old(i) for i in ids} == {_hash(OLD_PUBLIC_KEY, i) for i in ids}


def _race(path: str, threads: int) -> list[bytes]:
    barrier = threading.Barrier(threads)
    keys: list[bytes] = []

    def create() -> None:
        barrier.wait()
        keys.append(load_or_create(path))

    started = [threading.Thread(target=create) for _ in range(threads)]
    for thread in started:
        thread.start()
    for thread in started:
        thread.join(10)
    return keys


def test_concurrent_threads_agree_on_one_key(tmp_path: Path) -> None:
    for round_ in range(10):
        path = str(tmp_path / f"r{round_}" / KEY_FILE_NAME)
        keys = _race(path, 12)
        assert len(keys) == 12 and len(set(keys)) == 1
        assert Path(path).read_bytes() == keys[0]


_WORKER = """
import hashlib, os, sys, time
from partial_trust.middleware.hash_key import load_or_create
path, go = sys.argv[1], sys.argv[2]
open(go + "." + str(os.getpid()), "w").close()
while not os.path.exists(go):
    time.sleep(0.001)
print(hashlib.sha256(load_or_create(path)).hexdigest())
"""


def test_concurrent_processes_agree_on_one_key(tmp_path: Path) -> None:
    path, go = tmp_path / "logs" / KEY_FILE_NAME, tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, str(path), str(go)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(6)
    ]
    deadline = time.monotonic() + 30
    while len(list(tmp_path.glob("go.*"))) < 6 and time.monotonic() < deadline:
        time.sleep(0.01)
    go.touch()  # all six are spinning: they race for the file
    digests = {proc.communicate(timeout=30)[0].strip() for proc in procs}
    assert all(proc.returncode == 0 for proc in procs)
    assert digests == {hashlib.sha256(path.read_bytes()).hexdigest()}


def test_half_written_file_is_waited_for_then_refused(tmp_path: Path) -> None:
    path = tmp_path / KEY_FILE_NAME
    full = os.urandom(32).hex().encode()
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    os.write(fd, full[:10])  # another writer, mid-way (a file system without hard links)

    def finish() -> None:
        os.write(fd, full[10:])
        os.close(fd)

    finisher = threading.Timer(0.2, finish)
    finisher.start()
    try:
        assert load_or_create(str(path)) == full  # read the other writer's key, not ours
    finally:
        finisher.join()
    stuck = tmp_path / "stuck" / KEY_FILE_NAME
    stuck.parent.mkdir()
    stuck.write_bytes(full[:20])
    stuck.chmod(0o600)
    with pytest.raises(ValueError, match=r"refusing the hash key file .*wrong length \(20"):
        load_or_create(str(stuck), wait_s=0.1)
    assert stuck.read_bytes() == full[:20]  # never overwritten: that would change every hash


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620, 0o602, 0o660])
def test_key_file_others_can_reach_is_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / KEY_FILE_NAME
    path.write_bytes(os.urandom(32).hex().encode())
    path.chmod(mode)
    with pytest.raises(ValueError, match=f"group/others have access \\(mode {mode:o}\\)"):
        resolve_hash_key(Environment.from_mapping({}), str(tmp_path / "risk.jsonl"))


def test_key_file_owned_by_another_user_is_refused(tmp_path: Path) -> None:
    path = tmp_path / KEY_FILE_NAME
    path.write_bytes(os.urandom(32).hex().encode())
    path.chmod(0o600)
    if os.geteuid() == 0:
        os.chown(path, 65534, 65534)  # planted by "nobody", who knows what it wrote
        expected = "owned by uid 65534"
    else:
        path.chmod(0o000)  # not ours to read either way
        expected = "Permission denied"
    with pytest.raises(ValueError, match=expected):
        resolve_hash_key(Environment.from_mapping({}), str(tmp_path / "risk.jsonl"))


def _unsafe(tmp_path: Path, kind: str) -> Path:
    path = tmp_path / KEY_FILE_NAME
    good = os.urandom(32).hex().encode()
    if kind == "directory":
        path.mkdir(mode=0o700)
    elif kind == "fifo":
        os.mkfifo(path, 0o600)
    elif kind == "symlink":
        target = tmp_path / "target"
        target.write_bytes(good)
        target.chmod(0o600)
        path.symlink_to(target)
    else:
        path.write_bytes({"long": good + b"00", "not-hex": b"Z" * 64, "upper": good.upper()}[kind])
        path.chmod(0o600)
    return path


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("directory", "not a regular file"),
        ("fifo", "not a regular file"),
        ("symlink", "it is a symlink"),
        ("long", "wrong length"),
        ("not-hex", "not 64 lowercase hex"),
        ("upper", "not 64 lowercase hex"),
    ],
)
def test_key_file_of_the_wrong_kind_is_refused(tmp_path: Path, kind: str, reason: str) -> None:
    path = _unsafe(tmp_path, kind)
    started = time.monotonic()
    with pytest.raises(ValueError, match=reason):
        resolve_hash_key(Environment.from_mapping({}), str(tmp_path / "risk.jsonl"))
    assert time.monotonic() - started < 5  # a FIFO is not waited on
    assert path.exists() or path.is_symlink()


def test_unwritable_directory_falls_back_to_an_ephemeral_key(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")  # the risk log's "directory" is a file: nothing can be made there
    with caplog.at_level("WARNING", "partial_trust.hash_key"):
        key = resolve_hash_key(Environment.from_mapping({}), str(blocker / "risk.jsonl"))
    assert key.source == "ephemeral" and key.path is None and len(key.key) == 64
    assert key.status()["source"] == "ephemeral" and "restarts" in key.status()["warning"]
    assert "per-process random hash key" in caplog.text and key.key.decode() not in caplog.text
    assert (
        resolve_hash_key(Environment.from_mapping({}), str(blocker / "risk.jsonl")).key != key.key
    )


def test_key_lengths() -> None:
    assert HashKey(b"k" * 64, "given").key == b"k" * 64
    for bad in (b"", b"k" * 65):
        with pytest.raises(ValueError, match="1 to 64 bytes"):
            HashKey(bad, "given")
